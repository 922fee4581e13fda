"""The ticket store locked by another writer while calls come in.

Callers are still answered by the menu and routed to a person at once: the
IVR never waits on the store for long. Past the store's busy timeout the
writes go to the journal, the storage alarm is raised on MQTT, and when the
lock is released the journal is applied in order and the alarm cleared:
every call has its one complete ticket.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from tests.faults.stack import (
    add_row,
    calls_in_menu,
    hang_up_and_collect,
    until_queued,
)
from tests.support.mosquitto import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CALLERS = ("13900006001", "13900006002")
LOCKED_FOR = 20.0


async def test_calls_go_on_while_the_ticket_store_is_locked(fault_lab) -> None:
    lab = fault_lab
    before = {t["linkedid"] for t in lab.tickets()}
    lock = sqlite3.connect(lab.data_dir / "tickets.db", isolation_level=None)
    alarms = Subscriber(lab.ports.mqtt, "ivr/alarms/storage")
    await alarms.start()
    async with Subscriber(lab.ports.mqtt, "ivr/events/#") as events:
        lock.execute("BEGIN IMMEDIATE")  # the write lock, held
        locked = time.monotonic()
        try:
            calls = await calls_in_menu(lab, CALLERS, 1.0)
            for call in calls:
                await call.send_dtmf("0")
            routed = await until_queued(lab, CALLERS, time.monotonic(), 10)
            # Still locked: routing did not wait for the store.
            assert time.monotonic() - locked < LOCKED_FOR, "calls took too long"
            await asyncio.sleep(max(0.0, LOCKED_FOR - (time.monotonic() - locked)))
        finally:
            lock.rollback()
            lock.close()
        released = time.monotonic()
        # Caught up: the queued writes have landed (the routing included).
        while time.monotonic() - released < 30:
            new = [t for t in lab.tickets() if t["linkedid"] not in before]
            routed_in_store = [t for t in new if t["caller_number"] in CALLERS]
            if len(routed_in_store) == len(CALLERS) and all(
                t["desk"] for t in routed_in_store
            ):
                break
            await asyncio.sleep(0.2)
        caught_up = time.monotonic() - released

        mine, got = await hang_up_and_collect(
            lab, dict(zip(CALLERS, calls, strict=True)), before, events, 30
        )

    try:
        raised = await alarms.wait_for(
            lambda got: any(e["type"] == "alarm.storage_cleared" for e in got),
            timeout=15,
        )
    finally:
        await alarms.stop()
    journal = lab.data_dir / "tickets.db.journal"

    answered, lost = add_row(
        f"ticket store locked {LOCKED_FOR:.0f} s during calls",
        CALLERS,
        mine,
        got,
        routed,
        caught_up,
    )

    # Routed to a person within a second or two of the key, lock or not.
    assert set(routed) == set(CALLERS) and max(routed.values()) < 4, routed
    assert sorted(t["caller_number"] for t in mine) == sorted(CALLERS)
    assert answered == list(CALLERS), [(t["number"], t["outcome"]) for t in mine]
    for ticket in mine:
        assert ticket["desk"] == "general" and ticket["agent"], ticket
    assert lost == 0
    # The alarm went up while the store was locked and down after.
    kinds = [e["type"] for e in raised]
    assert kinds[-2:] == ["alarm.storage", "alarm.storage_cleared"], kinds
    assert journal.stat().st_size == 0  # every journaled write applied
    for ticket in mine:
        assert ticket["number"], ticket  # numbered once the journal applied
