"""A Mosquitto broker this program starts and owns (demo, tests).

Listens on 127.0.0.1 only. Sessions and their queued QoS 1 messages persist
across stop()/start() in the broker's state folder, as in production, so the
server's persistent MQTT session survives a broker restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import random
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"

# Away from 1883/8883 and from what the other suites use; the random start keeps
# concurrent test runs in the same tree from racing for the same ports.
_PORT_BASE = 21883
_PORT_SPAN = 2000
_ports = itertools.count(random.randrange(_PORT_SPAN))


def free_port() -> int:
    """A port in 21883..23882 that nothing listens on right now."""
    for _ in range(_PORT_SPAN):
        port = _PORT_BASE + next(_ports) % _PORT_SPAN
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise OSError("no free port in the range")


async def wait_port(port: int, timeout: float = 5.0, host: str = HOST) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


class Mosquitto:
    """One mosquitto process on 127.0.0.1:port, restartable with its state."""

    def __init__(
        self,
        port: int | None = None,
        *,
        persistence: bool = True,
        state_dir: Path | None = None,
    ):
        self.host = HOST
        self.port = port or free_port()
        self.persistence = persistence
        self._state_dir = state_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def dir(self) -> Path:
        if self._state_dir is not None:
            return self._state_dir
        assert self._tmp is not None, "broker never started"
        return Path(self._tmp.name)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> Path:
        d = self.dir
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            # As root mosquitto would switch to user "mosquitto", who cannot
            # write our temp dir; stay whoever we are.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"log_dest file {d / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 100000",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {d}/",
                # Saved at a clean stop anyway; this bounds the loss on kill().
                "autosave_interval 1",
            ]
        conf = d / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def _spawn(self, conf: Path) -> subprocess.Popen[bytes]:
        # fork+exec takes a millisecond or two: fine on the test's loop.
        with open(self.dir / "stderr.log", "ab") as err:
            return subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )

    async def start(self, timeout: float = 5.0) -> None:
        if self.running:
            return
        if self._state_dir is not None:
            self._state_dir.mkdir(parents=True, exist_ok=True)
        elif self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mosquitto-")
        self._proc = self._spawn(self._write_config())
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise OSError(f"mosquitto exited at start:\n{self.log_tail()}")
            try:
                await wait_port(self.port, timeout=0.1)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    await self.kill()
                    raise TimeoutError(
                        f"mosquitto did not listen on {self.port}:\n{self.log_tail()}"
                    ) from None

    async def _end(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                deadline = time.monotonic() + timeout
            await asyncio.sleep(0.01)

    async def stop(self, timeout: float = 5.0) -> None:
        """Clean stop: mosquitto saves its sessions and queued messages."""
        await self._end(signal.SIGTERM, timeout)

    async def kill(self) -> None:
        """Crash: whatever was not autosaved is lost."""
        await self._end(signal.SIGKILL, 5.0)

    async def restart(self, down: float = 0.0) -> None:
        await self.stop()
        await asyncio.sleep(down)
        await self.start()

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in ("stderr.log", "mosquitto.log"):
            path = self.dir / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def close(self) -> None:
        await self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Mosquitto:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
