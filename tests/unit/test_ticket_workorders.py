"""Work orders in the real SQLite store: moves, refusals, surveys, concurrency."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ivr.workorders import TicketNotFound, TicketRefused
from routing.workorder import Actor, Role
from tests.support.tickets import (
    AGENT,
    SUPERVISOR,
    beijing,
    call,
    intake,
    unit,
)

AT = beijing("2026-03-02 10:00")


@pytest.fixture
async def desk(make_store):
    return await make_store()


async def snapshot(store, number):
    """Everything the store holds about a ticket."""
    ticket = await store.get(number)
    parts = await store.fetchall(
        "SELECT * FROM assignments WHERE ticket_id = ? ORDER BY n", (ticket["id"],)
    )
    surveys = await store.fetchall(
        "SELECT * FROM surveys WHERE ticket_id = ?", (ticket["id"],)
    )
    return ticket, parts, surveys


async def test_a_dispatch_is_stored_with_its_timeline(desk):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    number = ticket["number"]
    await orders.act(number, "accept", AGENT, intake("housing", area="wuhou"), at=AT)
    view = await orders.act(
        number,
        "dispatch",
        AGENT,
        {"lead": "housing", "co_units": [{"unit": "water", "working_days": 3}]},
        at=AT,
    )
    assert view["status"] == "closed"  # the call ended; the work order goes on
    assert view["state"] == "dispatched"
    assert (view["lead_unit"], view["deadline"]) == ("housing", "2026-03-16")
    assert [
        (p["unit"], p["lead"], p["deadline"], p["step"]) for p in view["assignments"]
    ] == [
        ("housing", True, "2026-03-16", "dispatched"),
        ("water", False, "2026-03-05", "dispatched"),
    ]
    entry = view["timeline"][-1]
    assert (
        entry["kind"] == "order.dispatch" and entry["at"] == "2026-03-02T02:00:00.000Z"
    )
    assert (entry["by"], entry["before"], entry["after"]) == (
        "agent:li",
        "accepted",
        "dispatched",
    )

    housing, water = unit("housing"), unit("water")
    await orders.act(number, "sign", water, at=AT)
    await orders.act(number, "sign", housing, at=AT)
    await orders.act(number, "handle", water, {"result": "管网已检修"}, at=AT)
    view = await orders.act(
        number, "handle", housing, {"result": "已维修"}, at=beijing("2026-03-16 17:00")
    )
    assert view["state"] == "handled" and view["on_time"] == 1
    view = await orders.act(number, "close", AGENT, at=beijing("2026-03-17 09:00"))
    assert view["state"] == "closed" and view["closed_at"] == "2026-03-17T01:00:00.000Z"
    kinds = [e["kind"] for e in view["timeline"] if e["kind"].startswith("order.")]
    assert kinds == [
        "order.accept",
        "order.dispatch",
        "order.sign",
        "order.sign",
        "order.handle",
        "order.handle",
        "order.close",
    ]


SQLISH = "housing'); DELETE FROM tickets; --"


@pytest.mark.parametrize(
    ("action", "actor", "params", "code"),
    [
        ("close", AGENT, {}, "wrong_state"),
        ("sign", unit("housing"), {}, "wrong_state"),
        ("dispatch", unit("housing"), {"lead": "housing"}, "forbidden"),
        ("dispatch", AGENT, {"lead": "ghost-office"}, "unknown_unit"),
        ("dispatch", AGENT, {"lead": SQLISH}, "unknown_unit"),
        (
            "dispatch",
            AGENT,
            {"lead": {"unit": "housing", "deadline": "2026-03-01"}},
            "deadline_past",
        ),
        (
            "dispatch",
            AGENT,
            {"lead": {"unit": "housing", "deadline": SQLISH}},
            "bad_date",
        ),
        ("dispatch", AGENT, {"lead": "housing", "co_units": "water"}, "bad_params"),
        ("dispatch", AGENT, {"lead": "housing", "urgent": True}, "bad_params"),
        ("teleport", AGENT, {}, "unknown_action"),
        ("answer", AGENT, {"answer": ""}, "missing_text"),
    ],
)
async def test_a_refused_move_changes_nothing(desk, action, actor, params, code):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    await orders.act(ticket["number"], "accept", AGENT, intake(), at=AT)
    before = await snapshot(store, ticket["number"])
    writes = store.writes
    with pytest.raises(TicketRefused) as caught:
        await orders.act(ticket["number"], action, actor, params, at=AT)
    assert caught.value.code == code
    assert await snapshot(store, ticket["number"]) == before
    assert store.writes == writes  # the transaction was rolled back


async def test_unknown_tickets_are_not_found(desk):
    _, orders = desk
    with pytest.raises(TicketNotFound):
        await orders.act("12345-20260101-000009", "accept", AGENT, intake())
    with pytest.raises(TicketNotFound):
        await orders.record_survey("nope", 1, "in_call")


async def test_an_in_call_survey_is_kept_once(desk):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    view = await orders.record_survey(ticket["number"], 2, "in_call", at=AT)
    assert view["satisfaction"] == 2
    assert [(s["score"], s["source"]) for s in view["surveys"]] == [(2, "in_call")]
    assert view["state"] is None  # an in-call rating moves nothing
    with pytest.raises(TicketRefused, match="rated in the call"):
        await orders.record_survey(ticket["number"], 1, "in_call", at=AT)


@pytest.mark.parametrize(
    ("score", "source", "code"),
    [
        (0, "in_call", "bad_score"),
        (4, "follow_up", "bad_score"),
        ("1", "in_call", "bad_score"),
        (1, "sms", "bad_source"),
        (1, "in_call' --", "bad_source"),
    ],
)
async def test_bad_survey_input_is_refused_and_nothing_stored(
    desk, score, source, code
):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    before = await snapshot(store, ticket["number"])
    with pytest.raises(TicketRefused) as caught:
        await orders.record_survey(ticket["number"], score, source)
    assert caught.value.code == code
    assert await snapshot(store, ticket["number"]) == before


async def test_a_follow_up_needs_a_closed_ticket(desk):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    await orders.act(ticket["number"], "accept", AGENT, intake(), at=AT)
    before = await snapshot(store, ticket["number"])
    with pytest.raises(TicketRefused) as caught:
        await orders.record_survey(ticket["number"], 3, "follow_up", at=AT)
    assert caught.value.code == "wrong_state"
    assert await snapshot(store, ticket["number"]) == before


async def test_not_satisfied_at_the_follow_up_reopens_the_ticket(desk):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    number = ticket["number"]
    await orders.act(number, "accept", AGENT, intake(), at=AT)
    await orders.act(number, "answer", AGENT, {"answer": "请到社区办理"}, at=AT)
    view = await orders.record_survey(
        number, 3, "follow_up", at=beijing("2026-03-03 10:00")
    )
    assert view["state"] == "accepted" and view["reopens"] == 1
    assert view["closed_at"] is None and view["satisfaction"] == 3
    assert [e["kind"] for e in view["timeline"]][-3:] == [
        "order.follow_up",
        "survey",
        "order.reopen",
    ]
    assert view["timeline"][-1]["by"] == "system:follow-up"
    # Dispatched again and closed, then a satisfied follow-up closes the story.
    await orders.act(
        number, "dispatch", AGENT, {"lead": "urban"}, at=beijing("2026-03-03 11:00")
    )
    await orders.act(number, "sign", unit("urban"), at=beijing("2026-03-03 11:00"))
    await orders.act(
        number,
        "handle",
        unit("urban"),
        {"result": "已处理"},
        at=beijing("2026-03-04 11:00"),
    )
    await orders.act(number, "close", SUPERVISOR, at=beijing("2026-03-04 12:00"))
    view = await orders.record_survey(
        number, 1, "follow_up", actor=AGENT, at=beijing("2026-03-05 12:00")
    )
    assert view["state"] == "followed_up" and view["satisfaction"] == 1
    assert [s["score"] for s in view["surveys"]] == [3, 1]


async def test_the_overdue_list_and_a_reminder(desk):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    number = ticket["number"]
    await orders.act(number, "accept", AGENT, intake(), at=AT)
    await orders.act(
        number, "dispatch", AGENT, {"lead": {"unit": "urban", "working_days": 1}}, at=AT
    )
    assert await orders.overdue(at=beijing("2026-03-03 23:00")) == []
    late = beijing("2026-03-04 09:00")
    overdue = await orders.overdue(at=late)
    assert [(o["number"], o["unit"], o["deadline"]) for o in overdue] == [
        (number, "urban", "2026-03-03")
    ]
    view = await orders.act(number, "remind", AGENT, {"note": "请尽快办理"}, at=late)
    assert view["assignments"][0]["reminders"] == 1
    view = await orders.act(number, "supervise", SUPERVISOR, {"note": "督办"}, at=late)
    assert view["supervised"] == 1


async def test_a_deadline_past_the_calendar_data_is_stored_as_provisional(desk, caplog):
    store, orders = desk
    ticket = await call(store, beijing("2026-12-28 09:00"))
    at = beijing("2026-12-28 10:00")
    await orders.act(ticket["number"], "accept", AGENT, intake(), at=at)
    with caplog.at_level(logging.WARNING, logger="yihaotong.tickets"):
        view = await orders.act(
            ticket["number"], "dispatch", AGENT, {"lead": "urban"}, at=at
        )
    assert view["assignments"][0]["provisional"] is True
    assert "chinese-calendar" in caplog.text


async def test_two_agents_dispatching_at_once_are_put_in_order(desk):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    await orders.act(ticket["number"], "accept", AGENT, intake(), at=AT)
    other = Actor(Role.AGENT, "zhou")
    results = await asyncio.gather(
        orders.act(ticket["number"], "dispatch", AGENT, {"lead": "urban"}, at=AT),
        orders.act(ticket["number"], "dispatch", other, {"lead": "housing"}, at=AT),
        return_exceptions=True,
    )
    refusals = [r for r in results if isinstance(r, TicketRefused)]
    assert len(refusals) == 1 and refusals[0].code == "wrong_state"
    view = await orders.view(ticket["number"])
    assert len(view["assignments"]) == 1


async def test_case20_moves_and_call_events_together_never_lock(desk):
    """30 work-order moves and 30 call-event writes at once: all land."""
    store, orders = desk
    tickets = [await call(store, beijing(f"2026-03-02 09:{n:02d}")) for n in range(10)]
    for ticket in tickets:
        await orders.act(ticket["number"], "accept", AGENT, intake(), at=AT)

    async def life(ticket):
        await orders.act(ticket["number"], "dispatch", AGENT, {"lead": "urban"}, at=AT)
        await orders.act(ticket["number"], "sign", unit("urban"), at=AT)
        await orders.act(
            ticket["number"], "handle", unit("urban"), {"result": "ok"}, at=AT
        )

    async def events(ticket, n):
        await store.record(ticket["linkedid"], "event", {"n": n})

    results = await asyncio.gather(
        *(life(t) for t in tickets),
        *(events(t, n) for t in tickets for n in range(3)),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    for ticket in tickets:
        view = await orders.view(ticket["number"])
        assert view["state"] == "handled"
        assert [e["n"] for e in view["timeline"] if e["kind"] == "event"] == [0, 1, 2]
    assert await store.integrity_check() == "ok"


async def test_case20_another_process_holding_the_write_lock_is_waited_for(desk):
    """As case 20's "conn B": another writer holds the lock for half a second."""
    store, orders = desk
    tickets = [await call(store, beijing(f"2026-03-02 09:{n:02d}")) for n in range(5)]
    release = await _hold_writer_lock(store)

    async def accept(ticket):
        await orders.act(ticket["number"], "accept", AGENT, intake(), at=AT)
        await store.update(ticket["linkedid"], agent="6002")

    results = await asyncio.gather(
        *(accept(t) for t in tickets), release(), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    for ticket in tickets:
        view = await orders.view(ticket["number"])
        assert (view["state"], view["agent"]) == ("accepted", "6002")


async def _hold_writer_lock(store):
    """Take the store's write lock from another connection; a coroutine frees it."""
    from ivr.tickets_pg import _WRITER_LOCK, PgTicketStore

    if isinstance(store, PgTicketStore):
        import asyncpg

        other = await asyncpg.connect(store.path)  # no password in the test cluster
        await other.execute("BEGIN")
        await other.execute("SELECT pg_advisory_xact_lock($1)", _WRITER_LOCK)

        async def release():
            await asyncio.sleep(0.5)
            await other.execute("COMMIT")
            await other.close()

        return release

    import sqlite3

    other = sqlite3.connect(store.path, timeout=30, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def release():
        await asyncio.sleep(0.5)
        other.execute("COMMIT")
        other.close()

    return release
