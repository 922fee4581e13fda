"""The fault lab: the whole hotline, with the server in a process of its own.

A fault test kills things (Asterisk, the server, the broker), so it has a Lab
of its own on ports of its own, and the server runs as ``python -m
tests.faults.serve`` so that SIGKILL hits it as it would hit a crashed server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ivr.bench.stack import spawn_server
from ivr.errors import HotlineError
from ivr.lab import Lab, LabPorts, PromptTiming
from tests.faults.results import ROWS, FaultRow
from tests.support.tcp import Relay

# Seconds of AMI silence before the server pings and then drops the link.
AMI_KEEPALIVE = 4.0
# Seconds a ticket write waits for a locked store before it is journaled.
STORE_BUSY_TIMEOUT = 2.0


@dataclass(frozen=True)
class Channel:
    name: str
    context: str
    exten: str
    application: str
    caller: str
    bridge: str


class FaultLab(Lab):
    def __init__(self, name: str, ports: LabPorts, *, data_dir: Path, **kw) -> None:
        super().__init__(name, ports, data_dir=data_dir, **kw)
        self.server_proc: subprocess.Popen | None = None
        self.server_log = data_dir / "server.log"
        self._server_config = data_dir / "server.json"
        self._plan = None
        # The server reaches AMI through a relay a test can cut or freeze.
        self.ami_relay: Relay | None = None

    # -- start and stop --------------------------------------------------------

    async def start(self) -> FaultLab:
        raw, self._plan = await self._start_services()
        self.config = self._config(raw)
        self.ami_relay = Relay(self.ports.ami)
        await self.ami_relay.start()
        self._write_server_config(raw)
        await self.start_server()
        await self._start_agents()
        await self.wait_members("general", len(self.config.agents))
        return self

    def _write_server_config(self, raw: dict) -> None:
        raw = json.loads(json.dumps(raw))
        raw["ami"] = {
            **raw.get("ami", {}),
            "port": self.ami_relay.port,
            "secret_file": str(self.data_dir / "secrets" / "ami.secret"),
            "keepalive": AMI_KEEPALIVE,
        }
        raw["mqtt"] = {
            **raw.get("mqtt", {}),
            "port": self.ports.mqtt,
            "client_id": f"yihaotong-{self.name}",
            "spool": str(self.data_dir / "events.spool"),
        }
        raw["store"] = {"path": str(self.data_dir / "tickets.db")}
        raw["dialplan"] = {"path": str(self.config.dialplan_path)}
        raw["asterisk"] = {
            "sounds_dir": self.config.sounds_dir,
            # pjsip.conf includes it: the server denies attackers there.
            "sip_blocklist": str(self.sip_blocklist),
        }
        self._server_config.write_text(json.dumps(raw), encoding="utf-8")

    async def start_server(self, timeout: float = 30) -> float:
        """Start the server process; seconds until it logged in to Asterisk."""
        started = time.monotonic()
        self.server_proc = self._spawn_server()
        while time.monotonic() - started < timeout:
            if self.server_proc.poll() is not None:
                raise HotlineError(
                    f"the fault lab's server exited ({self.server_proc.returncode}); "
                    f"see {self.server_log.name} in the lab's folder"
                )
            if await self.server_logged_in():
                # After login it rescues, resyncs and re-adds agents.
                await asyncio.sleep(1.0)
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise HotlineError(f"the fault lab's server did not log in in {timeout} s")

    def _spawn_server(self) -> subprocess.Popen:
        return spawn_server(
            [
                sys.executable,
                "-m",
                "tests.faults.serve",
                str(self._server_config),
                # A short busy timeout: a locked store sends writes to the
                # journal within seconds, not after 30.
                f"--busy-timeout={STORE_BUSY_TIMEOUT:g}",
            ],
            self.server_log,
        )

    async def server_logged_in(self) -> bool:
        user = self.config.ami.username
        try:
            shown = await self.pbx.cli("manager show connected", timeout=5)
        except HotlineError:
            return False
        return any(line.split()[:1] == [user] for line in shown.splitlines())

    def kill_server(self) -> None:
        if self.server_proc is not None and self.server_proc.poll() is None:
            os.kill(self.server_proc.pid, signal.SIGKILL)
            self.server_proc.wait(5)
        self.server_proc = None

    async def stop(self) -> None:
        await self._stop_agents()
        self.farm = None
        if self.server_proc is not None and self.server_proc.poll() is None:
            self.server_proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.server_proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.kill_server()
        self.server_proc = None
        if self.ami_relay is not None:
            await self.ami_relay.close()
        await super().stop()

    @property
    def sip_blocklist(self) -> Path:
        return self.pbx.instance_dir / "etc" / "pjsip_blocked.conf"

    def timing(self) -> PromptTiming:
        if self._timing is None:
            self._timing = PromptTiming.of(self._plan, self.pbx.sounds_dir)
        return self._timing

    # -- what Asterisk and the store say -----------------------------------------

    async def channels(self) -> list[Channel]:
        try:
            text = await self.pbx.cli("core show channels concise", timeout=5)
        except HotlineError:
            return []
        found = []
        for line in text.splitlines():
            parts = line.split("!")
            if len(parts) >= 13:
                found.append(
                    Channel(parts[0], parts[1], parts[2], parts[5], parts[7], parts[12])
                )
        return found

    async def wait_members(self, queue: str, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            shown = await self.pbx.cli(f"queue show {queue}")
            if shown.count("PJSIP/") >= count and "Unavailable" not in shown:
                return
            if time.monotonic() > deadline:
                raise HotlineError(f"queue {queue} has not its agents:\n{shown}")
            await asyncio.sleep(0.5)

    def tickets(self) -> list[dict]:
        """Every ticket in the store, read by a connection of our own."""
        path = self.data_dir / "tickets.db"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM tickets ORDER BY id")]
        finally:
            db.close()


# -- measurements shared by the fault tests --------------------------------------


async def calls_in_menu(lab: FaultLab, numbers, settle: float) -> list:
    """Each number calls the hotline; the calls once all are answered and
    the greeting has played, plus ``settle`` seconds."""
    calls = [await (await lab.caller(n)).call(lab.hotline_uri()) for n in numbers]
    for call in calls:
        await call.wait_state("CONFIRMED", timeout=15)
    await asyncio.sleep(lab.timing().greeting + settle)
    return calls


async def caller_apps(lab: FaultLab, numbers) -> dict[str, str]:
    """What each caller's channel runs now (AGI, Queue, ...), by caller number."""
    return {
        c.caller: c.application
        for c in await lab.channels()
        if c.name.startswith("PJSIP/pstn") and c.caller in numbers
    }


async def until_queued(lab: FaultLab, numbers, since: float, timeout: float) -> dict:
    """Seconds from ``since`` until each caller was in a queue (or talking).

    An upper bound of the caller's silence: a prompt that was playing when the
    fault struck plays on.
    """
    reached: dict[str, float] = {}
    while len(reached) < len(numbers) and time.monotonic() - since < timeout:
        for number, app in (await caller_apps(lab, numbers)).items():
            if app == "Queue" and number not in reached:
                reached[number] = round(time.monotonic() - since, 2)
        await asyncio.sleep(0.2)
    return reached


async def closed_tickets(
    lab: FaultLab, before: set[str], numbers, timeout: float = 20
) -> list[dict]:
    """The callers' new tickets once all are closed (or what there is by then)."""
    deadline = time.monotonic() + timeout
    while True:
        mine = [
            t
            for t in await asyncio.to_thread(lab.tickets)
            if t["linkedid"] not in before and t["caller_number"] in numbers
        ]
        done = all(t["status"] == "closed" for t in mine)
        if (len(mine) >= len(numbers) and done) or time.monotonic() > deadline:
            return mine
        await asyncio.sleep(0.5)


def ended_count(events: list[dict], tickets: list[dict]) -> int:
    """How many of these tickets' calls had their call.ended event on MQTT."""
    ids = {t["linkedid"] for t in tickets}
    return len({e["linkedid"] for e in events if e["type"] == "call.ended"} & ids)


def events_lost(events: list[dict], tickets: list[dict]) -> int:
    """call.arrived and call.ended events missing for these tickets."""
    arrived = {e["linkedid"] for e in events if e["type"] == "call.arrived"}
    missing_arrived = sum(t["linkedid"] not in arrived for t in tickets)
    return missing_arrived + len(tickets) - ended_count(events, tickets)


async def hang_up_and_collect(
    lab: FaultLab, calls: dict, before: set[str], events, tickets_timeout: float = 20
) -> tuple[list[dict], list[dict]]:
    """:func:`hang_up_once_answered`; then the callers' closed tickets, and
    the events ``events`` (a subscriber) got up to each call's call.ended."""
    await hang_up_once_answered(lab, calls)
    mine = await closed_tickets(lab, before, calls, tickets_timeout)
    got = await events.wait_for(
        lambda got: ended_count(got, mine) >= len(calls), timeout=15
    )
    return mine, got


def add_row(
    fault: str, numbers, mine: list[dict], got: list[dict], silence: dict, recovery
) -> tuple[list[str], int]:
    """Add the fault's row to the suite's table, where a call ends well when
    an agent answered it. Returns the callers answered and the events lost."""
    by_caller = {t["caller_number"]: t for t in mine}
    answered = [n for n in numbers if by_caller.get(n, {}).get("outcome") == "answered"]
    lost = events_lost(got, mine)
    ROWS.append(
        FaultRow(
            fault,
            len(numbers),
            len(answered),
            len(numbers) - len(by_caller),
            lost,
            max(silence.values(), default=99.0),
            recovery,
        )
    )
    return answered, lost


async def hang_up_once_answered(
    lab: FaultLab, calls: dict, timeout: float = 60
) -> None:
    """Each caller hangs up a moment after an agent took the call.

    ``calls`` maps caller numbers to their calls. The talk itself proves
    nothing more, and leaving first keeps the suite short.
    """
    deadline = time.monotonic() + timeout
    waiting = dict(calls)
    while waiting and time.monotonic() < deadline:
        talking = {
            c.caller
            for c in await lab.channels()
            if c.name.startswith("PJSIP/pstn") and c.application == "Queue" and c.bridge
        }
        for number in list(waiting):
            if number in talking or waiting[number].disconnected:
                call = waiting.pop(number)
                if not call.disconnected:
                    await asyncio.sleep(0.5)
                    await call.hangup()
        await asyncio.sleep(0.2)
    for call in calls.values():
        await call.wait_disconnected(timeout=max(1.0, deadline - time.monotonic()))
