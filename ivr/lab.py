"""A whole hotline on this machine: Asterisk, Mosquitto, the server, softphones.

``hotline demo`` and the end-to-end tests both stand on it. It starts only
what is not already running and stops only what it started. All of it binds
to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import socket
import tomllib
import wave
from dataclasses import dataclass, field
from pathlib import Path

from ivr.broker import Mosquitto
from ivr.config import Config, from_dict
from ivr.dialplans import load_dialplan_file
from ivr.errors import HotlineError
from ivr.pbx import Pbx, PbxSettings
from ivr.prompts import build_placeholders
from ivr.queue_prompts import build_queue_prompts
from ivr.server import HotlineServer
from ivr.softphone.farm import SoftphoneFarm
from ivr.survey import build_survey_prompts

REPO = Path(__file__).resolve().parents[1]
RECORDINGS = REPO / "recordings" / "prompts"


@dataclass(frozen=True)
class LabPorts:
    sip: int = 5060
    ami: int = 5038
    rtp_start: int = 10000
    rtp_end: int = 10999
    mqtt: int = 1883
    # Asterisk's HTTP server for the browser softphones (issue 9); 0: sip + 28.
    http: int = 0

    @property
    def websocket(self) -> int:
        return self.http or self.sip + 28


@dataclass
class Agent:
    extension: str
    phone: object
    talk_seconds: float | None
    calls: list = field(default_factory=list)
    task: asyncio.Task | None = None


@dataclass(frozen=True)
class PromptTiming:
    """How long the start menu's prompts play, for callers acting on cue."""

    greeting: float
    menu: float
    timeout: float
    no_input: float

    @property
    def silent_round(self) -> float:
        return self.menu + self.timeout + self.no_input + 0.5

    @classmethod
    def of(cls, plan, sounds: Path) -> PromptTiming:
        menu = plan.menus[plan.start.menu]

        def seconds(prompt: str | None) -> float:
            if not prompt:
                return 0.0
            # Our own prompts are PCM WAV, which the standard module reads.
            try:
                with wave.open(str(sounds / "zh" / f"{prompt}.wav")) as audio:
                    return audio.getnframes() / audio.getframerate()
            except (OSError, wave.Error):
                return 3.0

        return cls(
            greeting=seconds(plan.start.greeting),
            menu=seconds(menu.prompt),
            timeout=menu.timeout,
            no_input=seconds(menu.no_input),
        )


class Lab:
    def __init__(
        self,
        name: str = "demo",
        ports: LabPorts | None = None,
        *,
        data_dir: Path | None = None,
        config_path: Path = REPO / "config" / "hotline.toml",
        dialplan: Path | None = None,
        agent_talk_seconds: float | None = 3.0,
        answer_delays: dict[str, float] | None = None,
        trunks: tuple[str, ...] = ("trunk-110",),
    ) -> None:
        self.name = name
        self.ports = ports or LabPorts()
        self.data_dir = data_dir or REPO / "var" / name
        self.config_path = config_path
        self.dialplan = dialplan
        self.agent_talk_seconds = agent_talk_seconds
        self.answer_delays = answer_delays or {}
        self.trunk_names = trunks
        self.pbx: Pbx | None = None
        self.broker: Mosquitto | None = None
        self.server: HotlineServer | None = None
        self.farm: SoftphoneFarm | None = None
        self.config: Config | None = None
        self.agents: dict[str, Agent] = {}
        self._server_task: asyncio.Task | None = None
        self._started: list[str] = []
        self._secrets: dict = {}
        self._timing: PromptTiming | None = None
        # Callers' numbers whose agent hung up, for callers answering the survey.
        self._agent_hangups: dict[str, asyncio.Event] = {}

    # -- set-up ----------------------------------------------------------------

    def prepare_pbx(self) -> tuple[dict, object]:
        """Secrets, dial plan, placeholder prompts and the Asterisk instance.

        Returns the raw configuration and the dial plan; sets ``self.pbx``.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._secrets = self._load_secrets()
        raw = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        plan = load_dialplan_file(
            self.dialplan
            or (self.config_path.parent / raw.get("dialplan", {}).get("path")).resolve()
        )
        build_placeholders(plan, RECORDINGS, self.data_dir / "prompts")
        build_queue_prompts(RECORDINGS, self.data_dir / "prompts")
        build_survey_prompts(RECORDINGS, self.data_dir / "prompts", plan.languages)
        agents = [str(a["extension"]) for a in raw.get("agents", [])]
        self.pbx = Pbx(
            PbxSettings(
                name=self.name,
                sip_port=self.ports.sip,
                ami_port=self.ports.ami,
                rtp_start=self.ports.rtp_start,
                rtp_end=self.ports.rtp_end,
                ami_secret=self._secrets["ami"],
                agents={ext: self._secret(f"agent-{ext}") for ext in agents},
                pstn_password=self._secrets["pstn"],
                trunks={t: self._secret(t) for t in self.trunk_names},
                desks=tuple(dict.fromkeys(plan.queue_name(d) for d in plan.desks)),
                http_port=self.ports.websocket,  # issue 9
            )
        )
        return raw, plan

    def install_prompts(self) -> None:
        self.pbx.install_prompts(self.data_dir / "prompts")
        if any(RECORDINGS.glob("*/*.wav")):
            self.pbx.install_prompts(RECORDINGS)

    async def start(self) -> Lab:
        raw, _ = await self._start_services()

        self.config = self._config(raw)
        self.server = HotlineServer(self.config)
        self.server.callback_dial = self._callback_dial
        self.server.softphone = self._softphone()  # issue 9
        self._server_task = asyncio.create_task(self.server.run(), name="server")
        await self._wait_server()

        await self._start_agents()
        return self

    async def _start_services(self) -> tuple[dict, object]:
        """Asterisk with its prompts, and Mosquitto unless one listens already.

        Returns the raw configuration and the dial plan.
        """
        raw, plan = await asyncio.to_thread(self.prepare_pbx)
        await self._start_pbx()
        self.install_prompts()
        if not _listening(self.ports.mqtt):
            self.broker = Mosquitto(self.ports.mqtt, state_dir=self.data_dir / "mqtt")
            await self.broker.start()
            self._started.append("mosquitto")
        return raw, plan

    async def _start_agents(self) -> None:
        """The softphone farm, and a phone for each agent of the configuration."""
        (self.data_dir / "phones").mkdir(exist_ok=True)
        self.farm = await SoftphoneFarm.start(record_dir=self.data_dir / "phones")
        for agent in self.config.agents:
            await self.add_agent(agent.extension)

    def _softphone(self):
        """The browser phones' WebSocket port and SIP accounts, for the desktop."""
        from ivr.web.pages_desk import Softphone

        return Softphone(
            self.ports.websocket,
            {
                a.extension: self._secret(f"agent-{a.extension}")
                for a in self.config.agents
            },
        )

    async def _start_pbx(self) -> None:
        reuse = self.pbx._control_answers()
        await self.pbx.start(reuse=reuse)
        if not reuse:
            self._started.append("asterisk")

    def _config(self, raw: dict) -> Config:
        raw = json.loads(json.dumps(raw))  # a deep copy
        secret_file = self.data_dir / "secrets" / "ami.secret"
        raw["ami"] = {
            **raw.get("ami", {}),
            "port": self.ports.ami,
            "secret_file": str(secret_file),
        }
        raw["mqtt"] = {
            **raw.get("mqtt", {}),
            "port": self.ports.mqtt,
            "client_id": f"yihaotong-{self.name}",
        }
        raw["store"] = {"path": str(self.data_dir / "tickets.db")}
        if self.dialplan is not None:
            raw["dialplan"] = {"path": str(self.dialplan)}
        raw["asterisk"] = {"sounds_dir": self.pbx.asterisk_path(self.pbx.sounds_dir)}
        env_secret = os.environ.pop("YHT_AMI_SECRET", None)
        try:
            return from_dict(raw, source=self.config_path, base=self.config_path.parent)
        finally:
            if env_secret is not None:
                os.environ["YHT_AMI_SECRET"] = env_secret

    async def _wait_server(self) -> None:
        ready = asyncio.create_task(self.server.ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._server_task}, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if self._server_task in done:
                self._server_task.result()  # raises the server's error
            raise HotlineError("the server did not log in to Asterisk within 30 s")

    async def add_agent(self, extension: str, *, auto_answer: bool = True) -> Agent:
        delay = self.answer_delays.get(extension, 0.3)
        phone = await self.farm.add_account(
            f"agent-{extension}",
            user=extension,
            password=self._secret(f"agent-{extension}"),
            port=self.ports.sip,
            auto_answer=auto_answer,
            answer_delay=delay,
        )
        agent = Agent(extension, phone, self.agent_talk_seconds)
        if self.agent_talk_seconds is not None and auto_answer:
            agent.task = asyncio.create_task(self._agent_loop(agent))
        self.agents[extension] = agent
        return agent

    async def _agent_loop(self, agent: Agent) -> None:
        """An agent who answers, talks a few seconds and hangs up."""
        while True:
            try:
                call = await agent.phone.wait_incoming(timeout=3600)
            except TimeoutError:
                continue
            agent.calls.append(call)
            # One call at a time per agent (ringinuse=no): talk inline.
            await self._talk(agent, call)

    async def _talk(self, agent: Agent, call) -> None:
        with contextlib.suppress(Exception):
            await call.wait_state("CONFIRMED", timeout=30)
            await asyncio.sleep(agent.talk_seconds)
            if not call.disconnected:
                await call.hangup()
                self._agent_hung_up(call.remote_uri)

    def _agent_hung_up(self, remote_uri: str) -> None:
        number = re.search(r"sip:([^@;>]+)", remote_uri or "")
        if number:
            self._agent_hangups.setdefault(number.group(1), asyncio.Event()).set()

    # -- agents and outside platforms the tests drive (issue 5) -------------------

    @contextlib.asynccontextmanager
    async def agents_in_hand(self):
        """Agents answer but never hang up by themselves while inside."""
        loops = [a for a in self.agents.values() if a.task is not None]
        for agent in loops:
            agent.task.cancel()
        await asyncio.gather(*(a.task for a in loops), return_exceptions=True)
        try:
            yield self.agents
        finally:
            for agent in loops:
                # Calls taken meanwhile are over: the loop starts with the next.
                agent.phone._next_incoming = len(agent.phone.incoming)
                agent.task = asyncio.create_task(self._agent_loop(agent))

    async def trunk_phone(self, trunk: str = "trunk-110"):
        """The outside platform's phone, registered to its trunk; answers by hand."""
        name = f"platform-{trunk}"
        if name in self.farm.phones:
            return self.farm.phones[name]
        return await self.farm.add_account(
            name, user=trunk, password=self._secret(trunk), port=self.ports.sip
        )

    # -- callers ---------------------------------------------------------------

    async def caller(self, number: str, name: str | None = None):
        """A citizen's phone presenting ``number`` on the public network."""
        phone_name = f"caller-{number}"
        if phone_name in self.farm.phones:
            return self.farm.phones[phone_name]
        return await self.farm.add_account(
            phone_name,
            user="pstn",
            auth_user="pstn",
            password=self._secrets["pstn"],
            port=self.ports.sip,
            register=False,
            caller_id=number,
            display_name=name,
        )

    async def run_caller(
        self,
        number: str,
        actions: tuple[str, ...] | list[str],
        *,
        name: str = "",
        answer_timeout: float = 15,
        end_timeout: float = 120,
        survey: str = "",
    ):
        """Call 12345 as ``number`` and act out ``actions``; return the call.

        Each action is a key to press, ``-`` to stay silent for one menu
        round, ``hangup`` to hang up in the menu, or ``hangup-queued`` to hang
        up a few seconds after the menu sent the call to a desk. Keys are sent
        while the menu prompt plays (the greeting cannot be interrupted).
        ``survey`` is the key pressed for the satisfaction survey once the
        lab's agent has hung up: ``-`` stays silent through it, and empty
        hangs up as soon as the agent has (what most callers do).
        """
        timing = self.timing()
        hung_up = self._agent_hangups.setdefault(number, asyncio.Event())
        hung_up.clear()
        phone = await self.caller(number, name or None)
        call = await phone.call(self.hotline_uri())
        try:
            await call.wait_state("CONFIRMED", timeout=answer_timeout)
            await asyncio.sleep(timing.greeting + 1.0)
            for action in actions:
                if action == "hangup":
                    await asyncio.sleep(1.0)
                    await call.hangup()
                    break
                if action == "hangup-queued":
                    await asyncio.sleep(4.0)
                    await call.hangup()
                    break
                if action == "-":
                    await asyncio.sleep(timing.silent_round)
                    continue
                await call.send_dtmf(action)
                # A wrong key: its prompt, then the menu again.
                await asyncio.sleep(timing.no_input + 1.5)
            if survey != "-":
                await self._answer_survey(call, hung_up, survey, end_timeout)
            await call.wait_disconnected(timeout=end_timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await call.hangup()
            raise
        return call

    async def _answer_survey(
        self, call, agent_gone: asyncio.Event, key: str, timeout: float
    ) -> None:
        """Press ``key`` once the survey question starts after the agent left."""
        gone = asyncio.ensure_future(agent_gone.wait())
        ended = asyncio.ensure_future(call.wait_disconnected(timeout=timeout))
        try:
            await asyncio.wait({gone, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gone, ended):
                task.cancel()
            await asyncio.gather(gone, ended, return_exceptions=True)
        if call.disconnected:
            return
        if not key:
            await asyncio.sleep(0.5)  # hang up after the agent, not with them
            with contextlib.suppress(Exception):
                await call.hangup()
            return
        await asyncio.sleep(1.5)  # the question begins; Read() takes a key at once
        with contextlib.suppress(Exception):
            await call.send_dtmf(key)

    def timing(self) -> PromptTiming:
        if self._timing is None:
            self._timing = PromptTiming.of(self.server.plan, self.pbx.sounds_dir)
        return self._timing

    def _callback_dial(self, number: str) -> str:
        """Callbacks reach the lab's caller phones directly (no PSTN here)."""
        phone = self.farm.phones.get(f"caller-{number}") if self.farm else None
        if phone is None:
            return self.config.routing.callback_dial.format(number=number)
        return f"PJSIP/pstn/sip:{number}@127.0.0.1:{phone.local_port}"

    def hotline_uri(self, number: str = "12345") -> str:
        return f"sip:{number}@127.0.0.1:{self.ports.sip}"

    # -- tear-down -------------------------------------------------------------

    async def _stop_agents(self) -> None:
        """Stop the agents' answering loops and close the softphone farm."""
        for agent in self.agents.values():
            if agent.task is not None:
                agent.task.cancel()
        if self.farm is not None:
            with contextlib.suppress(Exception):
                await self.farm.close()

    async def stop(self) -> None:
        await self._stop_agents()
        if self.server is not None and self._server_task is not None:
            self.server.stop()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._server_task, 15)
        if "mosquitto" in self._started and self.broker is not None:
            await self.broker.stop()
        if "asterisk" in self._started and self.pbx is not None:
            await self.pbx.stop()
        self._started.clear()

    async def __aenter__(self) -> Lab:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # -- secrets ---------------------------------------------------------------

    def _load_secrets(self) -> dict:
        folder = self.data_dir / "secrets"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / "secrets.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        changed = False
        for key in ("ami", "pstn"):
            if key not in data:
                data[key] = secrets.token_urlsafe(18)
                changed = True
        if changed:
            _write_private(path, json.dumps(data, indent=1))
        _write_private(folder / "ami.secret", data["ami"])
        return data

    def _secret(self, key: str) -> str:
        if key not in self._secrets:
            self._secrets[key] = secrets.token_urlsafe(12)
            _write_private(
                self.data_dir / "secrets" / "secrets.json",
                json.dumps(self._secrets, indent=1),
            )
        return self._secrets[key]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _listening(port: int) -> bool:
    """Whether a server accepts connections on 127.0.0.1:port.

    A bind test would be wrong: connections of a broker that just stopped sit
    in TIME_WAIT and make bind fail although nothing listens.
    """
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0
