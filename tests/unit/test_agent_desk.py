"""The agents' desk on AMI messages: feature codes, wrap-up, reconcile, MQTT.

AMI bytes go through our own parser (case 16's snapshot verbatim); actions
are recorded by a fake session instead of reaching an Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import pytest
from panoramisk.message import Message

from ivr.agents import AgentDesk
from ivr.ami.parser import AmiParser
from routing.agents import WRAP_UP, AgentBook

# Case 16: the status refresh after the attended transfer (cases/README.md).
CASE_16_QUEUE_MEMBER = (
    b"Event: QueueMember\r\nQueue: queue1\r\nName: PJSIP/6001\r\n"
    b"Location: PJSIP/6001\r\nStateInterface: PJSIP/6001\r\nMembership: dynamic\r\n"
    b"Penalty: 0\r\nCallsTaken: 6\r\nLastCall: 0\r\nLastPause: 0\r\nInCall: 0\r\n"
    b"Status: 1\r\nPaused: 0\r\nPausedReason: \r\nWrapuptime: 10\r\n\r\n"
)


def ami(data: bytes) -> list[Message]:
    parser = AmiParser()
    parser.greeting = ""
    return list(parser.feed(data))


def event(name: str, **headers: str) -> Message:
    text = f"Event: {name}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    [message] = ami(text.encode() + b"\r\n")
    return message


@dataclass(frozen=True)
class Cfg:
    extension: str
    name: str
    skills: dict
    auto_login: bool = True


class FakeSession:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.queue_members: list[Message] = []

    async def action(self, name, headers=None, *, collect_events=False, **kw):
        self.sent.append((name, {k: v for k, v in (headers or {}).items() if v}))
        response = Message({"Response": "Success"})
        if name == "QueueStatus":
            response.events = list(self.queue_members)
        return response


@dataclass
class FakeBus:
    published: list[tuple[str, str, dict]] = field(default_factory=list)

    def publish(self, type, topic, data, *, retain=False, qos=1):
        self.published.append((type, topic, data))


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    agents: AgentDesk
    session: FakeSession
    bus: FakeBus
    clock: Clock


@pytest.fixture
async def desk():
    book = AgentBook(
        [
            Cfg("6001", "A", {"queue1": 1, "general": 2}),
            Cfg("6002", "B", {"queue2": 1}),
        ],
        {"queue1": "queue1", "queue2": "queue2", "general": "general"},
        wrapup={"queue1": 10, "queue2": 50},
    )
    session, bus, clock = FakeSession(), FakeBus(), Clock()
    agents = AgentDesk(session, bus, book, clock=clock)
    task = asyncio.create_task(agents.run())
    await agents.resync(adopt=True)  # nobody in a queue yet: auto_login
    session.sent.clear()
    yield Rig(agents, session, bus, clock)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def settle(agents: AgentDesk) -> None:
    done = agents._submit(lambda: asyncio.sleep(0))
    await done


def pauses(session: FakeSession) -> list[dict]:
    return [h for name, h in session.sent if name == "QueuePause"]


async def test_case_16_refresh_with_lastcall_0_keeps_the_wrapup_running(desk):
    desk.agents.handle(
        event("AgentConnect", Interface="PJSIP/6001", Channel="PJSIP/trunk-1")
    )
    # 6001 leaves the customer (the transfer completes): wrap-up of queue1.
    desk.agents.handle(
        event(
            "AgentComplete",
            Queue="queue1",
            Interface="PJSIP/6001",
            Channel="PJSIP/trunk-1",
            Reason="transfer",
        )
    )
    await settle(desk.agents)
    assert pauses(desk.session) == [
        {"Interface": "PJSIP/6001", "Paused": "true", "Reason": WRAP_UP}
    ]
    until = desk.agents.book.get("6001").wrapup_until
    assert until == desk.clock.now + 10

    # Three seconds later the refresh says: not paused, LastCall 0.
    desk.clock.now += 3
    desk.session.sent.clear()
    desk.session.queue_members = ami(CASE_16_QUEUE_MEMBER)
    await desk.agents.resync(adopt=False)
    agent = desk.agents.book.get("6001")
    assert agent.wrapup_until == until
    assert agent.status(desk.clock.now) == "wrap_up"
    assert {"Interface": "PJSIP/6001", "Paused": "true", "Queue": "queue1",
            "Reason": WRAP_UP} in pauses(desk.session)  # fmt: skip
    assert not any(p["Paused"] == "false" for p in pauses(desk.session))
    # 6002's wrap-up (50 s, queue2) has not started: its call goes on.
    assert desk.agents.book.get("6002").wrapup_until is None


async def test_the_wrapup_ends_by_its_timer_with_an_unpause(desk):
    desk.agents.book.wrapup["queue2"] = 0.2
    desk.agents.handle(
        event("AgentComplete", Queue="queue2", Interface="PJSIP/6002", Channel="x")
    )
    await settle(desk.agents)
    assert pauses(desk.session)[-1]["Paused"] == "true"
    desk.clock.now += 0.2
    await asyncio.sleep(0.3)
    await settle(desk.agents)
    assert pauses(desk.session)[-1] == {"Interface": "PJSIP/6002", "Paused": "false"}
    states = [d for t, topic, d in desk.bus.published if topic == "status/agents/6002"]
    assert [s["status"] for s in states][-2:] == ["wrap_up", "available"]


async def test_feature_codes_from_the_phone(desk):
    desk.agents.handle(
        event(
            "UserEvent", UserEvent="YhtAgent", Request="pause", Agent="6001", Code="2"
        )
    )
    await settle(desk.agents)
    assert pauses(desk.session) == [
        {"Interface": "PJSIP/6001", "Paused": "true", "Reason": "lunch"}
    ]
    desk.agents.handle(
        event("UserEvent", UserEvent="YhtAgent", Request="logout", Agent="6001")
    )
    await settle(desk.agents)
    assert [(n, h["Queue"]) for n, h in desk.session.sent if n == "QueueRemove"] == [
        ("QueueRemove", "general"),
        ("QueueRemove", "queue1"),
    ]
    desk.agents.handle(
        event("UserEvent", UserEvent="YhtAgent", Request="dance", Agent="6001")
    )
    await settle(desk.agents)  # refused and logged, nothing sent
    assert len(desk.session.sent) == 3


async def test_logout_while_ringing_hangs_up_the_ringing_phone(desk):
    desk.agents.handle(
        event(
            "AgentCalled",
            Queue="queue1",
            Interface="PJSIP/6001",
            Channel="PJSIP/pstn-1",
            DestChannel="PJSIP/6001-0000000a",
        )
    )
    result = await desk.agents.command("logout", "6001")
    assert result["status"] == "logged_out" and result["changed"]
    assert desk.session.sent[-1] == ("Hangup", {"Channel": "PJSIP/6001-0000000a"})


async def test_mqtt_commands_are_answered_on_their_reply_topic(desk):
    await desk.agents.on_command(
        "commands/agent/pause",
        {"agent": "6002", "reason": "meeting", "reply_to": "replies/abc"},
    )
    [(_, _, reply)] = [p for p in desk.bus.published if p[1] == "replies/abc"]
    assert reply["ok"] and reply["pause_reason"] == "meeting"
    await desk.agents.on_command(
        "commands/agent/pause", {"agent": "7000", "reply_to": "replies/def"}
    )
    [(_, _, refused)] = [p for p in desk.bus.published if p[1] == "replies/def"]
    assert not refused["ok"] and "no agent '7000'" in refused["message"]
    # A reply topic outside replies/ is never published to.
    await desk.agents.on_command(
        "commands/agent/unpause", {"agent": "6002", "reply_to": "status/x"}
    )
    assert not any(p[1] == "status/x" for p in desk.bus.published)
