"""Asterisk SIGKILLed with calls in the menu, in a queue and in talk.

The calls die with it; what must not die is their record. The server logs in
again once Asterisk is back, resynchronises, and closes each dead call's
ticket as ``ended_by_system``: none lost, none duplicated, none left open.
Agents are members again and the next call reaches a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.faults.results import ROWS, FaultRow
from tests.faults.stack import (
    calls_in_menu,
    closed_tickets,
    ended_count,
    events_lost,
    hang_up_once_answered,
)
from tests.support.mosquitto import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# caller -> the keys they press: silent in the menu, the Yi desk (its only
# agent paused: they wait), the business desk (answered: they talk).
CALLERS = {"13900009001": "", "13900009002": "4", "13900009003": "1"}
AFTER = "13900009004"


async def test_asterisk_killed_with_calls_in_menu_queue_and_talk(fault_lab) -> None:
    lab = fault_lab
    before = {t["linkedid"] for t in lab.tickets()}
    await lab.pbx.cli("queue pause member PJSIP/6004 queue yi reason fault-test")
    async with Subscriber(lab.ports.mqtt, "ivr/events/#") as events:
        placed = await calls_in_menu(lab, CALLERS, 1.0)
        calls = dict(zip(CALLERS, placed, strict=True))
        for number, keys in CALLERS.items():
            if keys:
                await calls[number].send_dtmf(keys)
        states = await _wait_states(lab, timeout=20)
        assert states == {
            "13900009001": "menu",
            "13900009002": "queue",
            "13900009003": "talk",
        }

        killed = time.monotonic()
        await lab.pbx.kill()
        await asyncio.sleep(1.0)
        await lab.pbx.start()
        lab.install_prompts()
        await _wait_logged_in(lab, timeout=30)
        recovered = time.monotonic() - killed
        for call in calls.values():
            with contextlib.suppress(Exception):
                await call.hangup()

        mine = await closed_tickets(lab, before, CALLERS)
        ended = await events.wait_for(
            lambda got: ended_count(got, mine) >= len(CALLERS), timeout=15
        )

        # After recovery: agents are members again and a new call is answered.
        await lab.wait_members("general", len(lab.config.agents))
        after = await (await lab.caller(AFTER)).call(lab.hotline_uri())
        await after.wait_state("CONFIRMED", timeout=15)
        await asyncio.sleep(lab.timing().greeting + 1.0)
        await after.send_dtmf("0")
        await hang_up_once_answered(lab, {AFTER: after})

    by_caller = {t["caller_number"]: t for t in mine}
    lost = events_lost(ended, mine)
    clean = [
        n
        for n in CALLERS
        if by_caller.get(n, {}).get("outcome") == "ended_by_system"
        and by_caller[n]["status"] == "closed"
    ]
    ROWS.append(
        FaultRow(
            "Asterisk SIGKILL, calls in menu/queue/talk",
            len(CALLERS),
            len(clean),
            len(CALLERS) - len(by_caller),
            lost,
            None,
            recovered,
        )
    )

    assert sorted(t["caller_number"] for t in mine) == sorted(CALLERS)
    assert clean == list(CALLERS), [(t["caller_number"], t["outcome"]) for t in mine]
    assert lost == 0
    new = await closed_tickets(lab, before, {AFTER})
    assert [t["outcome"] for t in new] == ["answered"], new


async def _wait_states(lab, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    want = {"13900009001": "menu", "13900009002": "queue", "13900009003": "talk"}
    while True:
        states = {}
        for channel in await lab.channels():
            if not channel.name.startswith("PJSIP/pstn"):
                continue
            if channel.application == "AGI":
                states[channel.caller] = "menu"
            elif channel.application == "Queue":
                states[channel.caller] = "talk" if channel.bridge else "queue"
        states = {n: s for n, s in states.items() if n in CALLERS}
        if states == want or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.2)


async def _wait_logged_in(lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await lab.server_logged_in():
        assert time.monotonic() < deadline, "the server did not log in again"
        await asyncio.sleep(0.2)
    # The server rescues, resynchronises and re-adds agents after login.
    await asyncio.sleep(1.0)
