"""The in-call survey and the automatic follow-up call on real calls (issue 6).

A lab of its own: the default hotline, agents who hang up after 2 s. The
callers stay on the line for the survey and press a key on their softphone;
the follow-up calls ring the callers' softphones, which answer and press a
key, or refuse the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from ivr.lab import Lab
from routing import workorder as wo
from routing.survey import FollowUpPolicy
from tests.conftest import PORT_BASE, lab_ports
from tests.support.calls import tracked_call, until
from tests.support.mosquitto import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

AGENT = wo.Actor(wo.Role.AGENT, "li")


@pytest.fixture(scope="module")
async def lab(tmp_path_factory):
    stack = Lab(
        f"e2e-survey-{PORT_BASE}",
        lab_ports(PORT_BASE + 400),
        data_dir=tmp_path_factory.mktemp("survey-lab"),
        agent_talk_seconds=2.0,
    )
    async with stack:
        stack.surveys = []
        stack.server.session.on_event(
            lambda e: (
                e.get("UserEvent") == "YhtSurvey" and stack.surveys.append(dict(e))
            )
        )
        # Any hour, at once, two tries a second apart, short rings.
        stack.server.followups.policy = FollowUpPolicy(
            delay=0, hours=("00:00-24:00",), attempts=2, retry_after=1, ring_seconds=6
        )
        stack.server.followups.poll = 0.5
        async with Subscriber(stack.ports.mqtt, "ivr/#", persistent=False) as mqtt:
            stack.mqtt = mqtt
            yield stack


async def until_async(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.3)


def asked(lab, **match) -> dict | None:
    for event in lab.surveys:
        if event.get("Stage") == "asked" and all(
            event.get(k) == v for k, v in match.items()
        ):
            return event
    return None


async def survey_call(lab, number: str, desk_key: str, answers: list[str]):
    """Call 12345, pick a desk, talk to the agent (who hangs up), then answer
    the survey: each answer a key pressed, or "-" for silence."""
    phone = await lab.caller(number)
    call = await phone.call(lab.hotline_uri())
    try:
        await call.wait_state("CONFIRMED", timeout=15)
        await asyncio.sleep(lab.timing().greeting + 0.5)
        # A key pressed before the menu listens is lost: press until routed.
        for _ in range(3):
            await call.send_dtmf(desk_key)
            with contextlib.suppress(AssertionError):
                await until(
                    lambda: (c := tracked_call(lab, number)) and c.desk, 2.5, ""
                )
                break
        linkedid = tracked_call(lab, number).linkedid
        await until(lambda: asked(lab, Call=linkedid), 45, f"{number}: survey asked")
        for answer in answers:
            if answer == "-":
                await asyncio.sleep(13)  # the question again, then 6 s silence
                continue
            await asyncio.sleep(1.0)
            await call.send_dtmf(answer)
        await call.wait_disconnected(timeout=40)  # thanks, goodbye
    except BaseException:
        with contextlib.suppress(Exception):
            await call.hangup()
        raise
    return linkedid


async def ticket_of(lab, key: str) -> dict:
    await lab.server.tracker.drain()
    return await lab.server._survey_orders().view(key)


async def test_the_caller_rates_the_call_after_the_agent_hangs_up(lab):
    # Four callers at once on four agents: 1, 2, 3, and a wrong key then
    # silence, which is "no answer" and no score.
    cases = {
        "13700000001": ("1", ["1"], 1),
        "13700000002": ("2", ["2"], 2),
        "13700000003": ("0", ["3"], 3),
        "13700000004": ("0", ["7", "-"], None),
    }
    linkedids = await asyncio.gather(
        *(
            survey_call(lab, number, desk, answers)
            for number, (desk, answers, _) in cases.items()
        )
    )
    for linkedid, (number, (_, _, score)) in zip(linkedids, cases.items(), strict=True):
        await until_async(
            lambda linkedid=linkedid: _surveyed(lab, linkedid), 10, f"{number} kept"
        )
        ticket = await ticket_of(lab, linkedid)
        kinds = [e["kind"] for e in ticket["timeline"]]
        assert ticket["outcome"] == "answered" and ticket["agent"], number
        assert "survey_asked" in kinds, number
        assert ticket["satisfaction"] == score, number
        if score is None:
            assert ticket["surveys"] == [] and "survey_no_answer" in kinds
        else:
            assert [(s["score"], s["source"]) for s in ticket["surveys"]] == [
                (score, "in_call")
            ]
            survey = next(e for e in ticket["timeline"] if e["kind"] == "survey")
            assert survey["score"] == score and survey["source"] == "in_call"
        # Published on MQTT, with the ticket's number.
        await lab.mqtt.wait_for(
            lambda events, t=ticket, score=score: any(
                e.get("type") == "call.survey"
                and e.get("ticket") == t["number"]
                and e.get("score") == score
                for e in events
            ),
            timeout=5,
        )


async def _surveyed(lab, linkedid: str) -> bool:
    ticket = await ticket_of(lab, linkedid)
    kinds = {e["kind"] for e in ticket["timeline"]}
    return ticket["status"] == "closed" and bool(kinds & {"survey", "survey_no_answer"})


async def closed_ticket(lab, number: str) -> str:
    """A work order closed on the spot for a caller at ``number``."""
    store = lab.server.store
    linkedid = f"test-followup-{number}-{time.monotonic_ns()}"
    ticket = await store.open_ticket(
        linkedid=linkedid, channel="PJSIP/pstn-test", caller_number=number
    )
    await store.close_ticket(linkedid, outcome="answered")
    orders = lab.server._survey_orders()
    intake = {"category": "traffic", "content": "公交站牌损坏", "area": "jinjiang"}
    await orders.act(ticket["number"], "accept", AGENT, intake)
    await orders.act(ticket["number"], "answer", AGENT, {"answer": "已转告"})
    return ticket["number"]


async def answer_follow_up(lab, number: str, ticket: str, key: str) -> None:
    phone = await lab.caller(number)
    call = await phone.wait_incoming(timeout=20)
    try:
        await call.answer()
        await call.wait_state("CONFIRMED", timeout=10)
        await until(lambda: asked(lab, Ticket=ticket), 15, "the follow-up question")
        await asyncio.sleep(1.0)
        await call.send_dtmf(key)
        await call.wait_disconnected(timeout=20)
    except BaseException:
        with contextlib.suppress(Exception):
            await call.hangup()
        raise


async def follow_up_row(lab, ticket: str) -> dict:
    rows = await lab.server.store.fetchall(
        "SELECT f.* FROM follow_ups f JOIN tickets t ON t.id = f.ticket_id "
        "WHERE t.number = ?",
        (ticket,),
    )
    return rows[0]


async def test_a_3_at_the_follow_up_call_reopens_the_ticket(lab):
    number = "13700000011"
    await lab.caller(number)  # the phone the follow-up rings
    ticket = await closed_ticket(lab, number)
    await answer_follow_up(lab, number, ticket, "3")

    orders = lab.server._survey_orders()
    view = await until_async(
        lambda: _state_is(orders, ticket, "accepted"), 15, "reopened"
    )
    assert view["reopens"] == 1
    assert [(s["score"], s["source"]) for s in view["surveys"]] == [(3, "follow_up")]
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds.index("order.follow_up") < kinds.index("order.reopen")
    await until_async(
        lambda: _row_state(lab, ticket, "done"), 5, "the follow-up marked done"
    )
    calls = [
        e
        for e in (await orders.view(ticket))["timeline"]
        if e["kind"] == "follow_up_call"
    ]
    assert [(c["attempt"], c["result"], c.get("score")) for c in calls] == [
        (1, "rated", 3)
    ]


async def test_a_1_at_the_follow_up_call_leaves_it_followed_up(lab):
    number = "13700000012"
    await lab.caller(number)
    ticket = await closed_ticket(lab, number)
    await answer_follow_up(lab, number, ticket, "1")

    orders = lab.server._survey_orders()
    view = await until_async(
        lambda: _state_is(orders, ticket, "followed_up"), 15, "followed up"
    )
    assert view["reopens"] == 0 and view["satisfaction"] == 1
    assert "order.reopen" not in [e["kind"] for e in view["timeline"]]
    await lab.mqtt.wait_for(
        lambda events: any(
            e.get("type") == "ticket.follow_up"
            and e.get("score") == 1
            and e["_topic"] == f"ivr/tickets/{ticket}/follow_up"
            for e in events
        ),
        timeout=5,
    )


async def test_a_caller_who_refuses_the_calls_is_recorded_unreachable(lab):
    number = "13700000013"
    phone = await lab.caller(number)
    ticket = await closed_ticket(lab, number)
    for _ in range(2):  # attempts = 2 in this lab
        call = await phone.wait_incoming(timeout=20)
        await call.hangup(486)  # busy here
    await until_async(lambda: _row_state(lab, ticket, "unreachable"), 15, "unreachable")
    view = await lab.server._survey_orders().view(ticket)
    assert view["state"] == "closed" and view["surveys"] == []
    calls = [e for e in view["timeline"] if e["kind"] == "follow_up_call"]
    assert [(c["attempt"], c["next"]) for c in calls] == [
        (1, "retry"),
        (2, "unreachable"),
    ]
    assert [c["result"] for c in calls] == ["busy", "busy"], calls


async def _state_is(orders, ticket: str, state: str):
    view = await orders.view(ticket)
    return view if view["state"] == state else None


async def _row_state(lab, ticket: str, state: str) -> bool:
    return (await follow_up_row(lab, ticket))["state"] == state
