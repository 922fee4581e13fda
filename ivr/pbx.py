"""One Asterisk instance: render its configuration, start it, stop it.

Asterisk 22 is not packaged for Debian 12, so it usually runs from a Debian
sid root made by ``asterisk/provision.sh`` (``chroot ROOT /usr/sbin/asterisk``,
no mounts needed); a system Asterisk >= 22 is used as is (root ``/``).

Everything an instance writes (configs, control socket, logs, astdb, sounds,
recordings) lives in its instance folder, so instances with different names
and ports run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import filecmp
import math
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import time
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ivr import log
from ivr.errors import PbxError

_REPO = Path(__file__).resolve().parents[1]
_TEMPLATES = _REPO / "asterisk" / "conf"
_PROVISION = _REPO / "asterisk" / "provision.sh"
_ASTERISK = "/usr/sbin/asterisk"
# Where packages put the stock data (sounds, XML docs) and the modules.
_DATA_DIRS = ("/usr/share/asterisk", "/var/lib/asterisk")
_MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/asterisk/modules",
    "/usr/lib/aarch64-linux-gnu/asterisk/modules",
    "/usr/lib/asterisk/modules",
    "/usr/lib64/asterisk/modules",
)
# Events the server's AMI account never reads (manager.conf eventfilter).
# Dropped by Asterisk before they are sent: about 74 events per call become
# about 27, which the bench measured as less CPU for both server and Asterisk.
# Keep in step with the handlers: a name used in ivr/ must not be listed.
SERVER_UNUSED_EVENTS = (
    "AGIExecStart AGIExecEnd NewCallerid NewConnectedLine Newstate "
    "SoftHangupRequest HangupRequest LocalBridge BridgeCreate BridgeEnter "
    "BridgeLeave BridgeDestroy SuccessfulAuth ChallengeSent"
).split()
# Files holding passwords: readable by their owner only.
_SECRET_FILES = frozenset({"pjsip.conf", "manager.conf"})
_INSTANCE_DIRS = "etc run log spool lib sounds moh recordings agi-bin".split()
_PLACEHOLDER = re.compile(r"@@([a-z_]+)@@")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_HOLD_TONE = "hold-tone.wav"
_REALTIME_DESK = "general"  # the queue name app_queue reserves
# Sections of asterisk/conf/pjsip.conf that an agent or trunk cannot be.
_RESERVED_PEERS = frozenset(
    {"pstn", "system", "global", "transport-udp"}
    | {"endpoint-defaults", "aor-defaults", "auth-defaults"}
)

_provisioned: Path | None = None


@dataclass(frozen=True)
class PbxSettings:
    name: str = "demo"
    sip_port: int = 5060
    ami_port: int = 5038
    rtp_start: int = 10000
    rtp_end: int = 10999
    ami_user: str = "yihaotong"
    ami_secret: str = ""
    agents: Mapping[str, str] = field(default_factory=dict)
    pstn_password: str = ""
    trunks: Mapping[str, str] = field(default_factory=dict)
    desks: tuple[str, ...] = ("general", "business", "psych", "tibetan", "yi")
    # Contexts appended to extensions.conf as they are: the dial plan compiled
    # to native dialplan (routing.native), the benchmark's callers and agents.
    extra_dialplan: str = ""
    # Issue 9: Asterisk's HTTP server for SIP over WebSocket (0: off) and, with
    # it, a WebRTC endpoint web-<agent> beside each agent's SIP endpoint.
    http_port: int = 0

    def __post_init__(self) -> None:
        # Read-only copies: a frozen settings object must not change under us.
        object.__setattr__(self, "agents", MappingProxyType(dict(self.agents)))
        object.__setattr__(self, "trunks", MappingProxyType(dict(self.trunks)))
        object.__setattr__(self, "desks", tuple(self.desks))

    def check(self) -> None:
        """Raise PbxError naming the first setting Asterisk could not use."""
        _check_name("name", self.name)
        for key in ("sip_port", "ami_port", "rtp_start", "rtp_end"):
            port = getattr(self, key)
            if not 1024 <= port <= 65535:
                raise PbxError(f"PbxSettings.{key}={port}: use a port in 1024-65535")
        if self.rtp_end <= self.rtp_start:
            raise PbxError(
                f"PbxSettings.rtp_start={self.rtp_start} must be below "
                f"rtp_end={self.rtp_end}"
            )
        if self.rtp_start <= self.sip_port <= self.rtp_end:
            raise PbxError(f"PbxSettings.sip_port={self.sip_port} is in the RTP range")
        _check_name("ami_user", self.ami_user)
        if self.ami_user.lower() == "general":
            raise PbxError("PbxSettings.ami_user cannot be 'general' (manager.conf)")
        _check_secret("ami_secret", self.ami_secret)
        _check_secret("pstn_password", self.pstn_password)
        if not self.desks:
            raise PbxError("PbxSettings.desks is empty: list at least one desk")
        for desk in self.desks:
            _check_name("desks", desk)
        if len(set(self.desks)) != len(self.desks):
            raise PbxError(f"PbxSettings.desks has duplicates: {self.desks}")
        peers: list[str] = []
        for key in ("agents", "trunks"):
            for peer, password in getattr(self, key).items():
                _check_name(key, peer)
                if peer in _RESERVED_PEERS:
                    raise PbxError(
                        f"PbxSettings.{key}: {peer!r} is taken by pjsip.conf itself"
                    )
                _check_secret(f"{key}[{peer!r}]", password)
                peers.append(peer)
        if len(set(peers)) != len(peers):
            raise PbxError(f"PbxSettings.agents and trunks share names: {peers}")
        if self.http_port and not 1024 <= self.http_port <= 65535:
            raise PbxError(
                f"PbxSettings.http_port={self.http_port}: use 0 (off) or 1024-65535"
            )


def _check_name(key: str, value: str) -> None:
    if not _NAME.fullmatch(value or ""):
        raise PbxError(
            f"PbxSettings.{key}: {value!r} is not a usable name "
            "(letters, digits, '_', '.', '-'; at most 40)"
        )


def _check_secret(key: str, value: str) -> None:
    if not value:
        raise PbxError(f"PbxSettings.{key} is empty: set a secret")
    if value != value.strip() or not value.isprintable():
        raise PbxError(
            f"PbxSettings.{key}: no spaces at the ends or control characters"
        )


def _conf_value(value: str) -> str:
    # ';' starts a comment in Asterisk configs unless escaped.
    return value.replace(";", r"\;")


def provision() -> Path:
    """Run asterisk/provision.sh once per process and return the root it prints."""
    global _provisioned
    if _provisioned is None:
        log.pbx.info("finding Asterisk with %s", _PROVISION)
        try:
            done = subprocess.run(
                ["bash", str(_PROVISION)], capture_output=True, text=True, check=False
            )
        except OSError as exc:
            raise PbxError(f"cannot run {_PROVISION}: {exc}") from exc
        if done.returncode != 0 or not done.stdout.strip():
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise PbxError(
                f"{_PROVISION} failed (exit {done.returncode}); run it as root "
                f"to see why:\n{tail}"
            )
        _provisioned = Path(done.stdout.strip().splitlines()[-1])
    return _provisioned


class Pbx:
    """An Asterisk instance named ``settings.name`` under ``root``."""

    def __init__(self, settings: PbxSettings, root: Path | None = None) -> None:
        self.settings = settings
        self._root = Path(root) if root is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None  # an adopted Asterisk (start(reuse=True))

    # --- where things are --------------------------------------------------

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = provision()
        return self._root

    @property
    def chrooted(self) -> bool:
        return self.root != Path("/")

    @property
    def instance_dir(self) -> Path:
        if self.chrooted:
            return self.root / "srv" / "yihaotong" / self.settings.name
        return _REPO / "var" / "asterisk" / self.settings.name

    def asterisk_path(self, host_path: Path) -> str:
        """``host_path`` as Asterisk sees it (inside its root)."""
        path = Path(host_path)
        if not self.chrooted:
            return str(path)
        try:
            return "/" + str(path.relative_to(self.root))
        except ValueError:
            raise PbxError(f"{path} is outside the Asterisk root {self.root}") from None

    def host_path(self, asterisk_path: str) -> Path:
        """The host path of a path that Asterisk uses (no symlinks followed)."""
        return self.root / asterisk_path.lstrip("/")

    @property
    def sounds_dir(self) -> Path:
        return self.instance_dir / "sounds"

    @property
    def recordings_dir(self) -> Path:
        return self.instance_dir / "recordings"

    @property
    def conf_path(self) -> Path:
        return self.instance_dir / "etc" / "asterisk.conf"

    @property
    def console_log(self) -> Path:
        return self.instance_dir / "log" / "console.log"

    @property
    def control_socket(self) -> Path:
        return self.instance_dir / "run" / "asterisk.ctl"

    def _command(self, *args: str) -> list[str]:
        conf = self.asterisk_path(self.conf_path)
        prefix = ["chroot", str(self.root)] if self.chrooted else []
        return [*prefix, _ASTERISK, "-C", conf, *args]

    # --- configuration -----------------------------------------------------

    def render(self) -> None:
        """Write every config file and create the instance's folders."""
        s = self.settings
        s.check()
        inst = self.instance_dir
        for sub in _INSTANCE_DIRS:
            (inst / sub).mkdir(parents=True, exist_ok=True)
        data_dir = self._stock_dir(_DATA_DIRS, "sounds")
        static_desks = [d for d in s.desks if d.lower() != _REALTIME_DESK]
        values = {
            "inst": self.asterisk_path(inst),
            "moddir": self._stock_dir(_MODULE_DIRS, "chan_pjsip.so"),
            "sip_port": str(s.sip_port),
            "ami_port": str(s.ami_port),
            "rtp_start": str(s.rtp_start),
            "rtp_end": str(s.rtp_end),
            "ami_user": s.ami_user,
            "ami_secret": _conf_value(s.ami_secret),
            "pstn_password": _conf_value(s.pstn_password),
            "fallback_desk": "general" if "general" in s.desks else s.desks[0],
            "agents": self._parts("pjsip_agent.conf", s.agents),
            "trunks": self._parts("pjsip_trunk.conf", s.trunks),
            "agent_extensions": self._parts("agent_extension.conf", s.agents),
            "queues": self._parts("queue.conf", dict.fromkeys(static_desks, "")),
            "extra_dialplan": s.extra_dialplan,
            "http_enabled": "yes" if s.http_port else "no",
            "http_port": str(s.http_port or 8088),
            "webrtc": self._webrtc(),
            "server_event_filter": "".join(
                f"eventfilter(action(exclude),name({name})) =\n"
                for name in SERVER_UNUSED_EVENTS
            ),
        }
        for template in sorted(_TEMPLATES.glob("*.conf")):
            text = _fill(template, values)
            mode = 0o600 if template.name in _SECRET_FILES else 0o644
            _write(inst / "etc" / template.name, text.encode(), mode)
        self._write_realtime_queues([d for d in s.desks if d.lower() == _REALTIME_DESK])
        self._link_stock(data_dir)
        _make_hold_tone(inst / "moh" / _HOLD_TONE)
        log.pbx.debug("rendered %s", inst)

    def _webrtc(self) -> str:
        """The ws transport and the agents' WebRTC endpoints (issue 9)."""
        if not self.settings.http_port:
            return ""
        transport = (
            "[transport-ws]\ntype = transport\nprotocol = ws\nbind = 127.0.0.1\n\n"
        )
        return transport + self._parts("pjsip_webrtc.conf", self.settings.agents)

    def _parts(self, template: str, items: Mapping[str, str]) -> str:
        path = _TEMPLATES / "parts" / template
        return "".join(
            _fill(path, {"name": name, "password": _conf_value(password)})
            for name, password in items.items()
        )

    def _write_realtime_queues(self, desks: list[str]) -> None:
        """Put desks that queues.conf cannot hold into the realtime table.

        app_queue reads ``[general]`` as its global settings, so the desk
        "general" is a realtime queue with the options of parts/queue.conf.
        """
        options = _queue_options(self._parts("queue.conf", {"x": ""}))
        columns = ["name", *(key.replace("-", "_") for key in options)]
        path = self.instance_dir / "lib" / "realtime.sqlite3"
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp)
        try:
            with db:
                db.execute(
                    f"CREATE TABLE queues ({', '.join(f'{c} TEXT' for c in columns)}"
                    ", PRIMARY KEY (name))"
                )
                db.executemany(
                    f"INSERT INTO queues VALUES ({', '.join('?' * len(columns))})",
                    [(desk, *options.values()) for desk in desks],
                )
        finally:
            db.close()
        tmp.replace(path)

    def _stock_dir(self, candidates: tuple[str, ...], must_hold: str) -> str:
        for candidate in candidates:
            if (self._resolve(candidate) / must_hold).exists():
                return candidate
        raise PbxError(
            f"no {must_hold} under {self.root} in any of {', '.join(candidates)}: "
            "is Asterisk fully installed? (re-run asterisk/provision.sh)"
        )

    def _resolve(self, asterisk_path: str) -> Path:
        """Host path of ``asterisk_path``, following symlinks inside the root."""
        if not self.chrooted:
            return Path(asterisk_path).resolve()
        parts = [p for p in asterisk_path.split("/") if p]
        done: list[str] = []
        for _ in range(64):
            if not parts:
                return self.root.joinpath(*done)
            part = parts.pop(0)
            host = self.root.joinpath(*done, part)
            if host.is_symlink():
                target = os.readlink(host)
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p] + parts
            elif part == "..":
                done = done[:-1]
            elif part != ".":
                done.append(part)
        raise PbxError(f"too many symlinks resolving {asterisk_path} in {self.root}")

    def _link_stock(self, data_dir: str) -> None:
        """Make Asterisk's stock English sounds and XML docs visible.

        The data dir is the instance, so the stock files are linked in: each
        entry of the stock ``sounds/en`` becomes ``sounds/en/<entry>``, and
        English is what Asterisk falls back to for any language.
        """
        docs = self.instance_dir / "documentation"
        if not docs.is_symlink():
            docs.symlink_to(f"{data_dir}/documentation")
        stock = f"{data_dir}/sounds/en"
        en = self.sounds_dir / "en"
        en.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self._resolve(stock)):
                link = en / entry.name
                if not link.exists() and not link.is_symlink():
                    link.symlink_to(f"{stock}/{entry.name}")

    def install_prompts(self, src: Path) -> None:
        """Copy ``src/<lang>/<name>.wav`` into sounds_dir, only what changed."""
        src = Path(src)
        if not src.is_dir():
            raise PbxError(f"prompt folder {src} does not exist")
        copied = 0
        for wav in sorted(src.glob("*/**/*.wav")):
            dest = self.sounds_dir / wav.relative_to(src)
            if dest.is_symlink():
                # A link to a stock sound: replace the link, never its target.
                dest.unlink()
            elif dest.exists() and filecmp.cmp(wav, dest, shallow=False):
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(wav, tmp)
            tmp.chmod(0o644)
            tmp.replace(dest)
            copied += 1
        log.pbx.info("prompts from %s: %s copied to %s", src, copied, self.sounds_dir)

    # --- process -----------------------------------------------------------

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and _alive(self._pid)

    def _pid_of_instance(self) -> int | None:
        try:
            return int((self.instance_dir / "run" / "asterisk.pid").read_text())
        except (OSError, ValueError):
            return None

    def _control_answers(self) -> bool:
        """Whether an Asterisk listens on this instance's control socket."""
        path = self.control_socket
        if not path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            # sun_path holds 107 bytes: reach a deep socket through its folder.
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                sock.connect(f"/proc/self/fd/{fd}/{path.name}")
                return True
            except OSError:
                return False
            finally:
                os.close(fd)

    async def start(self, timeout: float = 30, reuse: bool = False) -> None:
        """Render, start Asterisk and wait until it is fully booted."""
        if self.running:
            return
        await asyncio.to_thread(lambda: self.root)  # provisioning may take long
        s = self.settings
        if self._control_answers():
            if not reuse:
                raise PbxError(
                    f"an Asterisk of instance {s.name!r} is already running "
                    f"(control socket {self.control_socket} answers); stop it "
                    f"with: {shlex.join(self._command('-rx', 'core stop now'))}"
                )
            self._pid = self._pid_of_instance()
            if self._pid is None:
                raise PbxError(
                    f"Asterisk {s.name!r} answers on {self.control_socket} but "
                    "left no asterisk.pid next to it: stop it by hand"
                )
            log.pbx.info("reusing the running Asterisk %r (pid %s)", s.name, self._pid)
            await self._wait_booted(time.monotonic() + timeout)
            return
        _check_free(s.ami_port, socket.SOCK_STREAM, "ami_port")
        _check_free(s.sip_port, socket.SOCK_DGRAM, "sip_port")
        await asyncio.to_thread(self.render)
        started = time.monotonic()
        self._proc = self._spawn()
        log.pbx.info(
            "Asterisk %r starting (pid %s, SIP 127.0.0.1:%s, AMI 127.0.0.1:%s)",
            s.name,
            self._proc.pid,
            s.sip_port,
            s.ami_port,
        )
        try:
            await self._wait_booted(started + timeout)
        except BaseException:
            await self.kill()
            raise
        log.pbx.info("Asterisk %r ready in %.1f s", s.name, time.monotonic() - started)

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Popen, not asyncio's subprocess: the process outlives event loops
        # (a test fixture's loop, say) and is watched with poll().
        with self.console_log.open("wb") as console:
            try:
                return subprocess.Popen(
                    self._command("-f", "-n"),
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                )
            except OSError as exc:
                raise PbxError(f"cannot run {_ASTERISK} in {self.root}: {exc}") from exc

    async def _wait_booted(self, deadline: float) -> None:
        s = self.settings
        while True:
            self._raise_if_exited()
            if time.monotonic() > deadline:
                raise PbxError(
                    f"Asterisk {s.name!r} not ready in time (AMI 127.0.0.1:"
                    f"{s.ami_port}); last lines of {self.console_log}:\n"
                    f"{self._console_tail()}"
                )
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", s.ami_port), 1
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            break
        left = max(1.0, deadline - time.monotonic())
        await self.cli("core waitfullybooted", timeout=left)

    def _raise_if_exited(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            self._proc = None
            raise PbxError(
                f"Asterisk {self.settings.name!r} exited early (status {code}); "
                f"last lines of {self.console_log}:\n{self._console_tail()}"
            )
        if self._proc is None and self._pid is not None and not _alive(self._pid):
            self._pid = None
            raise PbxError(f"Asterisk {self.settings.name!r} is gone")

    def _console_tail(self, lines: int = 15) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError as exc:
            return f"({exc})"
        return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty)"

    async def cli(self, command: str, timeout: float = 15) -> str:
        """Run one CLI command in this instance (``asterisk -rx``); its output."""
        proc = await asyncio.create_subprocess_exec(
            *self._command("-rx", command),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise PbxError(
                f"CLI command {command!r} to Asterisk {self.settings.name!r} "
                f"took over {timeout} s"
            ) from None
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            why = (err.decode(errors="replace") + text).strip() or "no output"
            raise PbxError(
                f"CLI command {command!r} to Asterisk {self.settings.name!r} "
                f"failed (exit {proc.returncode}): {why}"
            )
        return text

    async def stop(self, timeout: float = 10) -> None:
        """Stop Asterisk: ``core stop now``, then SIGTERM, then SIGKILL."""
        if not self.running:
            self._forget()
            return
        pid = self._current_pid()
        with contextlib.suppress(PbxError):
            await self.cli("core stop now", timeout=min(timeout, 5))
        for sig, wait in ((None, timeout), (signal.SIGTERM, 3), (signal.SIGKILL, 3)):
            if sig is not None:
                log.pbx.warning(
                    "Asterisk %r (pid %s) still running: sending %s",
                    self.settings.name,
                    pid,
                    sig.name,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if await self._wait_exit(wait):
                log.pbx.info("Asterisk %r stopped", self.settings.name)
                self._forget()
                return
        raise PbxError(f"Asterisk {self.settings.name!r} (pid {pid}) will not die")

    async def kill(self) -> None:
        """SIGKILL, no questions asked (fault tests)."""
        if not self.running:
            self._forget()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._current_pid(), signal.SIGKILL)
        await self._wait_exit(5)
        self._forget()

    def _current_pid(self) -> int:
        if self._proc is not None:
            return self._proc.pid
        assert self._pid is not None
        return self._pid

    async def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _forget(self) -> None:
        self._proc = None
        self._pid = None


def _fill(template: Path, values: Mapping[str, str]) -> str:
    text = template.read_text()

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise PbxError(f"{template}: unknown placeholder @@{key}@@")
        return values[key]

    return _PLACEHOLDER.sub(one, text)


def _queue_options(text: str) -> dict[str, str]:
    """``key = value`` lines of one rendered queue section, comments dropped."""
    options = {}
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if "=" in line and not line.startswith("["):
            key, value = line.split("=", 1)
            options[key.strip()] = value.strip()
    return options


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, and only when the content changed."""
    if path.exists() and path.read_bytes() == data:
        path.chmod(mode)
        return
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _check_free(port: int, kind: socket.SocketKind, key: str) -> None:
    # Asterisk logs a failed bind and carries on: better to refuse up front.
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # As Asterisk does: connections in TIME_WAIT do not block a restart.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            proto = "TCP" if kind == socket.SOCK_STREAM else "UDP"
            raise PbxError(
                f"PbxSettings.{key}={port}: {proto} port 127.0.0.1:{port} is taken "
                f"({exc.strerror}); stop what uses it or choose another port"
            ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for our purpose.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _make_hold_tone(path: Path) -> None:
    """A soft, slow chime for callers waiting in a queue (8 kHz mono 16-bit)."""
    if path.exists():
        return
    tmp = path.with_name("tmp-" + path.name)
    sox = shutil.which("sox")
    if sox:
        # A plucked note every 2.5 s, well below speech level.
        done = subprocess.run(
            [
                sox,
                "-n",
                *"-r 8000 -c 1 -b 16".split(),
                str(tmp),
                *"synth 1 pluck E4 vol -18dB pad 0 1.5 repeat 3".split(),
            ],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            tmp.replace(path)
            return
        log.pbx.warning("sox failed (%s): hold tone made without it", done.stderr)
    rate, gain = 8000, 0.08
    frames = bytearray()
    # C major arpeggio, each note fading out, then a rest.
    for freq in (261.63, 329.63, 392.00, 329.63, 0.0, 0.0):
        for i in range(int(rate * 0.8)):
            t = i / rate
            amp = gain * math.exp(-3 * t) * min(1.0, t * 50) if freq else 0.0
            frames += struct.pack(
                "<h", int(32767 * amp * math.sin(2 * math.pi * freq * t))
            )
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    tmp.replace(path)
