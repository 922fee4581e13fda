"""Follow-up calls and in-call surveys against a real ticket store.

Asterisk is played by a small stand-in that answers Originate as told and
sends the dialplan's UserEvents; the real calls are in tests/e2e/test_survey.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ivr.ami.session import OriginateResult
from ivr.followup import FollowUps
from ivr.survey import InCallSurveys
from routing.survey import FollowUpPolicy
from tests.support.tickets import AGENT, beijing, call, intake, open_store

CLOSED_AT = beijing("2026-12-03 10:00")
POLICY = FollowUpPolicy(delay=600, hours=("09:00-20:00",), attempts=2, retry_after=60)


class Bus:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []
        self.published = asyncio.Event()

    def publish(self, type: str, topic: str, data: dict) -> None:
        self.events.append((type, topic, data))
        self.published.set()


class Asterisk:
    """Answers each Originate with the next outcome: a key, or a failure."""

    def __init__(self, outcomes: list[tuple[bool, str, str]]) -> None:
        self.outcomes = outcomes
        self.originated: list[dict] = []
        self.followups: FollowUps | None = None
        self.connected = True

    async def originate(self, headers, *, timeout):
        self.originated.append(dict(headers))
        ok, reason, key = self.outcomes.pop(0)
        channel = headers["ChannelId"]
        if ok:
            asyncio.get_running_loop().call_later(0.05, self._answer, channel, key)
        else:
            self.followups.handle(
                {"Event": "Hangup", "Uniqueid": channel, "Cause": key}
            )
        return OriginateResult(ok, reason, "", channel, None)

    def _answer(self, channel: str, key: str) -> None:
        self.followups.handle(
            {
                "Event": "UserEvent",
                "UserEvent": "YhtSurvey",
                "Source": "follow_up",
                "Stage": "done",
                "FollowUp": channel,
                "Key": key,
            }
        )


@pytest.fixture
async def closed(tmp_path):
    """A store file with one ticket closed on the spot at CLOSED_AT."""
    path = tmp_path / "tickets.db"
    store, orders = await open_store(path)
    ticket = await call(store, CLOSED_AT - timedelta(minutes=5), "13800001234")
    number = ticket["number"]
    await orders.act(number, "accept", AGENT, intake("traffic"), at=CLOSED_AT)
    await orders.act(number, "answer", AGENT, {"answer": "已答复"}, at=CLOSED_AT)
    yield path, store, orders, number
    await store.close()


def worker(orders, asterisk, clock) -> FollowUps:
    followups = FollowUps(
        asterisk, lambda: orders, Bus(), lambda n: f"PJSIP/{n}@out", POLICY, clock=clock
    )
    asterisk.followups = followups
    return followups


async def test_closing_keeps_a_follow_up_that_outlives_a_restart(closed):
    path, store, orders, number = closed
    rows = await store.fetchall("SELECT * FROM follow_ups")
    assert [(r["round"], r["state"], r["attempts"]) for r in rows] == [
        (0, "pending", 0)
    ]
    await store.close()

    # A new server on the same store file: the follow-up is still there,
    # due 10 minutes after closing and not before.
    store, orders = await open_store(path)
    try:
        followups = worker(orders, Asterisk([]), lambda: CLOSED_AT)
        assert await followups.due(CLOSED_AT + timedelta(minutes=9)) == []
        due = await followups.due(CLOSED_AT + timedelta(minutes=10))
        assert [row["number"] for row in due] == [number]
    finally:
        await store.close()


async def test_a_3_reopens_the_ticket_and_is_written_everywhere(closed):
    _, store, orders, number = closed
    asterisk = Asterisk([(True, "4", "3")])
    now = CLOSED_AT + timedelta(minutes=10)
    followups = worker(orders, asterisk, lambda: now)
    row = (await followups.due(now))[0]
    await followups._attempt(row)

    headers = asterisk.originated[0]
    assert headers["Channel"] == "PJSIP/13800001234@out"
    assert headers["Context"] == "yht-followup" and headers["Timeout"] == 30000
    assert f"YHT_TICKET={number}" in headers["Variable"]
    view = await orders.view(number)
    assert view["state"] == "accepted" and view["reopens"] == 1
    assert [(s["score"], s["source"]) for s in view["surveys"]] == [(3, "follow_up")]
    done = [e for e in view["timeline"] if e["kind"] == "follow_up_call"]
    assert [(e["attempt"], e["result"], e["next"]) for e in done] == [
        (1, "rated", "done")
    ]
    assert (await store.fetchall("SELECT state FROM follow_ups"))[0]["state"] == "done"
    assert followups.bus.events[-1][1] == f"tickets/{number}/follow_up"


async def test_busy_then_no_answer_is_tried_again_then_unreachable(closed):
    _, store, orders, number = closed
    asterisk = Asterisk([(False, "0", "17"), (False, "3", "19")])
    now = CLOSED_AT + timedelta(minutes=10)
    followups = worker(orders, asterisk, lambda: now)
    await followups._attempt((await followups.due(now))[0])
    assert await followups.due(now) == []  # not before retry_after
    now += timedelta(seconds=60)
    await followups._attempt((await followups.due(now))[0])

    rows = await store.fetchall("SELECT state, attempts FROM follow_ups")
    assert [(r["state"], r["attempts"]) for r in rows] == [("unreachable", 2)]
    view = await orders.view(number)
    assert view["state"] == "closed" and view["surveys"] == []
    calls = [e for e in view["timeline"] if e["kind"] == "follow_up_call"]
    assert [(e["result"], e["next"]) for e in calls] == [
        ("busy", "retry"),
        ("no_answer", "unreachable"),
    ]
    assert await followups.due(now + timedelta(days=1)) == []


async def test_a_ticket_followed_up_by_hand_is_not_called(closed):
    _, store, orders, number = closed
    await orders.record_survey(number, 2, "follow_up", at=CLOSED_AT)
    asterisk = Asterisk([])
    now = CLOSED_AT + timedelta(minutes=10)
    followups = worker(orders, asterisk, lambda: now)
    await followups._attempt((await followups.due(now))[0])
    assert asterisk.originated == []
    assert (await store.fetchall("SELECT state FROM follow_ups"))[0]["state"] == (
        "cancelled"
    )


async def test_a_reopened_and_closed_again_ticket_gets_a_new_follow_up(closed):
    _, store, orders, number = closed
    await orders.record_survey(number, 3, "follow_up", at=CLOSED_AT)
    await orders.act(number, "answer", AGENT, {"answer": "再次答复"}, at=CLOSED_AT)
    rows = await store.fetchall("SELECT round FROM follow_ups ORDER BY round")
    assert [r["round"] for r in rows] == [0, 1]


class Tracker:
    def by_channel(self, channel: str):
        return None


def survey_event(stage: str, linkedid: str, key: str = "") -> dict:
    return {
        "Event": "UserEvent",
        "UserEvent": "YhtSurvey",
        "Source": "in_call",
        "Stage": stage,
        "Ticket": "",
        "Call": linkedid,
        "Key": key,
    }


@pytest.mark.parametrize(("key", "score"), [("2", 2), ("", None), ("9", None)])
async def test_an_in_call_answer_is_a_score_or_no_answer(tmp_path, key, score):
    store, orders = await open_store(tmp_path / "tickets.db")
    try:
        ticket = await call(store, CLOSED_AT, "13800001234")
        bus = Bus()
        surveys = InCallSurveys(Tracker(), bus, lambda: orders)
        owner = asyncio.create_task(surveys.run())
        surveys.handle(survey_event("done", ticket["linkedid"], key))
        await asyncio.wait_for(bus.published.wait(), 5)
        owner.cancel()
        view = await orders.view(ticket["number"])
        kinds = [e["kind"] for e in view["timeline"]]
        assert view["satisfaction"] == score
        assert ("survey" in kinds) == (score is not None)
        assert ("survey_no_answer" in kinds) == (score is None)
        assert bus.events == [
            (
                "call.survey",
                f"events/{ticket['linkedid']}",
                {
                    "score": score,
                    "source": "in_call",
                    "linkedid": ticket["linkedid"],
                    "ticket": ticket["number"],
                },
            )
        ]
    finally:
        await store.close()


async def test_an_answer_given_while_the_store_fails_is_kept(closed, monkeypatch):
    _, store, orders, number = closed
    monkeypatch.setattr("ivr.followup.STORE_RETRY_DELAYS", (0.2, 0.2, 0.2, 0.2))
    outage: list[asyncio.Task] = []

    class StoreFailsWhileCalling(Asterisk):
        # The store refuses writes ("readonly database") from the moment the
        # call is placed until a moment after the caller pressed 3.
        async def originate(self, headers, *, timeout):
            await store.execute("PRAGMA query_only=1")
            outage.append(asyncio.create_task(back_in(0.5)))
            return await super().originate(headers, timeout=timeout)

    async def back_in(seconds: float) -> None:
        await asyncio.sleep(seconds)
        await store.execute("PRAGMA query_only=0")

    asterisk = StoreFailsWhileCalling([(True, "4", "3")])
    now = CLOSED_AT + timedelta(minutes=10)
    followups = worker(orders, asterisk, lambda: now)
    await followups._attempt((await followups.due(now))[0])
    await outage[0]
    view = await orders.view(number)
    assert view["state"] == "accepted" and view["reopens"] == 1
    assert [(s["score"], s["source"]) for s in view["surveys"]] == [(3, "follow_up")]
    assert (await store.fetchall("SELECT state FROM follow_ups"))[0]["state"] == "done"
    assert len(asterisk.originated) == 1  # nobody rang the caller twice


async def test_a_number_that_is_not_plain_is_never_dialled(tmp_path):
    store, orders = await open_store(tmp_path / "tickets.db")
    try:
        # A forged caller ID that would add a destination to the Dial() string.
        ticket = await call(store, CLOSED_AT - timedelta(minutes=5), "110&PJSIP/x")
        number = ticket["number"]
        await orders.act(number, "accept", AGENT, intake("traffic"), at=CLOSED_AT)
        await orders.act(number, "answer", AGENT, {"answer": "已答复"}, at=CLOSED_AT)
        asterisk = Asterisk([])
        now = CLOSED_AT + timedelta(minutes=10)
        followups = worker(orders, asterisk, lambda: now)
        await followups._attempt((await followups.due(now))[0])
        assert asterisk.originated == []
        rows = await store.fetchall("SELECT state, last_result FROM follow_ups")
        assert [(r["state"], r["last_result"]) for r in rows] == [
            ("unreachable", "no_number")
        ]
    finally:
        await store.close()
