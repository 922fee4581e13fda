"""The report of ``hotline report`` served to supervisors, and the read-only
transfer targets on the agents page (issue 9)."""

from __future__ import annotations

from datetime import date

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr.web.accounts import UserBook
from ivr.web.auth import Role
from ivr.web.pages import attach
from ivr.web.pages_reports import default_range
from ivr.web.tickets_api import WORKORDERS
from routing.transfer import Target
from tests.support.admin import pages_app
from tests.support.tickets import beijing, call, open_store
from tests.unit.test_web_pages import PASSWORD, login


@pytest.fixture
async def pages(tmp_path):
    users = UserBook(tmp_path / "secrets" / "web-users.json")
    users.add("li", Role.SUPERVISOR, PASSWORD)
    users.add("zhao", Role.AGENT, PASSWORD, agent="6001")
    police = Target("police", "110 police", dial="PJSIP/110@trunk-110", key="*8")
    store, orders = await open_store(tmp_path / "tickets.db")
    for hour in ("09:00", "10:30", "11:15"):
        await call(store, beijing(f"2026-11-02 {hour}"), desk="business")
    app = await pages_app(tmp_path)
    app[WORKORDERS] = orders
    attach(app, UserBook.load(users.path), store=store, targets=(police,))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client
    await store.close()


async def test_a_supervisor_opens_the_report_for_a_date_range(pages):
    await login(pages, "li")
    form = await pages.get("/ui/reports")
    assert form.status == 200
    html = await form.text()
    assert 'action="/ui/reports/view"' in html and 'href="/ui/reports"' in html

    report = await pages.get("/ui/reports/view?from=2026-11-01&to=2026-11-30")
    assert report.status == 200
    text = await report.text()
    assert "2026-11-01" in text
    assert "id=answer_rate_15s" in text  # the report's own table of rates
    assert '<img src="data:image/png;base64,' in text  # charts inlined
    assert '.png"' not in text  # no chart left to fetch from the server
    policy = report.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


async def test_bad_ranges_name_the_field(pages):
    await login(pages, "li")
    for query, message in (
        ("from=2026-11-31&to=2026-12-01", "from='2026-11-31' is not a date"),
        ("from=2026-11-01", "to='' is not a date"),
        ("from=2026-11-05&to=2026-11-01", "is before from=2026-11-05"),
        ("from=2024-01-01&to=2026-01-01", "longer than 366 days"),
    ):
        response = await pages.get(f"/ui/reports/view?{query}")
        assert response.status == 400, query
        assert message in (await response.json())["message"], query


async def test_agents_get_no_report_and_supervisors_see_targets_read_only(pages):
    await login(pages, "zhao")
    refused = await pages.get("/ui/reports/view?from=2026-11-01&to=2026-11-30")
    assert refused.status == 403
    pages.session.cookie_jar.clear()
    await login(pages, "li")
    html = await (await pages.get("/ui/agents")).text()
    assert (
        '<tr data-target="police"><td>police</td><td>110 police</td><td>*8</td>' in html
    )
    assert "no API to change them" in html


def test_the_default_range_is_the_last_seven_days():
    assert default_range(date(2026, 12, 3)) == (date(2026, 11, 26), date(2026, 12, 2))
