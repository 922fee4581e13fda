"""Searching tickets, repeated complaints, a caller's history and the exports."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from ivr.ticket_search import TicketQuery, count, export, present, search, to_csv
from ivr.workorders import TicketRefused
from tests.support.tickets import (
    AGENT,
    CATALOG,
    beijing,
    call,
    intake,
    unit,
)


@pytest.fixture
async def desk(make_store):
    return await make_store()


async def numbers(store, **params) -> list[str]:
    query = TicketQuery.from_params(params, CATALOG)
    return [t["number"] for t in await search(store, query)]


async def test_search_by_each_field(desk):
    store, orders = desk
    a = await call(store, beijing("2026-03-02 09:00"), "13800000001", desk="business")
    b = await call(store, beijing("2026-03-03 09:00"), "13900000002", desk="general")
    c = await call(
        store, beijing("2026-03-04 09:00"), "13700000003", outcome="abandoned_in_queue"
    )
    at = beijing("2026-03-04 10:00")
    await orders.act(
        a["number"],
        "accept",
        AGENT,
        intake("enterprise", area="gaoxin", enterprise=True),
        at=at,
    )
    await orders.act(a["number"], "dispatch", AGENT, {"lead": "market"}, at=at)
    await orders.act(
        b["number"], "accept", AGENT, intake("housing", area="wuhou"), at=at
    )
    await orders.act(b["number"], "dispatch", AGENT, {"lead": "housing"}, at=at)
    await orders.act(b["number"], "sign", unit("housing"), at=at)

    assert await numbers(store, number=a["number"]) == [a["number"]]
    assert await numbers(store, number="12345-20260302") == [a["number"]]
    assert await numbers(store, caller="13900000002") == [b["number"]]
    assert await numbers(store, desk="business") == [a["number"]]
    assert await numbers(store, state="dispatched") == [a["number"]]
    assert await numbers(store, state="signed") == [b["number"]]
    assert await numbers(store, state="none") == [c["number"]]
    assert await numbers(store, category="housing") == [b["number"]]
    assert await numbers(store, unit="market") == [a["number"]]
    assert await numbers(store, area="gaoxin", enterprise="true") == [a["number"]]
    assert await numbers(store, status="closed", order="oldest") == [
        a["number"],
        b["number"],
        c["number"],
    ]
    assert await numbers(store, limit="1", offset="1") == [b["number"]]
    assert await count(store, TicketQuery.from_params({"state": "none"})) == 1


async def test_dates_are_beijing_days(desk):
    store, _ = desk
    late = await call(store, beijing("2026-03-01 23:30"))  # 15:30 UTC Mar 1
    early = await call(store, beijing("2026-03-02 00:30"))  # 16:30 UTC Mar 1
    assert await numbers(store, to="2026-03-01") == [late["number"]]
    assert await numbers(store, **{"from": "2026-03-02"}) == [early["number"]]
    assert await numbers(store, **{"from": "2026-03-01", "to": "2026-03-02"}) == [
        early["number"],
        late["number"],
    ]


SQLISH = "x' OR '1'='1"


@pytest.mark.parametrize(
    "params",
    [
        {"number": "abc"},
        {"number": SQLISH},
        {"caller": "138-0000"},
        {"caller": "1; DROP TABLE tickets"},
        {"desk": SQLISH},
        {"desk": "General"},
        {"state": "pending"},
        {"state": SQLISH},
        {"status": "gone"},
        {"category": "weather"},
        {"category": SQLISH},
        {"unit": "moon-office"},
        {"area": "atlantis"},
        {"from": "2026-13-01"},
        {"from": "yesterday"},
        {"to": "2026-02-30"},
        {"from": "2026-03-05", "to": "2026-03-01"},
        {"repeat": "maybe"},
        {"limit": "0"},
        {"limit": "5000"},
        {"limit": "ten"},
        {"offset": "-1"},
        {"order": "random"},
        {"sort": "number"},
        {"caller": ["13800000001"]},
    ],
)
def test_malformed_search_parameters_are_refused_by_name(params):
    with pytest.raises(TicketRefused) as caught:
        TicketQuery.from_params(params, CATALOG)
    assert caught.value.code == "bad_query"
    assert str(caught.value).split(":")[0] in {*params, "from"}


async def test_free_text_that_looks_like_sql_is_kept_as_text(desk):
    store, orders = desk
    ticket = await call(store, beijing("2026-03-02 09:00"))
    words = "'; DROP TABLE tickets; --"
    at = beijing("2026-03-02 10:00")
    await orders.act(
        ticket["number"], "accept", AGENT, intake(content=words, address=words), at=at
    )
    view = await orders.view(ticket["number"])
    assert view["content"] == words and view["address"] == words
    assert len(await numbers(store)) == 1
    assert await store.integrity_check() == "ok"


# -- repeated complaints ------------------------------------------------------------


async def test_the_same_caller_within_30_days_is_linked_and_flagged(desk):
    store, orders = desk
    first = await call(store, beijing("2026-03-02 09:00"), "13800000001")
    await orders.act(
        first["number"], "accept", AGENT, intake(), at=beijing("2026-03-02 09:05")
    )
    again = await call(store, beijing("2026-03-31 09:00"), "13800000001")
    later = await call(store, beijing("2026-04-02 09:00"), "13800000001")
    assert again["repeat_of"] == first["number"]
    assert again["repeat_reason"] == "caller" and "repeat" in again["flags"]
    assert later["repeat_of"] is None  # 31 days on
    timeline = (await store.get(again["number"]))["timeline"]
    linked = [e for e in timeline if e["kind"] == "repeat"]
    assert [(e["of"], e["reasons"]) for e in linked] == [(first["number"], ["caller"])]
    assert await numbers(store, repeat="true") == [again["number"]]


async def test_a_call_that_never_became_a_work_order_is_not_a_complaint(desk):
    store, _ = desk
    await call(
        store, beijing("2026-03-02 09:00"), "13800000001", outcome="abandoned_in_menu"
    )
    again = await call(store, beijing("2026-03-03 09:00"), "13800000001")
    assert again["repeat_of"] is None


async def test_the_same_address_and_category_from_another_caller_is_linked(desk):
    store, orders = desk
    at = beijing("2026-03-05 10:00")
    first = await call(store, beijing("2026-03-02 09:00"), "13800000001")
    await orders.act(
        first["number"],
        "accept",
        AGENT,
        intake("urban", address="武侯区 人民南路４段１号"),
        at=at,
    )
    other = await call(store, beijing("2026-03-04 09:00"), "13900000009")
    view = await orders.act(
        other["number"],
        "accept",
        AGENT,
        intake("urban", address="武侯区人民南路4段1号。"),
        at=at,
    )
    assert view["repeat_of"] == first["number"]
    assert view["repeat_reason"] == "address_category"
    assert view["timeline"][-1]["kind"] == "repeat"

    elsewhere = await call(store, beijing("2026-03-04 09:30"), "13900000010")
    view = await orders.act(
        elsewhere["number"],
        "accept",
        AGENT,
        intake("traffic", address="武侯区人民南路4段1号"),
        at=at,
    )
    assert view["repeat_of"] is None


async def test_withheld_numbers_are_never_linked(desk):
    store, orders = desk
    first = await call(store, beijing("2026-03-02 09:00"), "")
    await orders.act(
        first["number"], "accept", AGENT, intake(), at=beijing("2026-03-02 10:00")
    )
    again = await call(store, beijing("2026-03-03 09:00"), "")
    assert again["repeat_of"] is None
    assert await store.caller_history("", before=again["arrived_at"]) == []


async def test_a_callers_history_for_the_agents_screen(desk):
    store, orders = desk
    old = await call(store, beijing("2026-01-10 09:00"), "13800000001")
    first = await call(store, beijing("2026-03-02 09:00"), "13800000001")
    await call(store, beijing("2026-03-02 10:00"), "13900000002")
    await orders.act(
        first["number"],
        "accept",
        AGENT,
        intake("housing"),
        at=beijing("2026-03-02 09:10"),
    )
    now = await call(store, beijing("2026-03-20 09:00"), "13800000001")
    history = await store.caller_history("13800000001", before=now["arrived_at"])
    assert [h["number"] for h in history] == [first["number"]]
    assert history[0]["state"] == "accepted" and history[0]["category"] == "housing"
    everything = await store.caller_history(
        "13800000001", before=now["arrived_at"], days=90
    )
    assert [h["number"] for h in everything] == [first["number"], old["number"]]


# -- exports -------------------------------------------------------------------------


async def test_csv_and_json_lines_exports_follow_the_filters_and_mask(desk):
    store, orders = desk
    a = await call(store, beijing("2026-03-02 09:00"), "13800001234")
    await call(store, beijing("2026-03-03 09:00"), "13900005678")
    await orders.act(
        a["number"],
        "accept",
        AGENT,
        intake(content='=HYPERLINK("http://x")'),
        at=beijing("2026-03-02 09:10"),
    )
    query = TicketQuery.from_params({"state": "accepted"}, CATALOG)
    tickets = await export(store, query, timeline=True)
    assert [t["number"] for t in tickets] == [a["number"]]
    assert [e["kind"] for e in tickets[0]["timeline"]] == [
        "arrived",
        "ended",
        "order.accept",
    ]

    rows = list(
        csv.DictReader(io.StringIO(to_csv(present(t, "agent") for t in tickets)))
    )
    assert rows[0]["caller_number"] == "138****1234"
    assert rows[0]["content"].startswith("'=")
    assert rows[0]["state"] == "accepted"
    whole = to_csv(present(t, "supervisor") for t in tickets)
    assert "13800001234" in whole
    line = json.loads(json.dumps(present(tickets[0], "unit"), ensure_ascii=False))
    assert line["caller_number"] == "138****1234"


async def test_a_store_from_before_work_orders_is_migrated(tmp_path):
    from ivr.tickets import SCHEMA, TicketStore

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA[0])
    db.execute(
        "INSERT INTO tickets (number, linkedid, channel, arrived_at, updated_at) "
        "VALUES ('12345-20261101-000001', 'x', 'c', '2026-11-01T00:00:00.000Z', '')"
    )
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = await TicketStore.open(path)
    try:
        ticket = await store.get("x")
        assert ticket["state"] is None and ticket["status"] == "open"
        version = await store.fetchall("PRAGMA user_version")
        assert list(version[0].values()) == [len(SCHEMA)]
    finally:
        await store.close()
