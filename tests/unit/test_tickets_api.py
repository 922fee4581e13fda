"""The tickets API through aiohttp's test client, on a real SQLite store.

The app is built the way the admin app is: its error and auth middlewares and
its token book, with the units' tokens beside it.
"""

from __future__ import annotations

import csv
import io
import json
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr.web.auth import Role, TokenBook, auth_middleware
from ivr.web.errors import error_middleware
from ivr.web.keys import TOKENS
from ivr.web.tickets_api import (
    MaskedAccessLogger,
    UnitTokens,
    add_ticket_routes,
    mask_text,
)
from tests.support.tickets import AGENT, CATALOG, beijing, call, intake

PAD = "-" + "x" * 24  # tokens need 24 characters or more
STAFF = TokenBook(
    [
        (Role.AGENT, "li", "t-agent" + PAD),
        (Role.SUPERVISOR, "wang", "t-super" + PAD),
        (Role.ADMIN, "root", "t-admin" + PAD),
    ]
)
UNITS = UnitTokens.parse(
    f"# unit name token\nurban zhao t-urban{PAD}\nwater qian t-water{PAD}\n"
    f"housing sun t-housing{PAD}\n",
    CATALOG,
)


@pytest.fixture
async def api(make_store):
    store, orders = await make_store()
    app = web.Application(middlewares=[error_middleware, auth_middleware(STAFF)])
    app[TOKENS] = STAFF
    add_ticket_routes(app, orders, UNITS)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, store, orders
    finally:
        await client.close()


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}{PAD}"}


async def seeded(store, orders):
    """One call ticket dispatched to urban management."""
    ticket = await call(store, beijing("2026-03-02 09:00"), "13800001234")
    at = beijing("2026-03-02 10:00")
    await orders.act(ticket["number"], "accept", AGENT, intake("urban"), at=at)
    return ticket["number"]


async def test_needs_a_known_token(api):
    client, *_ = api
    for headers in ({}, auth("wrong"), {"Authorization": f"Basic t-agent{PAD}"}):
        response = await client.get("/tickets", headers=headers)
        assert response.status == 401
        body = await response.json()
        assert body["error"] == "unauthorized" and body["status"] == 401
        assert set(body) == {"status", "message", "error", "details"}


async def test_search_masks_numbers_for_agents_not_supervisors(api):
    client, store, orders = api
    number = await seeded(store, orders)
    response = await client.post(
        "/tickets/search", json={"caller": "13800001234"}, headers=auth("t-agent")
    )
    assert response.status == 200
    tickets = (await response.json())["tickets"]
    assert [t["number"] for t in tickets] == [number]
    assert tickets[0]["caller_number"] == "138****1234"
    response = await client.get("/tickets?state=accepted", headers=auth("t-super"))
    assert (await response.json())["tickets"][0]["caller_number"] == "13800001234"
    response = await client.get(f"/tickets/{number}", headers=auth("t-admin"))
    assert (await response.json())["caller_number"] == "13800001234"


@pytest.mark.parametrize(
    "query",
    [
        "state=open; DROP TABLE tickets",
        "desk=x' OR '1'='1",
        "from=2026-02-30",
        "from=2026-03-05&to=2026-03-01",
        "limit=100000",
        "unit=ghost",
        "colour=red",
        "state=accepted&state=closed",
    ],
)
async def test_malformed_searches_get_400_with_the_parameter_named(api, query):
    client, *_ = api
    response = await client.get(f"/tickets?{query}", headers=auth("t-agent"))
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "bad-query" and body["message"]


async def test_a_callers_number_never_goes_in_an_address(api):
    client, *_ = api
    response = await client.get("/tickets?caller=13800001234", headers=auth("t-agent"))
    assert response.status == 400
    assert (await response.json())["error"] == "number-in-address"
    response = await client.post(
        "/tickets/search", json={"caller": "1' OR '1'='1"}, headers=auth("t-agent")
    )
    assert response.status == 400
    assert (await response.json())["error"] == "bad-query"


async def test_moves_through_the_api_and_their_errors(api):
    client, store, orders = api
    number = await seeded(store, orders)
    path = f"/tickets/{number}/actions"

    async def post(action, token, body=None, raw=None):
        return await client.post(
            f"{path}/{action}",
            headers=auth(token),
            **({"data": raw} if raw is not None else {"json": body or {}}),
        )

    past = {"unit": "urban", "deadline": "2020-01-01"}
    sqlish = "urban'; DROP TABLE tickets;--"
    cases = [
        ("dispatch", "t-agent", {"lead": "ghost-office"}, 400, "unknown-unit"),
        ("dispatch", "t-agent", {"lead": past}, 400, "deadline-past"),
        ("dispatch", "t-agent", {"lead": sqlish}, 400, "unknown-unit"),
        # Not the unit's ticket: as if it did not exist.
        ("dispatch", "t-urban", {"lead": "urban"}, 404, "no-ticket"),
        ("dispatch", "t-admin", {"lead": "urban"}, 403, "forbidden"),
        ("close", "t-agent", {}, 409, "wrong-state"),
        ("explode", "t-agent", {}, 400, "unknown-action"),
    ]  # fmt: skip
    before = await client.get(f"/tickets/{number}", headers=auth("t-super"))
    before = await before.json()
    for action, token, body, status, code in cases:
        response = await post(action, token, body)
        payload = await response.json()
        assert (response.status, payload["error"]) == (status, code), (action, payload)
    response = await post("dispatch", "t-agent", raw="{not json")
    assert response.status == 400 and (await response.json())["error"] == "bad-json"
    response = await post("dispatch", "t-agent", raw="[1, 2]")
    assert response.status == 400
    after = await (
        await client.get(f"/tickets/{number}", headers=auth("t-super"))
    ).json()
    assert after == before

    response = await post(
        "dispatch", "t-agent", {"lead": "urban", "co_units": ["water"]}
    )
    assert response.status == 200
    view = await response.json()
    assert view["state"] == "dispatched" and view["caller_number"] == "138****1234"
    # A unit acts only on its own part; another unit does not even see it.
    assert (await post("sign", "t-urban")).status == 200
    assert (await post("close", "t-urban")).status == 403
    assert (await post("sign", "t-housing")).status == 404
    response = await post("handle", "t-urban", {"result": "已维修"})
    assert response.status == 409
    assert (await response.json())["error"] == "co-units-pending"
    response = await post("return", "t-water", {"reason": "不属于水务"})
    assert response.status == 200
    response = await post("uphold_return", "t-super", {"unit": "water"})
    assert response.status == 200
    response = await post("handle", "t-urban", {"result": "已维修"})
    assert (await response.json())["state"] == "handled"
    assert (await post("close", "t-agent")).status == 200

    response = await client.post(
        f"/tickets/{number}/survey",
        headers=auth("t-agent"),
        json={"score": 3, "source": "follow_up"},
    )
    view = await response.json()
    assert (
        response.status == 200 and view["state"] == "accepted" and view["reopens"] == 1
    )
    response = await client.post(
        f"/tickets/{number}/survey", headers=auth("t-agent"), json={"score": 9}
    )
    assert response.status == 400 and (await response.json())["error"] == "bad-score"


async def test_units_see_only_their_tickets(api):
    client, store, orders = api
    number = await seeded(store, orders)
    other = await call(store, beijing("2026-03-02 11:00"), "13900000000")
    at = beijing("2026-03-02 12:00")
    await orders.act(other["number"], "accept", AGENT, intake("housing"), at=at)
    await orders.act(other["number"], "dispatch", AGENT, {"lead": "housing"}, at=at)
    await orders.act(number, "dispatch", AGENT, {"lead": "urban"}, at=at)

    response = await client.get("/tickets", headers=auth("t-urban"))
    assert [t["number"] for t in (await response.json())["tickets"]] == [number]
    response = await client.get("/tickets?unit=housing", headers=auth("t-urban"))
    assert response.status == 403
    response = await client.get(f"/tickets/{other['number']}", headers=auth("t-urban"))
    assert response.status == 404
    # A caller's history is for the hotline: a unit's token is not a staff token.
    response = await client.get(f"/tickets/{number}/history", headers=auth("t-urban"))
    assert response.status == 401
    response = await client.post(
        f"/tickets/{number}/survey", json={"score": 1}, headers=auth("t-urban")
    )
    assert response.status == 401


async def test_export_as_csv_and_json_lines(api):
    client, store, orders = api
    number = await seeded(store, orders)
    await call(store, beijing("2026-03-05 09:00"), "13900000000")
    response = await client.get(
        "/tickets/export?format=csv&state=accepted", headers=auth("t-agent")
    )
    assert response.status == 200 and response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["number"], r["caller_number"]) for r in rows] == [
        (number, "138****1234")
    ]
    response = await client.get(
        "/tickets/export?to=2026-03-04", headers=auth("t-super")
    )
    lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [t["number"] for t in lines] == [number]
    assert lines[0]["caller_number"] == "13800001234" and lines[0]["timeline"]
    response = await client.get("/tickets/export?format=xls", headers=auth("t-agent"))
    assert response.status == 400


async def test_the_callers_history_for_the_agent(api):
    client, store, orders = api
    first = await seeded(store, orders)
    now = await call(store, beijing("2026-03-10 09:00"), "13800001234")
    response = await client.get(
        f"/tickets/{now['number']}/history", headers=auth("t-agent")
    )
    body = await response.json()
    assert body["caller_number"] == "138****1234"
    assert [t["number"] for t in body["tickets"]] == [first]
    response = await client.get("/tickets/12345-1/history", headers=auth("t-agent"))
    assert response.status == 400


async def test_catalog_and_overdue(api):
    client, *_ = api
    response = await client.get("/tickets/catalog", headers=auth("t-agent"))
    catalog = await response.json()
    assert "urban" in {u["id"] for u in catalog["units"]}
    assert catalog["actions"]["sign"]["roles"] == ["unit"]
    response = await client.get("/tickets/overdue", headers=auth("t-agent"))
    assert response.status == 200 and "overdue" in await response.json()


def test_the_access_log_masks_numbers_in_queries(caplog):
    assert mask_text("/tickets?caller=13800001234&limit=5") == (
        "/tickets?caller=138****1234&limit=5"
    )
    ticket = "/tickets/12345-20260302-000001"
    assert mask_text(ticket) == ticket

    class Request:
        method = "GET"
        path_qs = "/tickets?caller=13800001234"

    class Response:
        status = 200

    logger = logging.getLogger("yihaotong.web")
    with caplog.at_level(logging.INFO, logger="yihaotong.web"):
        MaskedAccessLogger(logger, "").log(Request(), Response(), 0.002)
    assert "138****1234" in caplog.text and "13800001234" not in caplog.text


def test_the_routes_fit_the_admin_apis_openapi_document():
    from ivr.web.openapi import openapi_document
    from ivr.web.tickets_api import TICKET_OPERATIONS

    paths = openapi_document(TICKET_OPERATIONS)["paths"]
    assert "/tickets/{number}/actions/{action}" in paths
    assert paths["/tickets/{number}/history"]["get"]["x-required-role"] == "agent"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"ghost zhao t{PAD}", "no unit 'ghost'"),
        ("urban zhao short", "24 or more"),
        ("urban zhao", "<unit-id> <name> <token>"),
    ],
)
def test_unit_tokens_are_checked_when_read(text, message):
    from ivr.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        UnitTokens.parse(text, CATALOG)
