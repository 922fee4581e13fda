"""Warm transfers to 110 on real calls (issue 5, case 18).

Softphones stand for the caller, the agent (answers, never hangs up by
itself here) and the 110 operator (a phone registered to ``trunk-110`` that
the test answers or refuses by hand). After each test no channel is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time

import pytest

from ivr.ami.session import live_channels
from ivr.lab import REPO
from tests.support.calls import closed_ticket, tracked_call, until
from tests.support.mosquitto import Subscriber, publish_once

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TARGET = "police"


@dataclasses.dataclass
class Scene:
    lab: object
    platform: object  # the 110 operator's phone
    events: Subscriber
    # (event, channel) of every MusicOnHoldStart/Stop Asterisk reports.
    music: list = dataclasses.field(default_factory=list)


@pytest.fixture(scope="module")
async def scene(lab):
    desk = lab.server.transfers
    original = desk.targets[TARGET]
    # Short enough for a no-answer test; long enough to brief 110.
    desk.targets[TARGET] = dataclasses.replace(original, dial_timeout=5)
    platform = await lab.trunk_phone("trunk-110")
    async with lab.agents_in_hand(), Subscriber(lab.ports.mqtt, "ivr/#") as events:
        scene = Scene(lab, platform, events)

        def hold_music(event) -> None:
            if event.get("Event", "").startswith("MusicOnHold"):
                scene.music.append((event["Event"], event.get("Channel")))

        lab.server.session.on_event(hold_music)
        yield scene
    desk.targets[TARGET] = original


@pytest.fixture
async def clean(scene):
    yield scene
    await _no_channels_left(scene.lab)


async def _channels(lab) -> list[str]:
    return [e.get("Channel") for e in await live_channels(lab.server.session)]


async def _no_channels_left(lab, timeout: float = 8.0) -> None:
    for _ in range(int(timeout / 0.25)):
        if not (left := await _channels(lab)):
            break
        await asyncio.sleep(0.25)
    assert left == [], f"channels left up: {left}"


async def _key_ahead(lab, call, number: str, key: str) -> None:
    """Press ``key`` during the greeting: the engine takes it as type-ahead
    for the menu that follows, which saves the greeting's ~12 s. Pressed
    again if the menu did not act on it (sent before the prompt began)."""
    desk = lab.server.transfers

    def acted():
        c = tracked_call(lab, number)
        return c is not None and (
            c.phase in ("queued", "answered") or c.linkedid in desk.running
        )

    await until(
        lambda: (c := tracked_call(lab, number)) and c.phase == "menu", 15, "the menu"
    )
    await asyncio.sleep(0.8)  # the greeting is playing
    for _ in range(8):
        await call.send_dtmf(key)
        with contextlib.suppress(AssertionError):
            await until(acted, 3.0, f"the menu to take key {key}")
            return
    raise AssertionError(f"the menu never took key {key} from {number}")


async def _caller_with_agent(scene: Scene, number: str):
    """A caller who pressed 0 and is talking to an agent: (phone call, call)."""
    lab = scene.lab
    phone = await lab.caller(number)
    call = await phone.call(lab.hotline_uri())
    await call.wait_state("CONFIRMED", timeout=15)
    await _key_ahead(lab, call, number, "0")
    desk = lab.server.transfers

    def answered():
        for tracked in lab.server.tracker.calls.values():
            if (
                tracked.caller_number == number
                and tracked.phase == "answered"
                and tracked.linkedid in desk.agent_legs
            ):
                return tracked
        return None

    tracked = await until(answered, 30, f"an agent to answer {number}")
    await asyncio.sleep(0.5)
    return call, tracked


async def _ticket(lab, tracked):
    return await closed_ticket(lab, linkedid=tracked.linkedid)


def _timeline(ticket: dict, kind: str) -> list[dict]:
    return [e for e in ticket["timeline"] if e["kind"] == kind]


def _transfer_events(scene: Scene, linkedid: str, type: str) -> list[dict]:
    return [
        e
        for e in scene.events.events(type)
        if e.get("linkedid") == linkedid and e["_topic"].endswith(linkedid)
    ]


async def _hang_up(call) -> None:
    with contextlib.suppress(Exception):
        await call.hangup()


async def test_complete_bridges_caller_to_110_and_keeps_the_segment(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000501")
    agent = lab.server.transfers.agent_legs[tracked.linkedid]
    try:
        await lab.server.transfers.request(tracked.linkedid, TARGET, "start")
        operator = await scene.platform.wait_incoming(timeout=10)
        await operator.answer()
        await operator.wait_state("CONFIRMED", timeout=10)
        running = lab.server.transfers.running[tracked.linkedid]
        await until(lambda: running.transfer.state == "consulting", 5, "consulting")

        await lab.server.transfers.request(tracked.linkedid, TARGET, "complete")
        await until(lambda: running.transfer.outcome == "completed", 5, "completed")
        # The caller now talks with 110; the agent's channel is gone.
        await asyncio.sleep(1.0)
        channels = await _channels(lab)
        assert agent[0] not in channels
        assert not caller.disconnected and not operator.disconnected
        # Case 16: the agent's wrap-up starts on leaving the caller, not when
        # the caller's call with 110 ends.
        book = lab.server.agents.book
        state = lab.server.agents.state_of(book.agents[agent[1]])
        assert state["status"] == "wrap_up", state
        await caller.hangup()
        await operator.wait_disconnected(timeout=10)
    finally:
        await _hang_up(caller)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == ["completed"]
    assert segments[0]["target"] == TARGET and segments[0]["agent"] == agent[1]
    assert segments[0]["caller_with"] == TARGET
    talks = _timeline(ticket, "transfer_talk")
    assert talks and talks[0]["with"] == TARGET and talks[0]["seconds"] >= 1.0
    assert ticket["talk_time"] is not None and ticket["outcome"] == "answered"
    assert len(_transfer_events(scene, tracked.linkedid, "transfer.completed")) == 1


async def test_agent_key_starts_it_and_abort_puts_the_agent_back(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000502")
    agent = lab.server.transfers.agent_legs[tracked.linkedid]
    try:
        # The agent's one key (*0 for police in config/hotline.toml).
        agent_call = lab.agents[agent[1]].phone.incoming[-1]
        await agent_call.send_dtmf("*0")
        operator = await scene.platform.wait_incoming(timeout=10)
        await operator.answer()
        await operator.wait_state("CONFIRMED", timeout=10)
        # The caller waits with hold music while the agent briefs 110.
        assert scene.music[-1] == ("MusicOnHoldStart", tracked.channel)
        await lab.server.transfers.request(tracked.linkedid, TARGET, "abort")
        await operator.wait_disconnected(timeout=5)
        await asyncio.sleep(1.0)
        assert scene.music[-1] == ("MusicOnHoldStop", tracked.channel)
        # Caller and agent still talk to each other.
        channels = await _channels(lab)
        assert agent[0] in channels and tracked.channel in channels
        assert not [c for c in channels if c.startswith(("Local/", "PJSIP/trunk"))]
        assert not caller.disconnected
    finally:
        await _hang_up(caller)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == ["cancelled"]
    assert segments[0]["caller_with"] == agent[1]
    assert len(_transfer_events(scene, tracked.linkedid, "transfer.cancelled")) == 1


@pytest.mark.parametrize("how", ["busy", "no_answer"])
async def test_110_busy_or_not_answering_leaves_caller_with_agent(clean, how):
    scene, lab = clean, clean.lab
    number = "13800000503" if how == "busy" else "13800000504"
    caller, tracked = await _caller_with_agent(scene, number)
    agent = lab.server.transfers.agent_legs[tracked.linkedid]
    try:
        await lab.server.transfers.request(tracked.linkedid, TARGET, "start")
        operator = await scene.platform.wait_incoming(timeout=10)
        if how == "busy":
            await operator.hangup(486)
        else:
            await operator.wait_disconnected(timeout=10)  # dial_timeout is 5 s
        desk = lab.server.transfers
        await until(lambda: tracked.linkedid not in desk.running, 5, "the outcome")
        await asyncio.sleep(1.5)
        channels = await _channels(lab)
        assert agent[0] in channels and tracked.channel in channels
        assert not caller.disconnected
    finally:
        await _hang_up(caller)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == [how]
    assert segments[0]["reason"] == ("BUSY" if how == "busy" else "NOANSWER")
    assert len(_transfer_events(scene, tracked.linkedid, f"transfer.{how}")) == 1


async def test_caller_hangs_up_while_110_rings_case_18(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000505")
    extension = lab.server.transfers.agent_legs[tracked.linkedid][1]
    await lab.server.transfers.request(tracked.linkedid, TARGET, "start")
    operator = await scene.platform.wait_incoming(timeout=10)  # ringing
    await caller.hangup()
    hung_up = time.monotonic()
    await operator.wait_disconnected(timeout=3)
    assert time.monotonic() - hung_up < 1.5
    # The agent is not left alone in a bridge: the agent's call ends too.
    await _no_channels_left(lab, timeout=3)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == ["abandoned"]
    assert segments[0]["reason"] == "transfer abandoned by caller"
    await asyncio.sleep(1.0)
    assert len(_transfer_events(scene, tracked.linkedid, "transfer.abandoned")) == 1
    state = lab.server.agents.state_of(lab.server.agents.book.agents[extension])
    assert state["status"] == "wrap_up", state


async def test_handoff_record_and_updates_from_110(clean, monkeypatch):
    scene, lab = clean, clean.lab
    records = Subscriber(lab.ports.mqtt, "ivr/handoff/police")
    async with records:
        caller, tracked = await _caller_with_agent(scene, "13800000506")
        try:
            await lab.server.transfers.request(tracked.linkedid, TARGET, "start")
            operator = await scene.platform.wait_incoming(timeout=10)
            await operator.answer()
            events = await records.wait_for(
                lambda es: any(e.get("type") == "handoff.record" for e in es), 10
            )
            record = next(e for e in events if e.get("type") == "handoff.record")
            await lab.server.transfers.request(tracked.linkedid, TARGET, "complete")
            await asyncio.sleep(0.5)
            await caller.hangup()
            await operator.wait_disconnected(timeout=10)
        finally:
            await _hang_up(caller)
    assert record["ticket"] == tracked.ticket_number
    assert record["caller_number"] == "13800000506"  # police may see it
    assert "content" in record and "address" in record

    update = {
        "id": "110-upd-1",
        "ticket": tracked.ticket_number,
        "status": "dispatched",
        "reference": "JJ-2026-0042",
        "note": "officer on the way",
    }
    for _ in range(2):  # a redelivery changes nothing
        await publish_once(
            lab.ports.mqtt, "ivr/handoff/police/updates", json.dumps(update)
        )

    async def updates():
        ticket = await _ticket(lab, tracked)
        return _timeline(ticket, "handoff_update")

    for _ in range(50):
        if await updates():
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    found = await updates()
    assert len(found) == 1
    assert found[0]["reference"] == "JJ-2026-0042" and found[0]["via"] == "mqtt"


def _bridges(events) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in events:
        if e.get("BridgeId"):
            out.setdefault(e["BridgeId"], set()).add(e["Channel"])
    return out


async def _bridged_with(lab, channel: str) -> tuple[set[str], list]:
    """The channels sharing a bridge with ``channel`` (empty when it is in
    none), and the listing of every channel they come from."""
    events = await live_channels(lab.server.session)
    together = [m for m in _bridges(events).values() if channel in m]
    return (together[0] if together else set()), events


async def test_threeway_then_the_agent_leaves(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000507")
    agent = lab.server.transfers.agent_legs[tracked.linkedid]
    try:
        await lab.server.transfers.request(tracked.linkedid, TARGET, "start")
        operator = await scene.platform.wait_incoming(timeout=10)
        await operator.answer()
        running = lab.server.transfers.running[tracked.linkedid]
        await until(lambda: running.transfer.state == "consulting", 5, "consulting")
        await lab.server.transfers.request(tracked.linkedid, TARGET, "threeway")
        await until(lambda: running.transfer.state == "threeway", 5, "three-way")
        await asyncio.sleep(1.0)
        together, _ = await _bridged_with(lab, tracked.channel)
        assert agent[0] in together
        assert any(c.startswith(("PJSIP/trunk-110", "Local/")) for c in together)
        # The agent leaves; caller and 110 go on.
        await lab.server.session.action("Hangup", {"Channel": agent[0]})
        await asyncio.sleep(1.0)
        assert not caller.disconnected and not operator.disconnected
        await caller.hangup()
        await operator.wait_disconnected(timeout=10)
    finally:
        await _hang_up(caller)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == ["threeway"]
    assert segments[0]["caller_with"] == f"{agent[1]}+{TARGET}"
    assert len(_transfer_events(scene, tracked.linkedid, "transfer.threeway")) == 1


async def test_agent_hangs_up_before_110_answers(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000508")
    agent = lab.server.transfers.agent_legs[tracked.linkedid]
    try:
        await lab.server.transfers.request(tracked.linkedid, TARGET, "start")
        operator = await scene.platform.wait_incoming(timeout=10)  # ringing
        await lab.server.session.action("Hangup", {"Channel": agent[0]})
        await asyncio.sleep(1.0)
        assert not caller.disconnected  # not left alone: waiting for 110
        await operator.answer()
        await operator.wait_state("CONFIRMED", timeout=10)
        await asyncio.sleep(1.0)
        together, channels = await _bridged_with(lab, tracked.channel)
        assert together and agent[0] not in together, channels
        assert not caller.disconnected and not operator.disconnected
        await caller.hangup()
        await operator.wait_disconnected(timeout=10)
    finally:
        await _hang_up(caller)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == ["completed"]
    assert segments[0]["caller_with"] == TARGET


async def test_agent_hangs_up_and_110_never_answers_caller_back_in_queue(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000512")
    desk = lab.server.transfers
    first = desk.agent_legs[tracked.linkedid]
    queued = []

    def joins(event) -> None:
        if event.get("Event") == "QueueCallerJoin" and (
            event.get("Channel") == tracked.channel
        ):
            queued.append(event)

    lab.server.session.on_event(joins)
    try:
        await desk.request(tracked.linkedid, TARGET, "start")
        operator = await scene.platform.wait_incoming(timeout=10)  # ringing
        first_phone = lab.agents[first[1]].phone
        rings = len(first_phone.incoming)
        await lab.server.session.action("Hangup", {"Channel": first[0]})
        await asyncio.sleep(1.0)
        assert not caller.disconnected  # waiting for 110
        # 110 rings out (dial_timeout is 5 s) and never answers.
        await operator.wait_disconnected(timeout=10)
        # The caller is back in the desk's queue, at the front, and an agent
        # takes them from there (not Asterisk ringing the first agent again).
        await until(lambda: queued, 5, "the caller to rejoin the queue")
        assert queued[0]["Queue"] == tracked.queue and queued[0]["Position"] == "1"

        def second_leg():
            leg = desk.agent_legs.get(tracked.linkedid)
            return leg if leg and leg[0] != first[0] else None

        second = await until(second_leg, 20, "an agent to take the caller again")
        if second[1] != first[1]:
            # Asterisk did not ring the first agent again (atxfer recall).
            assert len(first_phone.incoming) == rings
        await asyncio.sleep(0.5)
        together, channels = await _bridged_with(lab, tracked.channel)
        assert second[0] in together, channels
        assert not [
            e.get("Channel")
            for e in channels
            if e.get("Channel", "").startswith(("Local/", "PJSIP/trunk"))
        ]
        assert not caller.disconnected
        await caller.hangup()
    finally:
        await _hang_up(caller)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [(s["outcome"], s["requeued"]) for s in segments] == [("no_answer", True)]
    assert segments[0]["caller_with"] == f"{tracked.queue} queue"
    assert segments[0]["reason"] == "NOANSWER; agent gone, caller back to the queue"
    assert _timeline(ticket, "requeued")
    assert ticket["agent"] == second[1] and ticket["outcome"] == "answered"
    assert len(_transfer_events(scene, tracked.linkedid, "transfer.no_answer")) == 1


async def test_cancel_while_110_rings_then_no_late_answer_case_18b(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000509")
    agent = lab.server.transfers.agent_legs[tracked.linkedid]
    try:
        await lab.server.transfers.request(tracked.linkedid, TARGET, "start")
        operator = await scene.platform.wait_incoming(timeout=10)  # ringing
        await lab.server.transfers.request(tracked.linkedid, TARGET, "abort")
        await asyncio.sleep(1.0)
        with contextlib.suppress(Exception):
            await operator.answer()  # too late: the leg is gone
        await operator.wait_disconnected(timeout=3)
        await asyncio.sleep(0.5)
        channels = await _channels(lab)
        assert agent[0] in channels and tracked.channel in channels
        assert not [c for c in channels if c.startswith(("Local/", "PJSIP/trunk"))]
    finally:
        await _hang_up(caller)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == ["cancelled"]
    await asyncio.sleep(0.5)
    assert len(_transfer_events(scene, tracked.linkedid, "transfer.cancelled")) == 1


@pytest.fixture
async def menu_with_police(clean):
    """The live dial plan with key 8 sending callers to the police target."""
    lab = clean.lab
    source = (REPO / "dialplans" / "12345.yaml").read_text(encoding="utf-8")
    assert "      9: {menu: main}" in source
    changed = source.replace(
        "      9: {menu: main}", "      8: {transfer: police}\n      9: {menu: main}"
    )
    changed += '\ntargets:\n  police: {name: 110 报警, number: "110"}\n'
    await lab.server.publish_plan(changed, "test_transfer")
    try:
        yield clean
    finally:
        await lab.server.rollback("test_transfer")


async def _caller_in_menu_presses(scene: Scene, number: str, key: str):
    lab = scene.lab
    phone = await lab.caller(number)
    call = await phone.call(lab.hotline_uri())
    await call.wait_state("CONFIRMED", timeout=15)
    await _key_ahead(lab, call, number, key)
    return call


@pytest.mark.parametrize("answer", [True, False], ids=["answered", "busy"])
async def test_a_menu_key_sends_the_caller_to_110(menu_with_police, answer):
    scene, lab = menu_with_police, menu_with_police.lab
    number = "13800000510" if answer else "13800000511"
    caller = await _caller_in_menu_presses(scene, number, "8")
    try:
        operator = await scene.platform.wait_incoming(timeout=10)
        if answer:
            await operator.answer()
            await operator.wait_state("CONFIRMED", timeout=10)
            await asyncio.sleep(2.0)
            assert not caller.disconnected
            await caller.hangup()
            await operator.wait_disconnected(timeout=10)
        else:
            await operator.hangup(486)

            # Not left alone: the general desk takes the caller, first in line.
            def with_agent():
                return next(
                    (
                        c
                        for c in lab.server.tracker.calls.values()
                        if c.caller_number == number and c.phase == "answered"
                    ),
                    None,
                )

            await until(with_agent, 20, "an agent to take the caller")
            await caller.hangup()
    finally:
        await _hang_up(caller)
    # The ticket closes when Asterisk reports the caller's Hangup.
    await until(
        lambda: all(
            c.phase == "ended"
            for c in lab.server.tracker.calls.values()
            if c.caller_number == number
        ),
        10,
        "the call to end",
    )
    await lab.server.tracker.drain()
    tickets = await lab.server.store.find(caller=number)
    ticket = await lab.server.store.get(tickets[-1]["number"])
    segments = _timeline(ticket, "transfer")
    assert [(s["outcome"], s["from"]) for s in segments] == [
        ("completed" if answer else "busy", "menu")
    ]
    assert ticket["outcome"] == "answered"
    if not answer:
        assert ticket["queue"] == "general" and ticket["agent"]
        assert segments[0]["caller_with"] == "general desk"


async def test_transfer_to_another_desk_two_agent_segments_case_16(clean):
    """Case 16: a warm transfer into the psych desk's queue. The first agent's
    wrap-up starts when they leave the caller and survives a QueueStatus
    refresh; the desk agent's starts when their call ends."""
    scene, lab = clean, clean.lab
    desk = lab.server.transfers
    target = desk.targets["psych-desk"]
    assert target.desk == "psych"
    caller, tracked = await _caller_with_agent(scene, "13800000513")
    first = desk.agent_legs[tracked.linkedid]
    agents = lab.server.agents
    try:
        await desk.request(tracked.linkedid, target.name, "start")
        running = desk.running[tracked.linkedid]
        # An agent of the psych desk answers the consultation from its queue.
        await until(lambda: running.transfer.state == "consulting", 20, "consult")
        second = running.desk_agent
        assert second is not None and second[1] != first[1] and second[2] == "psych"
        await desk.request(tracked.linkedid, target.name, "complete")
        await until(lambda: running.transfer.outcome == "completed", 5, "completed")
        await asyncio.sleep(1.0)
        assert not caller.disconnected
        assert first[0] not in await _channels(lab)
        first_agent = agents.book.agents[first[1]]
        second_agent = agents.book.agents[second[1]]
        assert agents.state_of(first_agent)["status"] == "wrap_up"
        # A status refresh (Asterisk may report LastCall: 0 after the
        # transfer) does not end the wrap-up the router runs.
        await agents.resync(adopt=False)
        assert agents.state_of(first_agent)["status"] == "wrap_up"
        # The desk agent talks with the caller: busy, no wrap-up yet.
        assert agents.state_of(second_agent)["status"] == "busy"
        # The desk agent may transfer the caller in turn.
        assert desk.agent_legs[tracked.linkedid] == second[:2]
        await caller.hangup()
        await until(
            lambda: agents.state_of(second_agent)["status"] == "wrap_up",
            5,
            "the desk agent's wrap-up",
        )
    finally:
        await _hang_up(caller)
    await _no_channels_left(lab)
    ticket = await _ticket(lab, tracked)
    parts = _timeline(ticket, "agent_segment")
    assert [(p["agent"], p["desk"]) for p in parts] == [
        (first[1], "general"),
        (second[1], "psych"),
    ]
    assert all(p["seconds"] > 0.5 for p in parts)
    segments = _timeline(ticket, "transfer")
    assert [(s["outcome"], s["desk_agent"]) for s in segments] == [
        ("completed", second[1])
    ]


async def _cut_ami(lab) -> int:
    """Reset the server's AMI link (as a network fault would); the events
    until it logs in again are lost. Returns the connection count before."""
    session = lab.server.session
    before = session.connections
    session._writer.transport.abort()
    return before


async def _reconnected(lab, before: int) -> None:
    await until(
        lambda: lab.server.session.connections > before and lab.server.ready.is_set(),
        15,
        "the AMI link to come back",
    )


async def test_ami_reconnect_while_110_rings_the_transfer_carries_on(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000514")
    desk = lab.server.transfers
    agent = desk.agent_legs[tracked.linkedid]
    try:
        await desk.request(tracked.linkedid, TARGET, "start")
        operator = await scene.platform.wait_incoming(timeout=10)  # ringing
        running = desk.running[tracked.linkedid]
        before = await _cut_ami(lab)
        # 110 answers while the server is away: the answer event is lost.
        await operator.answer()
        await operator.wait_state("CONFIRMED", timeout=10)
        await _reconnected(lab, before)
        # Found again from the channel listing: the consultation goes on.
        await until(lambda: running.transfer.state == "consulting", 5, "consulting")
        assert desk.running.get(tracked.linkedid) is running
        await desk.request(tracked.linkedid, TARGET, "complete")
        await until(lambda: running.transfer.outcome == "completed", 5, "completed")
        await asyncio.sleep(1.0)
        assert agent[0] not in await _channels(lab)
        assert not caller.disconnected and not operator.disconnected
        await caller.hangup()
        await operator.wait_disconnected(timeout=10)
    finally:
        await _hang_up(caller)
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == ["completed"]


async def test_ami_reconnect_after_the_caller_left_ends_the_consult_leg(clean):
    scene, lab = clean, clean.lab
    caller, tracked = await _caller_with_agent(scene, "13800000515")
    desk = lab.server.transfers
    extension = desk.agent_legs[tracked.linkedid][1]
    await desk.request(tracked.linkedid, TARGET, "start")
    operator = await scene.platform.wait_incoming(timeout=10)  # ringing
    before = await _cut_ami(lab)
    # The caller hangs up while the server is away (case 18 unseen).
    await caller.hangup()
    await _reconnected(lab, before)
    # Whatever Asterisk left of the consultation and the agent's call is
    # ended, and the ticket says the caller abandoned the transfer.
    await operator.wait_disconnected(timeout=5)
    await _no_channels_left(lab, timeout=5)
    assert tracked.linkedid not in desk.running
    ticket = await _ticket(lab, tracked)
    segments = _timeline(ticket, "transfer")
    assert [s["outcome"] for s in segments] == ["abandoned"]
    assert ticket["ended_at"] is not None
    state = lab.server.agents.state_of(lab.server.agents.book.agents[extension])
    assert state["status"] in ("wrap_up", "available"), state
