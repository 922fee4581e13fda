"""Waiting callers on AMI messages: overflow by withdraw, priorities, rejoining."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from panoramisk.message import Message

from ivr.calls import Call
from ivr.waiting import WaitingRoom
from routing.dialplan import parse_dialplan

PLAN = parse_dialplan(
    (Path(__file__).parents[1] / "e2e" / "data" / "agents.yaml").read_text()
)
CALLER = "PJSIP/pstn-00000001"


class Tracker:
    def __init__(self, call: Call) -> None:
        self.calls = {call.channel: call}
        self.notes: list[tuple] = []

    def by_channel(self, channel):
        return self.calls.get(channel)

    def note(self, call, kind, data):
        self.notes.append((kind, data))

    def flag(self, call, flag, kind, data):
        self.notes.append((kind, {"flag": flag, **data}))


class Session:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.entries: dict[str, list[dict]] = {}  # queue -> QueueEntry events

    async def action(self, name, headers=None, **kw):
        headers = dict(headers or {})
        self.sent.append((name, headers))
        response = Message({"Response": "Success"})
        if name == "QueueStatus":
            response.events = [
                Message({"Event": "QueueEntry", "Queue": headers["Queue"], **e})
                for e in self.entries.get(headers["Queue"], [])
            ]
        return response


class Clock:
    """Time that passes only when the room sleeps."""

    now = 500.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def join(queue: str) -> Message:
    # The "Priority" of QueueCallerJoin is the dialplan's line, not the queue's.
    return Message(
        {
            "Event": "QueueCallerJoin",
            "Channel": CALLER,
            "Queue": queue,
            "Priority": "14",
        }
    )


@dataclass
class Rig:
    room: WaitingRoom
    session: Session
    clock: Clock
    call: Call


@pytest.fixture
async def rig():
    call = Call("L1", CALLER, "13900000001", "", "now", desk="tibetan")
    call.ticket_number = "T1"
    session, clock = Session(), Clock()
    room = WaitingRoom(
        session, Tracker(call), lambda: PLAN, clock=clock, sleep=clock.sleep
    )
    owner = asyncio.create_task(room.run())
    yield Rig(room, session, clock, call)
    owner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await owner


async def ticks(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def variables(session: Session) -> dict[str, str]:
    return {h["Variable"]: h["Value"] for name, h in session.sent if name == "Setvar"}


async def test_widen_then_move_by_withdrawing_with_the_new_limits(rig):
    room, session = rig.room, rig.session
    session.entries["tibetan"] = [{"Channel": CALLER, "Position": "2", "Wait": "6"}]
    session.entries["general"] = [
        {"Channel": "PJSIP/pstn-a", "Priority": "0", "Wait": "30"},
        {"Channel": "PJSIP/pstn-b", "Priority": "0", "Wait": "3"},
    ]
    room.handle(join("tibetan"))
    waiter = room.waiters[CALLER]
    assert waiter.priority == 0 and waiter.plan.max_penalty == 0

    await ticks()  # 6 s later: widened
    assert variables(session) == {
        "YHT_DESK": "tibetan",
        "YHT_MAX_PENALTY": "2",
        "YHT_POSITION": "2",
        "YHT_PRIORITY": "0",
    }
    assert session.sent[-1] == (
        "QueueWithdrawCaller",
        {"Queue": "tibetan", "Caller": CALLER, "WithdrawInfo": "widen"},
    )
    assert waiter.withdrawing
    room.handle(Message({"Event": "QueueCallerLeave", "Channel": CALLER}))
    assert CALLER in room.waiters  # leaving to be withdrawn is no end

    # At 14 s the move waits until the dialplan has put the caller back.
    session.sent.clear()
    await ticks()
    assert rig.clock.now == 514.0 and session.sent == []
    room.handle(join("tibetan"))
    await ticks()
    assert variables(session) == {
        "YHT_DESK": "general",
        "YHT_MAX_PENALTY": "",  # no limit at the general desk
        "YHT_POSITION": "2",  # behind the caller waiting 30 s, ahead of 3 s
        "YHT_PRIORITY": "0",
    }
    assert session.sent[-1][1]["WithdrawInfo"] == "move"
    kinds = [kind for kind, _ in room.tracker.notes]
    assert kinds == ["overflow_widened", "overflow_moved"]
    assert room.tracker.notes[1][1]["flag"] == "needs a Tibetan interpreter"


async def test_a_caller_answered_or_gone_has_no_more_steps(rig):
    rig.room.handle(join("tibetan"))
    rig.room.handle(Message({"Event": "AgentConnect", "Channel": CALLER}))
    await ticks()
    assert rig.room.waiters == {} and rig.session.sent == []


async def test_a_repeat_caller_goes_ahead_of_first_time_callers_at_once(rig):
    room, session = rig.room, rig.session
    rig.call.repeat_of = "12345-20261201-000007"
    rig.call.priority = 5
    rig.call.desk = "psych"
    room.handle(join("psych"))
    await ticks()
    assert session.sent[0] == (
        "QueueChangePriorityCaller",
        {"Queue": "psych", "Caller": CALLER, "Priority": 6, "Immediate": "yes"},
    )
    assert variables(session) == {"YHT_PRIORITY": "6"}
    # A crisis then goes to the head of the line.
    result = await room.flag("T1", "crisis")
    assert result == {"ticket": "T1", "flag": "crisis", "waiting": True}
    assert session.sent[-2][1]["Priority"] == 10
    with pytest.raises(KeyError):
        await room.flag("12345-19990101-000001", "crisis")
