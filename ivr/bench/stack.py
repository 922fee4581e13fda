"""What the bench runs against: Asterisk, Mosquitto, the server, its own AMI link.

Asterisk is our configuration as ``ivr.pbx`` renders it, plus what only the
bench needs: the dial plan compiled to native dialplan (arm B), the callers'
and agents' contexts, an AMI account ``bench`` whose events are filtered down
to the few the bench measures, and ``app_senddtmf`` for the callers' keys. The
server runs as its own process (``ivr.bench.server``) so that /proc tells its
CPU apart; agents are Local channels the bench adds to the desks' queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import struct
import subprocess
import sys
import time
import wave
from dataclasses import replace
from pathlib import Path

from ivr import log
from ivr.ami.session import AmiSession, AmiSettings
from ivr.bench.settings import BenchSettings
from ivr.broker import Mosquitto, free_port
from ivr.dialplans import load_dialplan_file
from ivr.errors import HotlineError, PbxError
from ivr.pbx import Pbx, PbxSettings
from routing.dialplan_model import required_recordings
from routing.native import compile_dialplan

REPO = Path(__file__).resolve().parents[2]
CALLER_CONTEXT = "bench-caller"
AGENT_CONTEXT = "bench-agent"
NATIVE_PREFIX = "yht-native"
BENCH_USER = "bench"
SERVER_USER = "yihaotong"
AGENT_BASE = 100000

# Callers and agents. Variables come with the originate (BENCH_*), and the
# agent's talk time is inherited from the caller through the queue (__ prefix).
BENCH_DIALPLAN = f"""
; The bench's callers (ivr/bench): answer, press a key during the menu, the
; desk key during the repeated menu, then wait for the agent to end the call;
; a caller hangs up by itself only when no agent ever does.
[{CALLER_CONTEXT}]
exten => _X.,1,Answer()
 same => n,GotoIf($[${{BENCH_SILENT}}]?keys)
 ; A phone sends audio all the time (RTP every 20 ms): so does this caller.
 same => n,PlayTones(425)
 same => n(keys),Wait(${{BENCH_WAIT1}})
 same => n,SendDTMF(${{BENCH_KEY1}})
 same => n,Wait(${{BENCH_WAIT2}})
 same => n,SendDTMF(${{BENCH_KEY2}})
 same => n,Wait(${{BENCH_LIMIT}})
 same => n,Hangup()

; The bench's agents: queue members Local/<n>@{AGENT_CONTEXT}/n who answer at
; once, talk ${{BENCH_TALK}} seconds and hang up.
[{AGENT_CONTEXT}]
exten => _X.,1,Answer()
 same => n,Wait(${{BENCH_TALK}})
 same => n,Hangup()
"""

# Only what the bench measures reaches its session; ';' must be escaped in
# Asterisk's configuration files.
_CALLER_CHANNEL = rf"@{CALLER_CONTEXT}-.*\;1$"
BENCH_MANAGER_USER = f"""
; The bench's own session (ivr/bench): originates callers, adds agents, and
; receives only the events it measures.
[{BENCH_USER}]
secret = {{secret}}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = call,agent,dtmf,agi,dialplan
write = originate,call,agent
eventfilter(name(OriginateResponse)) =
eventfilter(name(Newexten),header(Application),method(regex)) = ^(Answer|BackGround|Playback)$
eventfilter(name(AGIExecStart),header(Command),method(regex)) = ^(GET DATA|STREAM FILE)
eventfilter(name(DTMFEnd),header(Channel),method(regex)) = {_CALLER_CHANNEL}
eventfilter(name(QueueCallerJoin)) =
eventfilter(name(AgentConnect)) =
eventfilter(name(AgentComplete)) =
eventfilter(name(Hangup),header(Channel),method(regex)) = {_CALLER_CHANNEL}
"""  # noqa: E501 - Asterisk reads a filter on one line


# Events the server never reads, a good half of what a call sends it. Only with
class BenchPbx(Pbx):
    """Our Asterisk configuration plus the bench's AMI account."""

    def __init__(self, settings: PbxSettings, bench_secret: str) -> None:
        super().__init__(settings)
        self._bench_secret = bench_secret

    def render(self) -> None:
        super().render()
        path = self.instance_dir / "etc" / "manager.conf"
        text = path.read_text()
        text += BENCH_MANAGER_USER.format(secret=self._bench_secret)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        tmp.replace(path)

    @property
    def pid(self) -> int | None:
        try:
            return int((self.instance_dir / "run" / "asterisk.pid").read_text())
        except (OSError, ValueError):
            return None


class BenchStack:
    def __init__(
        self,
        settings: BenchSettings,
        data_dir: Path,
        plan_path: Path = REPO / "dialplans" / "12345.yaml",
    ) -> None:
        self.settings = settings
        self.data_dir = Path(data_dir).resolve()
        self.plan_path = Path(plan_path)
        self.plan = load_dialplan_file(self.plan_path)
        self.pbx: BenchPbx | None = None
        self.broker: Mosquitto | None = None
        self.session: AmiSession | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.sounds_dir = ""  # as Asterisk sees it, known once started
        self.desks = {desk: self.plan.queue_name(desk) for desk in self.plan.desks}
        self._session_task: asyncio.Task | None = None
        self._secrets = {
            "ami": secrets.token_urlsafe(18),
            "bench": secrets.token_urlsafe(18),
            "pstn": secrets.token_urlsafe(12),
        }
        self._stats_seq = 0

    # -- paths -----------------------------------------------------------------

    @property
    def store_path(self) -> Path:
        return self.data_dir / "tickets.db"

    @property
    def stats_path(self) -> Path:
        return self.data_dir / "server-stats.json"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "server.log"

    # -- start and stop --------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = self.settings.ports
        pbx_settings = PbxSettings(
            name=self.settings.instance,
            sip_port=ports.sip,
            ami_port=ports.ami,
            rtp_start=ports.rtp_start,
            rtp_end=ports.rtp_end,
            ami_user=SERVER_USER,
            ami_secret=self._secrets["ami"],
            pstn_password=self._secrets["pstn"],
            desks=tuple(dict.fromkeys(self.desks.values())),
        )
        probe = Pbx(pbx_settings)
        sounds = await asyncio.to_thread(lambda: probe.asterisk_path(probe.sounds_dir))
        native = compile_dialplan(self.plan, sounds_dir=sounds, prefix=NATIVE_PREFIX)
        self.sounds_dir = sounds
        self.pbx = BenchPbx(
            replace(pbx_settings, extra_dialplan=native + BENCH_DIALPLAN),
            self._secrets["bench"],
        )
        prompts = self.data_dir / "prompts"
        await asyncio.to_thread(self._make_prompts, prompts)
        await self.pbx.start()
        self.pbx.install_prompts(prompts)
        # Not in modules.conf: only the bench's callers send DTMF and tones.
        for module in ("app_senddtmf.so", "app_playtones.so"):
            await self.pbx.cli(f"module load {module}")

        self.broker = Mosquitto(
            free_port(), persistence=False, state_dir=self.data_dir / "mqtt"
        )
        await self.broker.start()

        self.session = AmiSession(
            AmiSettings(
                port=ports.ami,
                username=BENCH_USER,
                secret=self._secrets["bench"],
                action_timeout=20.0,
            )
        )
        self._session_task = asyncio.create_task(self.session.run(), name="bench-ami")
        await self.session.wait_connected(15)
        await self._add_agents()

    async def stop(self) -> None:
        await self.stop_server()
        if self.session is not None:
            await self.session.close()
        if self._session_task is not None:
            self._session_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._session_task
        if self.broker is not None:
            await self.broker.stop()
        if self.pbx is not None:
            await self.pbx.stop()

    async def __aenter__(self) -> BenchStack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the pieces --------------------------------------------------------------

    def _make_prompts(self, folder: Path) -> None:
        """Short tones, the same for both arms: <folder>/<lang>/<name>.wav."""
        s = self.settings
        seconds = {
            self.plan.start.greeting: s.greeting_seconds,
            self.plan.menus[self.plan.start.menu].prompt: s.menu_seconds,
        }
        for language, name in required_recordings(self.plan):
            length = seconds.get(name, s.other_prompt_seconds)
            _write_tone(folder / language / f"{name}.wav", length)

    async def _add_agents(self) -> None:
        count = self.settings.agents_per_desk
        number = AGENT_BASE
        for desk, queue in self.desks.items():
            actions = []
            for i in range(count):
                number += 1
                interface = f"Local/{number}@{AGENT_CONTEXT}/n"
                actions.append(
                    self.session.action(
                        "QueueAdd",
                        {
                            "Queue": queue,
                            "Interface": interface,
                            "MemberName": f"bench-{desk}-{i + 1}",
                            "Penalty": 0,
                            "Paused": "false",
                        },
                    )
                )
            await asyncio.gather(*actions)
        log.demo.info("bench agents: %d per desk, %d desks", count, len(self.desks))

    def _write_server_config(self) -> Path:
        secret_file = self.data_dir / "secrets" / "ami.secret"
        secret_file.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self._secrets["ami"])
        q = json.dumps  # a TOML basic string is a JSON string
        text = f"""# Written by ivr/bench for one bench run.
[hotline]
number = "12345"
inbound_context = "from-pstn"

[ami]
host = "127.0.0.1"
port = {self.settings.ports.ami}
username = {q(SERVER_USER)}
secret_file = {q(str(secret_file))}

[mqtt]
host = "127.0.0.1"
port = {self.broker.port}
client_id = "yihaotong-bench"

[store]
path = {q(str(self.store_path))}

[dialplan]
path = {q(str(self.plan_path))}

[asterisk]
sounds_dir = {q(self.sounds_dir)}
"""
        path = self.data_dir / "hotline.toml"
        path.write_text(text)
        return path

    # -- the server process --------------------------------------------------------

    async def start_server(self, timeout: float = 30.0) -> None:
        """A fresh server on a fresh ticket store; returns once it is logged in."""
        if self.server is not None:
            return
        self.server = self._spawn_server()
        deadline = time.monotonic() + timeout
        while True:
            stats = self._read_stats()
            if stats and stats.get("ready"):
                self._stats_seq = stats["seq"]
                return
            if self.server.poll() is not None:
                code, self.server = self.server.returncode, None
                raise HotlineError(
                    f"the bench's server exited (status {code}); see {self.server_log}"
                )
            if time.monotonic() > deadline:
                await self.stop_server()
                raise HotlineError(f"the server was not ready in {timeout} s")
            await asyncio.sleep(0.1)

    def _spawn_server(self) -> subprocess.Popen[bytes]:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.store_path}{suffix}").unlink(missing_ok=True)
        self.stats_path.unlink(missing_ok=True)
        config = self._write_server_config()
        command = [sys.executable, "-m", "ivr.bench.server"]
        if self.settings.server_nice:
            command = ["nice", "-n", str(self.settings.server_nice), *command]
        arguments = [str(config), str(self.stats_path)]
        if self.settings.proposals:
            arguments.append("--proposals=" + ",".join(self.settings.proposals))
        return spawn_server([*command, *arguments], self.server_log)

    async def stop_server(self) -> None:
        proc, self.server = self.server, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            for _ in range(int(wait / 0.05)):
                if proc.poll() is not None:
                    return
                await asyncio.sleep(0.05)
        raise HotlineError(f"the bench's server (pid {proc.pid}) will not stop")

    async def server_stats(self, timeout: float = 5.0) -> dict:
        """The server's counters now (it writes them on SIGUSR1)."""
        if self.server is None or self.server.poll() is not None:
            raise HotlineError("the bench's server is not running")
        self.server.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self._read_stats()
            if stats and stats["seq"] > self._stats_seq:
                self._stats_seq = stats["seq"]
                return stats
            await asyncio.sleep(0.02)
        raise HotlineError(f"the server did not report its counters in {timeout} s")

    def _read_stats(self) -> dict | None:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return None

    # -- Asterisk ----------------------------------------------------------------

    async def active_channels(self) -> int:
        text = await self.pbx.cli("core show channels count")
        match = re.search(r"(\d+) active channels?", text)
        if match is None:
            raise PbxError(f"unexpected 'core show channels count' output: {text!r}")
        return int(match.group(1))

    async def wait_idle(self, timeout: float = 30.0) -> int:
        """Wait until Asterisk has no channel up; the number left at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            left = await self.active_channels()
            if left == 0 or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)

    async def hang_up_callers(self) -> None:
        """End every bench caller still up (a phase past its deadline)."""
        with contextlib.suppress(Exception):
            await self.session.action(
                "Hangup", {"Channel": f"/^Local/[0-9]+@{CALLER_CONTEXT}-/"}
            )


def _write_tone(path: Path, seconds: float, rate: int = 8000) -> None:
    """A quiet 425 Hz tone (China's dial-tone pitch), 8 kHz mono 16-bit."""
    if path.exists():
        with contextlib.suppress(wave.Error, OSError), wave.open(str(path)) as old:
            if abs(old.getnframes() / old.getframerate() - seconds) < 0.01:
                return
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    for i in range(int(rate * seconds)):
        sample = 0.05 * math.sin(2 * math.pi * 425 * i / rate)
        frames += struct.pack("<h", int(32767 * sample))
    tmp = path.with_name(path.name + ".tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    tmp.replace(path)


def spawn_server(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a hotline server process from the repository, its output
    appended to ``log_path``; it reads the AMI secret from its own file.

    Popen, not asyncio's: fork+exec takes a millisecond or two, and the
    process is watched with poll(), outliving no event loop's transport.
    """
    env = {k: v for k, v in os.environ.items() if k != "YHT_AMI_SECRET"}
    with log_path.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
