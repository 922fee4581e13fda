"""Mosquitto down during calls, then back.

The broker stays away ``DOWN`` seconds, as issue 8 asks. Calls are routed
as fast as ever while the broker is away (case 21: AMI handling must not wait
on MQTT), and every event of those calls reaches a subscriber afterwards,
each call's in order.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.stack import (
    add_row,
    calls_in_menu,
    closed_tickets,
    ended_count,
    hang_up_once_answered,
    until_queued,
)
from tests.support.mosquitto import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CALLERS = ("13900005001", "13900005002")
DOWN = 30.0
ORDER = ("call.arrived", "call.routed", "call.queued", "call.answered", "call.ended")


async def test_calls_and_their_events_survive_the_broker_going_away(fault_lab):
    lab = fault_lab
    before = {t["linkedid"] for t in lab.tickets()}
    # A persistent subscriber: the broker keeps what it missed for it.
    async with Subscriber(lab.ports.mqtt, "ivr/events/#") as events:
        await lab.broker.stop()
        down = time.monotonic()
        calls = await calls_in_menu(lab, CALLERS, 1.0)
        for call in calls:
            await call.send_dtmf("0")
        routed = await until_queued(lab, CALLERS, time.monotonic(), 10)
        await hang_up_once_answered(lab, dict(zip(CALLERS, calls, strict=True)))
        mine = await closed_tickets(lab, before, CALLERS)
        assert lab.broker is not None and not lab.broker.running
        await asyncio.sleep(max(0.0, DOWN - (time.monotonic() - down)))
        outage = time.monotonic() - down

        await lab.broker.start()
        back = time.monotonic()
        got = await events.wait_for(
            lambda got: ended_count(got, mine) >= len(CALLERS), timeout=30
        )
        delivered = time.monotonic() - back

    answered, lost = add_row(
        f"Mosquitto down {outage:.0f} s during calls",
        CALLERS,
        mine,
        got,
        routed,
        delivered,
    )

    assert set(routed) == set(CALLERS) and max(routed.values()) < 4, routed
    assert answered == list(CALLERS)
    assert lost == 0
    for ticket in mine:
        kinds = [e["type"] for e in got if e.get("linkedid") == ticket["linkedid"]]
        assert [k for k in kinds if k in ORDER] == list(ORDER), kinds
