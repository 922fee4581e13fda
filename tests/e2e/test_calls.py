"""Real calls end to end: softphone callers dial 12345 on the real Asterisk,
meet the menu, reach agents on softphones, and leave complete tickets.

One batch of calls (the demo's scenarios) runs once for the module; each test
then checks one claim on the tickets and MQTT events it produced.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import pytest

from ivr.demo import SCENARIOS, Scenario, _with_desk_paused
from ivr.tickets import parse_iso
from tests.support.mosquitto import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BY_WHAT = {s.what: s for s in SCENARIOS}


@dataclass
class Batch:
    tickets: dict[str, dict]  # by caller number
    events: list[dict]
    agents: dict[str, dict]  # extension -> skills


@pytest.fixture(scope="module")
async def batch(lab) -> Batch:
    async with Subscriber(lab.ports.mqtt, "ivr/events/#") as subscriber:
        await asyncio.wait_for(subscriber._subscribed.wait(), 10)
        together = [s for s in SCENARIOS if "hangup-queued" not in s.actions]
        queued = [s for s in SCENARIOS if "hangup-queued" in s.actions]
        await asyncio.gather(
            *(_call(lab, s, delay=i * 0.5) for i, s in enumerate(together))
        )
        for scenario in queued:
            await _with_desk_paused(lab, scenario.desk, _call(lab, scenario))
        await lab.server.tracker.drain()
        numbers = {s.number for s in SCENARIOS}

        def all_ended(events):
            ended = {e["linkedid"] for e in events if e["type"] == "call.ended"}
            return len(ended) >= len(numbers)

        events = await subscriber.wait_for(all_ended, timeout=20)
    tickets = {}
    for ticket in await lab.server.store.find():
        if ticket["caller_number"] in numbers:
            assert ticket["caller_number"] not in tickets, "two tickets for one call"
            tickets[ticket["caller_number"]] = await lab.server.store.get(
                ticket["number"]
            )
    agents = {a.extension: a.skills for a in lab.config.agents}
    return Batch(tickets, events, agents)


async def _call(lab, scenario: Scenario, delay: float = 0.0) -> None:
    await asyncio.sleep(delay)
    await lab.run_caller(scenario.number, scenario.actions, name=scenario.name)


def ticket_of(batch: Batch, what: str) -> dict:
    return batch.tickets[BY_WHAT[what].number]


def test_every_call_left_exactly_one_closed_ticket(batch):
    assert sorted(batch.tickets) == sorted(s.number for s in SCENARIOS)
    for ticket in batch.tickets.values():
        assert ticket["status"] == "closed"
        assert ticket["ended_at"] and ticket["outcome"]


@pytest.mark.parametrize(
    "what",
    [s.what for s in SCENARIOS if s.outcome == "answered"],
)
def test_each_menu_branch_reaches_its_desk_and_an_agent_with_that_skill(batch, what):
    scenario = BY_WHAT[what]
    ticket = ticket_of(batch, what)
    assert ticket["outcome"] == "answered"
    assert ticket["desk"] == scenario.desk
    assert ticket["queue"] == scenario.desk
    assert scenario.desk in batch.agents[ticket["agent"]]
    assert ticket["talk_time"] > 1.0
    assert ticket["hangup_cause"] == 16


def test_keys_pressed_are_recorded_once_each_with_their_time(batch):
    assert [k["key"] for k in ticket_of(batch, "9 repeats, then 1")["keys"]] == [
        "9",
        "1",
    ]
    assert [k["key"] for k in ticket_of(batch, "invalid key twice")["keys"]] == [
        "7",
        "7",
    ]
    for key in ticket_of(batch, "invalid key, then 3")["keys"]:
        assert parse_iso(key["at"]) is not None


def test_no_input_twice_goes_to_the_general_desk_never_hung_up(batch):
    ticket = ticket_of(batch, "no input twice")
    assert ticket["route_reason"] == "no input twice"
    assert ticket["keys"] == []
    assert [step[1] for step in ticket["ivr_path"]] == ["timeout", "timeout"]
    assert ticket["outcome"] == "answered"


def test_invalid_key_twice_goes_to_the_general_desk(batch):
    ticket = ticket_of(batch, "invalid key twice")
    assert ticket["route_reason"] == "invalid key twice"
    assert [step[1] for step in ticket["ivr_path"]] == ["invalid", "invalid"]


def test_zero_reaches_a_person(batch):
    assert ticket_of(batch, "key 0: a person")["route_reason"] == "zero for a person"


def test_hang_up_in_the_menu(batch):
    ticket = ticket_of(batch, "hangs up in the menu")
    assert ticket["outcome"] == "abandoned_in_menu"
    assert ticket["menu_entered_at"] is not None
    assert ticket["queue_entered_at"] is None and ticket["agent"] is None


def test_hang_up_while_queued(batch):
    ticket = ticket_of(batch, "hangs up while queued")
    assert ticket["outcome"] == "abandoned_in_queue"
    assert ticket["desk"] == "yi" and ticket["agent"] is None
    assert ticket["queue_wait"] >= 3.0
    assert "abandoned" in [e["kind"] for e in ticket["timeline"]]


def test_ticket_fields_tell_the_whole_story(batch):
    ticket = ticket_of(batch, "key 1: business desk")
    assert re.fullmatch(r"12345-\d{8}-\d{6}", ticket["number"])
    assert ticket["channel"].startswith("PJSIP/pstn-")
    assert ticket["linkedid"]
    assert ticket["caller_number"] == "13800000001"
    times = [
        parse_iso(ticket[field])
        for field in (
            "arrived_at",
            "menu_entered_at",
            "queue_entered_at",
            "agent_answered_at",
            "ended_at",
        )
    ]
    assert times == sorted(times)
    assert 0 <= ticket["queue_wait"] < 10
    assert ticket["agent_name"]
    kinds = [e["kind"] for e in ticket["timeline"]]
    assert kinds[0] == "arrived" and kinds[-1] == "ended"
    assert kinds.index("routed") < kinds.index("queued") < kinds.index("answered")


def test_a_chinese_caller_name_is_kept(batch):
    assert ticket_of(batch, "key 0, a Chinese caller name")["caller_name"] == "王先生"


def test_mqtt_subscriber_sees_each_call_from_arrival_to_end_in_order(batch):
    by_call: dict[str, list[str]] = {}
    for event in batch.events:
        by_call.setdefault(event["linkedid"], []).append(event["type"])
    tickets_by_linkedid = {t["linkedid"]: t for t in batch.tickets.values()}
    assert set(tickets_by_linkedid) <= set(by_call)
    for linkedid, ticket in tickets_by_linkedid.items():
        types = by_call[linkedid]
        assert types[0] == "call.arrived" and types[-1] == "call.ended"
        if ticket["outcome"] == "answered":
            order = [types.index(t) for t in ("call.routed", "call.queued")]
            assert order == sorted(order)
            assert types.index("call.answered") < types.index("call.ended")
    ids = [e["id"] for e in batch.events]
    assert len(ids) == len(set(ids))


def test_mqtt_events_carry_the_ticket_and_no_full_caller_number_in_topics(batch):
    ended = [e for e in batch.events if e["type"] == "call.ended"]
    numbers = {t["number"] for t in batch.tickets.values()}
    assert {e["ticket"] for e in ended} >= numbers
    for event in batch.events:
        assert event["_topic"].startswith("ivr/events/")
        assert "138000000" not in event["_topic"]
