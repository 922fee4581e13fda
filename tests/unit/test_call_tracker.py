"""The call tracker on AMI events: tickets opened, completed and named right,
with a real ticket store and the events as the parser delivers them."""

from __future__ import annotations

import pytest

from ivr.ami.parser import AmiParser
from ivr.calls import CallTracker
from ivr.tickets import TicketStore


class Sink:
    def __init__(self):
        self.events = []

    def publish(self, type, topic, data):
        self.events.append((type, topic, data))


@pytest.fixture
async def tracker(tmp_path):
    store = await TicketStore.open(tmp_path / "t.db")
    tracker = CallTracker(store, Sink())
    yield tracker
    await store.close()


def feed(tracker: CallTracker, data: bytes) -> None:
    parser = AmiParser()
    parser.greeting = ""
    for message in parser.feed(data):
        tracker.handle(message)


# Case 06, with the hotline's inbound context and number on the Newchannel.
CASE06 = (
    b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/pstn-00000011\r\n"
    b"Context: from-pstn\r\nExten: 12345\r\nCallerIDNum: 13800000003\r\n"
    b"CallerIDName: \xd0\x9a\xd0\xbb\xd0\xb8\xd0\xb5\xd0\xbd\xd1\x82 Cargo K12\xd0\r\n"
    b"Uniqueid: 1700000000.200\r\nLinkedid: 1700000000.200\r\n\r\n"
    b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/pstn-00000011\r\n"
    b"Uniqueid: 1700000000.200\r\nCause: 16\r\nCause-txt: Normal Clearing\r\n\r\n"
)


async def run(tracker: CallTracker) -> None:
    import asyncio

    worker = asyncio.create_task(tracker.run())
    await tracker.drain()
    worker.cancel()


async def test_case06_cut_name_is_cleaned_and_the_hangup_still_closes_the_ticket(
    tracker,
):
    feed(tracker, CASE06)
    await run(tracker)
    (ticket,) = await tracker.store.find()
    assert ticket["caller_name"] == "Клиент Cargo K12\ufffd"
    assert ticket["status"] == "closed"
    assert ticket["outcome"] == "abandoned_on_arrival"
    assert ticket["hangup_cause"] == 16


async def test_calls_to_other_numbers_or_contexts_are_not_hotline_calls(tracker):
    other = CASE06.replace(b"Exten: 12345", b"Exten: 6001")
    feed(tracker, other)
    await run(tracker)
    assert await tracker.store.find() == []


async def test_a_call_answered_from_a_queue_is_answered_with_agent_and_times(tracker):
    events = CASE06.split(b"Event: Hangup")[0] + (
        b"Event: QueueCallerJoin\r\nChannel: PJSIP/pstn-00000011\r\nQueue: yi\r\n"
        b"Position: 1\r\n\r\n"
        b"Event: AgentConnect\r\nChannel: PJSIP/pstn-00000011\r\nQueue: yi\r\n"
        b"Interface: PJSIP/6004\r\nMemberName: Ayi\r\nHoldTime: 2\r\n\r\n"
        b"Event: AgentComplete\r\nChannel: PJSIP/pstn-00000011\r\nQueue: yi\r\n"
        b"TalkTime: 30\r\nReason: agent\r\n\r\n"
        b"Event: Hangup\r\nChannel: PJSIP/pstn-00000011\r\nCause: 16\r\n\r\n"
    )
    feed(tracker, events)
    await run(tracker)
    (ticket,) = await tracker.store.find()
    assert ticket["outcome"] == "answered"
    assert (ticket["agent"], ticket["agent_name"], ticket["queue"]) == (
        "6004",
        "Ayi",
        "yi",
    )
    assert ticket["desk"] == "yi"  # reached the queue without the IVR
    assert ticket["ended_by"] == "agent"
    types = [t for t, _, _ in tracker.events.events]
    assert types == ["call.arrived", "call.queued", "call.answered", "call.ended"]


async def test_agent_complete_without_channel_fields_is_matched_by_agent(tracker):
    events = CASE06.split(b"Event: Hangup")[0] + (
        b"Event: QueueCallerJoin\r\nChannel: PJSIP/pstn-00000011\r\nQueue: yi\r\n\r\n"
        b"Event: AgentConnect\r\nChannel: PJSIP/pstn-00000011\r\nQueue: yi\r\n"
        b"Interface: PJSIP/6004\r\nMemberName: Ayi\r\n\r\n"
        b"Event: AgentComplete\r\nQueue: yi\r\nInterface: PJSIP/6004\r\n"
        b"TalkTime: 30\r\nReason: caller\r\n\r\n"
    )
    feed(tracker, events)
    await run(tracker)
    (ticket,) = await tracker.store.find()
    assert ticket["ended_by"] == "caller"
    assert ticket["talk_time"] is not None


async def test_a_failing_ticket_write_is_tried_again_and_nothing_is_lost(
    tracker, monkeypatch
):
    from ivr import calls
    from ivr.errors import TicketStoreError

    monkeypatch.setattr(calls, "WRITE_RETRY_DELAYS", (0.01, 0.01, 0.01))
    real_open = tracker.store.open_ticket
    failures = []

    async def flaky_open(**fields):
        if len(failures) < 2:
            failures.append("disk I/O error")
            raise TicketStoreError("disk I/O error")
        return await real_open(**fields)

    monkeypatch.setattr(tracker.store, "open_ticket", flaky_open)
    feed(tracker, CASE06)
    await run(tracker)
    (ticket,) = await tracker.store.find()
    assert len(failures) == 2
    assert ticket["status"] == "closed"


async def test_a_call_that_hung_up_before_its_menu_is_not_adopted_again(tracker):
    from ivr.errors import AgiHangup

    feed(tracker, CASE06)
    with pytest.raises(AgiHangup):
        await tracker.call_for("PJSIP/pstn-00000011", "1700000000.200", {})
    assert tracker.calls == {}
    await run(tracker)


async def test_keys_after_the_menu_are_kept_apart_from_menu_choices(tracker):
    """A key pressed to the agent or in the survey is not a menu choice."""

    def dtmf(digit: str) -> bytes:
        return (
            b"Event: DTMFEnd\r\nChannel: PJSIP/pstn-00000011\r\nDigit: "
            + digit.encode()
            + b"\r\nDirection: Received\r\nDurationMs: 160\r\n\r\n"
        )

    events = CASE06.split(b"Event: Hangup")[0] + (
        b"Event: QueueCallerJoin\r\nChannel: PJSIP/pstn-00000011\r\nQueue: yi\r\n"
        b"Position: 1\r\n\r\n"
        b"Event: AgentConnect\r\nChannel: PJSIP/pstn-00000011\r\nQueue: yi\r\n"
        b"Interface: PJSIP/6004\r\nMemberName: Ayi\r\nHoldTime: 2\r\n\r\n"
        + dtmf("1")
        + b"Event: Hangup\r\nChannel: PJSIP/pstn-00000011\r\nCause: 16\r\n\r\n"
    )
    feed(tracker, events)
    await run(tracker)
    (ticket,) = await tracker.store.find()
    assert [(k["key"], k.get("during")) for k in ticket["keys"]] == [("1", "answered")]
