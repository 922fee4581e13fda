"""Queue calls on the browser phone, and the browser phone's account (issue 9).

The agent's memberships move between ``PJSIP/6001`` and ``PJSIP/web-6001``
with the same penalties and pause, the router still knows ``web-6001`` is
agent 6001, and the desktop gets the session's own SIP account only. The
browser test (tests/browser/test_queue_call_in_browser.py) does it on a real
call.
"""

from __future__ import annotations

import contextlib
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr.web.accounts import UserBook
from ivr.web.auth import Role
from ivr.web.pages import attach
from ivr.web.pages_desk import Softphone
from ivr.web.status_routes import AGENT_DESK
from routing.agents import AgentBook, extension_of
from routing.agents import extension_of as _extension  # what the tracker uses
from tests.support.admin import pages_app
from tests.unit.test_agent_desk import Cfg, desk, event, settle  # noqa: F401
from tests.unit.test_web_pages import PASSWORD, login, page_csrf
from tests.unit.test_web_pages import web as web  # the fixture

SECRET = "sip-secret-of-6001-xyz"
OTHER = "the-other-agents-secret"


def book() -> AgentBook:
    return AgentBook(
        [Cfg("6001", "A", {"queue1": 1, "general": 2})],
        {"queue1": "queue1", "general": "general"},
    )


def test_both_phones_and_their_channels_are_the_same_agent():
    for name in (
        "PJSIP/6001",
        "PJSIP/web-6001",
        "PJSIP/web-6001-0000002a",
        "PJSIP/6001-0000002b",
    ):
        assert extension_of(name) == "6001"
        assert book().by_interface(name).extension == "6001"
    assert _extension("PJSIP/web-6001") == "6001"  # the call tracker's agent


def test_use_phone_moves_the_memberships_with_their_penalties_and_pause():
    agents = book()
    agents.login("6001", 0.0)
    agents.pause("6001", "lunch", 0.0)
    actions = agents.use_phone("6001", "web", 1.0)
    assert [(a.kind, a.queue, a.interface) for a in actions] == [
        ("remove", "general", "PJSIP/6001"),
        ("remove", "queue1", "PJSIP/6001"),
        ("add", "general", "PJSIP/web-6001"),
        ("add", "queue1", "PJSIP/web-6001"),
    ]
    added = {a.queue: (a.penalty, a.paused, a.reason) for a in actions[2:]}
    assert added == {"general": (1, True, "lunch"), "queue1": (0, True, "lunch")}
    assert agents.use_phone("6001", "web", 2.0) == []  # already there
    with pytest.raises(ValueError, match="unknown phone 'fax'"):
        agents.use_phone("6001", "fax", 2.0)


def test_use_phone_is_refused_during_a_call():
    agents = book()
    agents.login("6001", 0.0)
    agents.called("6001", "PJSIP/trunk-1", "PJSIP/6001-1")
    with pytest.raises(ValueError, match="on a call"):
        agents.use_phone("6001", "web", 1.0)
    assert agents.agents["6001"].phone == "sip"


def sent(session) -> list[tuple[str, str, str]]:
    return [
        (name, h.get("Queue", ""), h.get("Interface", ""))
        for name, h in session.sent
        if name.startswith("Queue")
    ]


async def test_the_desk_applies_moves_and_later_actions_on_the_browser_phone(desk):  # noqa: F811
    state = await desk.agents.use_phone("6001", "web")
    assert state["phone"] == "web" and state["changed"]
    assert sent(desk.session) == [
        ("QueueRemove", "general", "PJSIP/6001"),
        ("QueueRemove", "queue1", "PJSIP/6001"),
        ("QueueAdd", "general", "PJSIP/web-6001"),
        ("QueueAdd", "queue1", "PJSIP/web-6001"),
    ]
    add = next(h for n, h in desk.session.sent if n == "QueueAdd")
    assert add["StateInterface"] == "PJSIP/web-6001" and add["MemberName"] == "6001"
    desk.session.sent.clear()

    # Queue events on the browser phone are agent 6001's: the wrap-up pauses it.
    desk.agents.handle(
        event("AgentConnect", Interface="PJSIP/web-6001", Channel="PJSIP/trunk-1")
    )
    assert desk.agents.state_of(desk.agents.book.agents["6001"])["status"] == "busy"
    desk.agents.handle(
        event(
            "AgentComplete",
            Queue="queue1",
            Interface="PJSIP/web-6001",
            Channel="PJSIP/trunk-1",
        )
    )
    await settle(desk.agents)
    assert sent(desk.session) == [("QueuePause", "", "PJSIP/web-6001")]

    # The SIP phone's device state no longer tells the agent's state.
    desk.agents.handle(event("DeviceStateChange", Device="PJSIP/6001", State="INUSE"))
    assert desk.agents.book.agents["6001"].device != "in_use"
    desk.agents.handle(
        event("DeviceStateChange", Device="PJSIP/web-6001", State="UNAVAILABLE")
    )
    assert desk.agents.book.agents["6001"].device == "unavailable"

    # Logging out leaves the queues on the browser phone, then back to SIP.
    desk.session.sent.clear()
    await desk.agents.command("logout", "6001")
    assert sent(desk.session) == [
        ("QueueRemove", "general", "PJSIP/web-6001"),
        ("QueueRemove", "queue1", "PJSIP/web-6001"),
    ]
    assert desk.agents.book.agents["6001"].phone == "sip"


async def test_reconcile_adopts_the_browser_phone_or_moves_strays(desk):  # noqa: F811
    members = [
        event(
            "QueueMember",
            Queue=queue,
            Location="PJSIP/web-6001",
            StateInterface="PJSIP/web-6001",
            Penalty=penalty,
            Status="1",
            Paused="0",
        )
        for queue, penalty in (("queue1", "0"), ("general", "1"))
    ]
    desk.session.queue_members = members
    # A new server adopts what Asterisk holds: 6001 takes calls in the browser.
    await desk.agents.resync(adopt=True)
    assert desk.agents.book.agents["6001"].phone == "web"
    assert [s for s in sent(desk.session) if "6001" in s[2]] == []  # as it is

    # A later session with the router on the SIP phone moves them back.
    desk.agents.book.agents["6001"].phone = "sip"
    desk.session.sent.clear()
    await desk.agents.resync(adopt=False)
    moves = [s for s in sent(desk.session) if "6001" in s[2]]
    assert sorted(moves) == [
        ("QueueAdd", "general", "PJSIP/6001"),
        ("QueueAdd", "queue1", "PJSIP/6001"),
        ("QueueRemove", "general", "PJSIP/web-6001"),
        ("QueueRemove", "queue1", "PJSIP/web-6001"),
    ]


# -- the desktop's routes ------------------------------------------------------------


@contextlib.asynccontextmanager
async def pages(tmp_path, agent_desk=None):
    """The pages with a browser phone account for 6001 (and one for 6002)."""
    users = UserBook(tmp_path / "secrets" / "web-users.json")
    users.add("zhao", Role.AGENT, PASSWORD, agent="6001")
    users.add("li", Role.SUPERVISOR, PASSWORD)
    app = await pages_app(tmp_path)
    if agent_desk is not None:
        app[AGENT_DESK] = agent_desk
    softphone = Softphone(5088, {"6001": SECRET, "6002": OTHER})
    attach(app, UserBook.load(users.path), softphone=softphone)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def phones(tmp_path):
    async with pages(tmp_path) as client:
        yield client


async def agent_page(client, name: str = "zhao") -> str:
    await login(client, name)
    return page_csrf(await (await client.get("/ui/desk")).text())


async def test_the_browser_phone_account_is_the_sessions_own(phones, caplog):
    caplog.set_level(logging.DEBUG)
    csrf = await agent_page(phones)
    response = await phones.post(
        "/ui/api/desk/softphone", headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {
        "server": "ws://127.0.0.1:5088/ws",
        "user": "web-6001",
        "password": SECRET,
    }
    assert SECRET not in caplog.text and OTHER not in caplog.text
    # Not without the CSRF token, nor for an account without an extension.
    refused = await phones.post("/ui/api/desk/softphone")
    assert refused.status == 403
    phones.session.cookie_jar.clear()
    await login(phones, "li")
    csrf = page_csrf(await (await phones.get("/ui/wallboard")).text())
    other = await phones.post("/ui/api/desk/softphone", headers={"X-CSRF-Token": csrf})
    assert other.status == 409
    assert "no agent extension" in (await other.json())["message"]
    assert OTHER not in await other.text()


async def test_no_account_held_and_bad_phone_say_what_to_do(web):
    csrf = await agent_page(web)
    headers = {"X-CSRF-Token": csrf}
    none = await web.post("/ui/api/desk/softphone", headers=headers)
    assert none.status == 404
    assert "type the address and the SIP password" in (await none.json())["message"]
    bad = await web.post("/ui/api/desk/phone", json={"phone": "fax"}, headers=headers)
    assert bad.status == 400
    assert "'phone' is 'fax'" in (await bad.json())["message"]
    away = await web.post("/ui/api/desk/phone", json={"phone": "web"}, headers=headers)
    assert away.status == 503  # no hotline server behind these pages


def test_passwords_never_show_in_a_repr():
    assert "hidden-secret" not in repr(Softphone(5088, {"6001": "hidden-secret"}))
    assert Softphone(5088, {}, url="wss://hotline.example/ws").address("x") == (
        "wss://hotline.example/ws"
    )
    assert PASSWORD  # the pages' test accounts log in with it


async def test_the_desktop_moves_queue_calls_and_logout_brings_them_back(
    tmp_path,
    desk,  # noqa: F811
):
    async with pages(tmp_path, desk.agents) as client:
        csrf = await agent_page(client)
        moved = await client.post(
            "/ui/api/desk/phone", json={"phone": "web"}, headers={"X-CSRF-Token": csrf}
        )
        assert moved.status == 200 and (await moved.json())["phone"] == "web"
        assert ("QueueAdd", "queue1", "PJSIP/web-6001") in sent(desk.session)
        desk.session.sent.clear()
        out = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
        assert out.status == 302
        assert desk.agents.book.agents["6001"].phone == "sip"
        assert ("QueueAdd", "queue1", "PJSIP/6001") in sent(desk.session)
        assert ("QueueRemove", "queue1", "PJSIP/web-6001") in sent(desk.session)


async def test_feature_codes_from_the_browser_phone_are_the_agents(desk):  # noqa: F811
    desk.agents.handle(
        event("UserEvent", UserEvent="YhtAgent", Request="pause", Agent="web-6001")
    )
    await settle(desk.agents)
    assert desk.agents.book.agents["6001"].pause_reason == "break"
