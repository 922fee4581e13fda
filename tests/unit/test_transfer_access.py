"""Who may transfer a call: an agent's session only its own call."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr.transfer import TransferError
from ivr.web.accounts import UserBook
from ivr.web.auth import Role
from ivr.web.pages import attach as attach_pages
from ivr.web.transfer_routes import attach as attach_transfers
from tests.support.admin import pages_app
from tests.unit.test_transfer import desk  # noqa: F401 (the fixture)
from tests.unit.test_web_pages import PASSWORD, login, page_csrf


async def test_an_agent_may_transfer_only_the_call_it_is_on(desk):  # noqa: F811
    # The call is agent 6001's (AgentConnect above): 6002 gets what a wrong
    # ticket number gets, and nothing is sent to Asterisk.
    number = "12345-20261203-000001"
    with pytest.raises(TransferError) as refused:
        await desk.request(number, "police", "start", agent="6002")
    assert (refused.value.status, refused.value.error) == (404, "no_such_call")
    assert desk.session.actions == [] and not desk.running
    started = await desk.request(number, "police", "start", agent="6001")
    assert started["target"] == "police" and desk.session.actions


async def test_the_web_route_passes_the_sessions_agent(desk, tmp_path):  # noqa: F811
    users = UserBook(tmp_path / "secrets" / "web-users.json")
    users.add("qian", Role.AGENT, PASSWORD, agent="6002")
    users.add("li", Role.SUPERVISOR, PASSWORD)
    url = "/ui/api/calls/12345-20261203-000001/transfer"
    for name, page, status in (
        ("qian", "/ui/desk", 404),  # not qian's call: nothing is sent
        ("li", "/ui/wallboard", 200),  # a supervisor may act on any call
    ):
        app = await pages_app(tmp_path / name)
        attach_pages(app, UserBook.load(users.path))
        attach_transfers(app, desk, None)
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            await login(http, name)
            csrf = page_csrf(await (await http.get(page)).text())
            response = await http.post(
                url, json={"target": "police"}, headers={"X-CSRF-Token": csrf}
            )
            assert response.status == status, await response.text()
            assert bool(desk.session.actions) == (status == 200)
