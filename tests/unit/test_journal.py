"""The write journal against a real SQLite store that refuses writes."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from ivr.journal import JournaledStore
from ivr.tickets import TicketStore


class Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict]] = []

    def publish(self, type: str, topic: str, data: dict, **options) -> None:
        self.published.append((type, topic, data))


async def eventually(check, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)


async def refuse_writes(store: TicketStore, refuse: bool) -> None:
    # SQLite's own refusal ("attempt to write a readonly database"), as a
    # read-only file gives; the store cannot tell the difference.
    await store.execute(f"PRAGMA query_only={int(refuse)}")


async def write_a_call(store, linkedid: str) -> dict:
    ticket = await store.open_ticket(
        linkedid=linkedid, channel="PJSIP/pstn-1", caller_number="13900001234"
    )
    await store.update(linkedid, desk="general", keys=[{"key": "0"}])
    await store.record(linkedid, "routed", {"desk": "general"})
    await store.close_ticket(linkedid, outcome="answered")
    return ticket


async def test_writes_wait_in_the_journal_and_apply_in_order_once(tmp_path):
    events = Events()
    raw = await TicketStore.open(tmp_path / "tickets.db")
    store = await JournaledStore.open(raw, events=events)
    try:
        await write_a_call(store, "before.1")
        await refuse_writes(raw, True)
        journaled = await write_a_call(store, "during.1")
        assert journaled["number"] == ""  # the store gives numbers, later
        assert store.failing and len(store.journal.pending) == 4
        assert [e[0] for e in events.published] == ["alarm.storage"]
        assert events.published[0][1] == "alarms/storage"
        # Reads still work, and show the store as it was.
        assert await raw.get("during.1") is None

        await refuse_writes(raw, False)
        await eventually(lambda: not store.journal.pending)
        ticket = await raw.get("during.1")
        assert ticket["number"].endswith("000002")
        assert (ticket["status"], ticket["desk"]) == ("closed", "general")
        kinds = [e["kind"] for e in ticket["timeline"]]
        assert kinds == ["arrived", "routed", "ended"]
        await eventually(lambda: not store.failing)
        assert [e[0] for e in events.published] == [
            "alarm.storage",
            "alarm.storage_cleared",
        ]
        assert (tmp_path / "tickets.db.journal").stat().st_size == 0
    finally:
        await store.close()


async def test_a_journal_left_by_a_killed_server_is_applied_at_start(tmp_path):
    raw = await TicketStore.open(tmp_path / "tickets.db")
    store = await JournaledStore.open(raw)
    await refuse_writes(raw, True)
    await write_a_call(store, "left.1")
    await store.close()  # as if killed: the journal stays on disk

    # The entry being applied when the server died went in, unmarked.
    raw = await TicketStore.open(tmp_path / "tickets.db")
    path = tmp_path / "tickets.db.journal"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["op"] for e in entries] == [
        "open_ticket",
        "update",
        "record",
        "close_ticket",
    ]
    await raw.open_ticket(**entries[0]["args"])
    await raw.update("left.1", **entries[1]["args"]["fields"])
    args = entries[2]["args"]
    await raw.record(args["linkedid"], args["kind"], args["data"], args["at"])

    store = await JournaledStore.open(raw)
    try:
        await eventually(lambda: not store.journal.pending)
        ticket = await raw.get("left.1")
        assert ticket["status"] == "closed"
        kinds = [e["kind"] for e in ticket["timeline"]]
        assert kinds == ["arrived", "routed", "ended"]  # routed once, not twice
        assert len(await raw.find()) == 1
    finally:
        await store.close()


async def test_a_write_that_makes_no_sense_is_not_journaled(tmp_path):
    store = await JournaledStore.open(await TicketStore.open(tmp_path / "t.db"))
    try:
        with pytest.raises(Exception, match="no ticket for call nobody"):
            await store.update("nobody", desk="general")
        assert not store.journal.pending and not store.failing
    finally:
        await store.close()


async def test_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "t.db.journal"
    path.write_text('{"seq": 1, "op": "update", "args": {"linke')
    store = await JournaledStore.open(await TicketStore.open(tmp_path / "t.db"))
    try:
        assert store.journal.pending == []
    finally:
        await store.close()


async def test_disk_full_for_store_and_journal_keeps_writes_in_memory(tmp_path):
    events = Events()
    raw = await TicketStore.open(tmp_path / "tickets.db")
    store = await JournaledStore.open(raw, events=events)
    try:
        await write_a_call(store, "before.1")
        # The journal's disk is full too: /dev/full answers every write ENOSPC.
        full = os.open("/dev/full", os.O_WRONLY)
        saved = os.dup(store.journal._fd)
        os.dup2(full, store.journal._fd)
        await refuse_writes(raw, True)
        for n in range(5):
            await write_a_call(store, f"during.{n}")
        assert store.failing and store.journal.in_memory == 20
        assert [e[0] for e in events.published] == ["alarm.storage"]

        os.dup2(saved, store.journal._fd)
        for fd in (full, saved):
            os.close(fd)
        await refuse_writes(raw, False)
        await eventually(lambda: not store.journal.pending)
        await eventually(lambda: not store.failing)
        for n in range(5):
            ticket = await raw.get(f"during.{n}")
            assert ticket["status"] == "closed", n
            kinds = [e["kind"] for e in ticket["timeline"]]
            assert kinds == ["arrived", "routed", "ended"]
        assert store.journal.in_memory == 0
        numbers = sorted(t["number"][-2:] for t in await raw.find())
        assert numbers == ["01", "02", "03", "04", "05", "06"]
    finally:
        await store.close()


async def test_a_ticket_opened_from_the_journal_reaches_its_call_and_handoff(
    tmp_path, monkeypatch
):
    from ivr.calls import CallTracker
    from ivr.handoff import Handoff
    from routing.transfer import Target

    monkeypatch.setattr("ivr.handoff.SEND_RETRY_DELAYS", (0.2,) * 10)
    events = Events()
    raw = await TicketStore.open(tmp_path / "tickets.db")
    store = await JournaledStore.open(raw, events=events)
    tracker = CallTracker(store, events)
    store.opened_late = tracker.ticket_opened_late
    told = []

    async def set_variable(channel: str, name: str, value: str) -> None:
        told.append((channel, name, value))

    tracker.set_channel_variable = set_variable
    worker = asyncio.create_task(tracker.run())
    target = Target("police", "110", "PJSIP/trunk-110", handoff_topic="handoff/p")
    handoff = Handoff(store, events, (target,), tmp_path)
    try:
        await refuse_writes(raw, True)
        call = tracker._arrive("PJSIP/pstn-7", "7.7", "13900001234", "")
        await tracker.drain()
        assert call.ticket_number == "" and store.journal.pending
        # The agent transfers the call to 110 while the store is still away.
        sending = asyncio.create_task(handoff.send("7.7", "police", "7.7-1"))
        await asyncio.sleep(0.5)
        assert not sending.done()

        await refuse_writes(raw, False)
        record = await asyncio.wait_for(sending, 10)
        await tracker.drain()
        assert call.ticket_number.startswith("12345-") and record["ticket"] == (
            call.ticket_number
        )
        assert told == [("PJSIP/pstn-7", "YHT_TICKET", call.ticket_number)]
        late = [d for t, _, d in events.published if t == "call.ticket"]
        assert late and late[0]["ticket"] == call.ticket_number
    finally:
        worker.cancel()
        await store.close()
