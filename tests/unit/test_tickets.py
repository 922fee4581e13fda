"""The ticket store on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from ivr.errors import TicketStoreError
from ivr.tickets import TicketStore


@pytest.fixture
async def store(tmp_path):
    store = await TicketStore.open(tmp_path / "tickets.db")
    yield store
    await store.close()


async def test_a_ticket_is_numbered_per_day_and_opened_once(store):
    first = await store.open_ticket(
        linkedid="1.1",
        channel="PJSIP/pstn-1",
        caller_number="13800000001",
        arrived_at="2026-12-03T08:00:00.000Z",
    )
    again = await store.open_ticket(
        linkedid="1.1", channel="PJSIP/pstn-1", caller_number="13800000001"
    )
    second = await store.open_ticket(
        linkedid="1.2",
        channel="PJSIP/pstn-2",
        caller_number="13800000002",
        arrived_at="2026-12-03T08:00:01.000Z",
    )
    assert first["number"] == "12345-20261203-000001"
    assert again["number"] == first["number"]
    assert second["number"] == "12345-20261203-000002"


async def test_closing_computes_wait_and_talk_and_keeps_the_timeline(store):
    await store.open_ticket(
        linkedid="2.1",
        channel="PJSIP/pstn-1",
        caller_number="13800000001",
        arrived_at="2026-12-03T08:00:00.000Z",
    )
    await store.update(
        "2.1",
        queue_entered_at="2026-12-03T08:00:10.000Z",
        desk="business",
        agent_answered_at="2026-12-03T08:00:14.500Z",
        agent="6001",
        keys=[{"key": "1", "at": "2026-12-03T08:00:05.000Z"}],
    )
    await store.record("2.1", "queued", {"desk": "business"})
    closed = await store.close_ticket(
        "2.1",
        outcome="answered",
        ended_at="2026-12-03T08:01:14.500Z",
        cause=16,
        cause_text="Normal Clearing",
    )
    assert closed["status"] == "closed"
    assert closed["queue_wait"] == 4.5
    assert closed["talk_time"] == 60.0
    assert closed["keys"] == [{"key": "1", "at": "2026-12-03T08:00:05.000Z"}]
    assert [e["kind"] for e in closed["timeline"]] == ["arrived", "queued", "ended"]
    assert await store.close_ticket("2.1", outcome="answered") is None


async def test_refuses_unknown_fields_and_outcomes(store):
    await store.open_ticket(linkedid="3.1", channel="c", caller_number="1")
    with pytest.raises(TicketStoreError, match="cannot set"):
        await store.update("3.1", status="closed")
    with pytest.raises(TicketStoreError, match="unknown outcome"):
        await store.close_ticket("3.1", outcome="vanished")
    with pytest.raises(TicketStoreError, match="no ticket"):
        await store.update("nope", desk="general")


async def test_case20_concurrent_writers_never_see_database_locked(tmp_path):
    """40 event-driven updates and 10 admin edits at once, plus a second process
    style connection holding a read-then-write transaction: all persist."""
    path = tmp_path / "tickets.db"
    store = await TicketStore.open(path)
    for n in range(10):
        await store.open_ticket(linkedid=f"c{n}", channel="ch", caller_number="1")

    # Another connection (another process in production) takes the write lock
    # for a while, the way case 20's "conn B" does.
    other = sqlite3.connect(path, timeout=30, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE tickets SET desk = 'held' WHERE linkedid = 'c0'")

    async def event_update(seq: int):
        await store.update(f"c{seq % 10}", agent=f"agent-{seq}")
        await store.record(f"c{seq % 10}", "event", {"seq": seq})

    async def admin_edit(seq: int):
        await store.update(f"c{seq}", route_reason=f"admin-{seq}")

    async def release_later():
        await asyncio.sleep(0.5)
        other.execute("COMMIT")

    results = await asyncio.gather(
        *(event_update(s) for s in range(40)),
        *(admin_edit(s) for s in range(10)),
        release_later(),
        return_exceptions=True,
    )
    other.close()
    assert [r for r in results if isinstance(r, BaseException)] == []
    for n in range(10):
        ticket = await store.get(f"c{n}")
        # The last event-driven write for this ticket, by sequence, wins.
        assert ticket["agent"] == f"agent-{max(s for s in range(40) if s % 10 == n)}"
        assert ticket["route_reason"] == f"admin-{n}"
        events = [e["seq"] for e in ticket["timeline"] if e["kind"] == "event"]
        assert events == sorted(events) and len(events) == 4
    assert await store.integrity_check() == "ok"
    await store.close()


async def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path):
    path = tmp_path / "not-a-db.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TicketStoreError, match="cannot open the ticket store"):
        await TicketStore.open(path)


async def test_ticket_numbers_follow_the_hotline_day_in_beijing(store):
    late = await store.open_ticket(
        linkedid="9.1", channel="c", caller_number="1",
        arrived_at="2026-12-03T17:30:00.000Z",  # 01:30 on the 4th in Beijing
    )  # fmt: skip
    assert late["number"].startswith("12345-20261204-")
