"""The web pages over aiohttp's test server: accounts, sessions, CSRF, roles.

The browser tests (tests/browser) drive the same pages in Chromium on real
calls; these pin the rules one request at a time.
"""

from __future__ import annotations

import asyncio
import secrets
import stat

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr.errors import ConfigError
from ivr.tickets import TicketStore
from ivr.web.accounts import UserBook
from ivr.web.auth import Role
from ivr.web.keys import PLANS
from ivr.web.pages import attach
from ivr.web.sessions import COOKIE, LoginLimiter
from tests.support.admin import PLAN, pages_app

PASSWORD = "correct horse battery"
HTML_NAME = "<b>bold</b><script>window.owned=1</script>"


@pytest.fixture
async def web(tmp_path):
    users = UserBook(tmp_path / "secrets" / "web-users.json")
    users.add("wang", Role.ADMIN, PASSWORD)
    users.add("li", Role.SUPERVISOR, PASSWORD)
    users.add("zhao", Role.AGENT, PASSWORD, agent="6001")
    store = await TicketStore.open(tmp_path / "tickets.db")
    token = secrets.token_urlsafe(32)
    app = await pages_app(tmp_path, token)
    attach(app, UserBook.load(users.path), store=store)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        client.store = store
        client.live = app[PLANS]
        client.token = token
        yield client
    await store.close()


async def login(client, name: str, password: str = PASSWORD, *, follow=False):
    form = await client.get("/login")
    assert form.status == 200
    html = await form.text()
    csrf = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return await client.post(
        "/login",
        data={"name": name, "password": password, "csrf": csrf},
        allow_redirects=follow,
    )


def page_csrf(html: str) -> str:
    return html.split('data-csrf="', 1)[1].split('"', 1)[0]


def test_users_file_is_private_and_hashed(tmp_path):
    book = UserBook(tmp_path / "users.json")
    book.add("wang", Role.ADMIN, PASSWORD)
    mode = stat.S_IMODE((tmp_path / "users.json").stat().st_mode)
    assert mode == 0o600
    text = (tmp_path / "users.json").read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    again = UserBook.load(tmp_path / "users.json")
    assert again.verify("wang", PASSWORD).role is Role.ADMIN
    assert again.verify("wang", "wrong password!") is None
    assert again.verify("nobody", PASSWORD) is None


def test_bad_accounts_are_refused_with_the_reason(tmp_path):
    book = UserBook(tmp_path / "users.json")
    with pytest.raises(ConfigError, match="needs --agent"):
        book.add("zhao", Role.AGENT, PASSWORD)
    with pytest.raises(ConfigError, match="10 or more"):
        book.add("wang", Role.ADMIN, "short")
    with pytest.raises(ConfigError, match="user name"):
        book.add("<b>", Role.ADMIN, PASSWORD)
    (tmp_path / "open.json").write_text('{"users": {}}')
    (tmp_path / "open.json").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        UserBook.load(tmp_path / "open.json")


def test_login_limits_per_address_and_per_user():
    now = [0.0]
    limiter = LoginLimiter(per_address=4, per_user=2, window=60, clock=lambda: now[0])
    limiter.failed("10.0.0.1", "wang")
    assert limiter.retry_after("10.0.0.1", "wang") == 0
    limiter.failed("10.0.0.2", "wang")
    assert limiter.retry_after("10.0.0.3", "wang") > 0  # the user, from anywhere
    assert limiter.retry_after("10.0.0.1", "li") == 0
    for name in ("a", "b", "c"):
        limiter.failed("10.0.0.9", name)
    limiter.failed("10.0.0.9", "d")
    assert limiter.retry_after("10.0.0.9", "e") > 0  # the address, any name
    now[0] = 61
    assert limiter.retry_after("10.0.0.9", "e") == 0
    assert limiter.retry_after("10.0.0.3", "wang") == 0


async def test_guesses_sent_in_parallel_are_counted_before_any_is_checked(web):
    form = await web.get("/login")
    csrf = (await form.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]
    guess = {"name": "wang", "password": "wrong password!", "csrf": csrf}
    replies = await asyncio.gather(
        *(web.post("/login", data=guess, allow_redirects=False) for _ in range(20))
    )
    statuses = sorted(r.status for r in replies)
    # Five tries per user name are let in (and fail); the rest wait.
    assert statuses == [401] * 5 + [429] * 15


def test_the_limiter_forgets_a_right_password_and_stays_bounded(monkeypatch):
    limiter = LoginLimiter(per_address=3, per_user=3, window=60, clock=lambda: 0.0)
    for _ in range(5):
        assert limiter.reserve("10.0.0.1", "wang") == 0
        limiter.succeeded("10.0.0.1", "wang")  # right each time: no failures
    assert limiter.retry_after("10.0.0.1", "wang") == 0
    monkeypatch.setattr("ivr.web.sessions.MAX_TRACKED", 100)
    for n in range(1000):  # names sprayed from many addresses
        limiter.reserve(f"10.1.{n // 250}.{n % 250}", f"user{n}")
    assert len(limiter._failures) <= 100


async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(web):
    response = await login(web, "wang")
    assert response.status == 302 and response.headers["Location"] == "/ui/dialplan"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    page = await web.get("/ui/dialplan")
    assert page.status == 200
    html = await page.text()
    assert "Content-Security-Policy" in page.headers
    # Logging out needs the page's CSRF token.
    refused = await web.post("/logout", data={}, allow_redirects=False)
    assert refused.status == 403
    done = await web.post(
        "/logout", data={"csrf": page_csrf(html)}, allow_redirects=False
    )
    assert done.status == 302
    after = await web.get("/ui/dialplan", allow_redirects=False)
    assert after.status == 302 and after.headers["Location"].startswith("/login")


async def test_login_without_its_form_token_is_refused(web):
    response = await web.post(
        "/login", data={"name": "wang", "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403
    assert COOKIE not in response.cookies
    await web.get("/login")  # the form's cookie, then a token that is not it
    odd = await web.post(
        "/login", data={"name": "wang", "password": PASSWORD, "csrf": "令牌"}
    )
    assert odd.status == 403


async def test_wrong_passwords_end_in_429(web):
    statuses = [(await login(web, "li", "wrong password")).status for _ in range(5)]
    assert statuses == [401] * 5
    blocked = await login(web, "li")  # even the right password now waits
    assert blocked.status == 429 and int(blocked.headers["Retry-After"]) > 0
    assert COOKIE not in blocked.cookies


async def test_every_page_checks_the_role(web):
    await login(web, "zhao")
    for path in ("/ui/dialplan", "/ui/wallboard", "/ui/prompts", "/ui/agents"):
        response = await web.get(path)
        assert response.status == 403, path
        assert "needs the" in await response.text()
    assert (await web.get("/ui/desk")).status == 200
    api = await web.post("/ui/api/dialplans/validate", data=PLAN)
    assert api.status == 403
    # Every agent's state is the supervisors' agents page's, not the desk's.
    assert (await web.get("/ui/api/status/agents")).status == 403


async def test_the_api_through_a_session_needs_csrf_and_shows_lines(web):
    await login(web, "wang")
    html = await (await web.get("/ui/dialplan")).text()
    assert "1: {queue: business}" in html
    broken = PLAN.replace("1: {queue: business}", "1: {queue: busines}")
    no_token = await web.post("/ui/api/dialplans", data=broken)
    assert no_token.status == 403 and (await no_token.json())["error"] == "csrf"
    headers = {"X-CSRF-Token": page_csrf(html)}
    refused = await web.post("/ui/api/dialplans", data=broken, headers=headers)
    body = await refused.json()
    assert refused.status == 422
    line = PLAN.splitlines().index("      1: {queue: business}") + 1
    assert body["details"]["problems"][0].startswith(f"dialplan.yaml:{line}:")
    fixed = PLAN.replace("1: {queue: business}", "1: {queue: psych}")
    published = await web.post("/ui/api/dialplans", data=fixed, headers=headers)
    assert published.status == 201
    version = (await published.json())["version"]
    assert version["author"] == "wang" and web.live.plan.menus["main"]
    # A bearer token still works on the API itself, and a session does not.
    assert (await web.get("/dialplans")).status == 401
    token = {"Authorization": f"Bearer {web.token}"}
    assert (await web.get("/dialplans", headers=token)).status == 200


async def test_a_caller_name_with_html_is_text_on_the_wallboard(web):
    await web.store.open_ticket(
        linkedid="1700000000.1",
        channel="PJSIP/pstn-00000001",
        caller_number="13912345678",
        caller_name=HTML_NAME,
    )
    await login(web, "li")
    response = await web.get("/ui/wallboard")
    assert response.status == 200
    html = await response.text()
    assert "<b>bold</b>" not in html and "<script>window" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;" in html
    assert "13912345678" not in html and "139****5678" in html


async def test_static_files_are_served_and_confined(web):
    chart = await web.get("/static/vendor/chart-4.6.1.umd.min.js")
    assert chart.status == 200
    assert "javascript" in chart.headers["Content-Type"]
    escape = await web.get("/static/..%2f..%2fpages.py")
    assert escape.status == 404


def test_users_command_reads_the_password_from_stdin(tmp_path, monkeypatch, capsys):
    import io

    from ivr.cli import main

    path = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    args = ["users", "--file", str(path), "add", "zhao", "--role", "agent"]
    assert main([*args, "--agent", "6001"]) == 0
    assert "zhao: agent, agent 6001" in capsys.readouterr().out
    assert UserBook.load(path).verify("zhao", PASSWORD).agent == "6001"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(args) == 2  # an agent account without --agent
    assert "needs --agent" in capsys.readouterr().err
    assert main(["users", "--file", str(path), "list"]) == 0
    assert capsys.readouterr().out == "zhao\tagent agent 6001\n"


async def test_account_changes_reach_the_running_server(web, tmp_path):
    from ivr.web.sessions import USERS

    book = web.server.app[USERS]
    response = await login(web, "li")
    assert response.status == 302
    assert (await web.get("/ui/wallboard")).status == 200
    # `hotline users add` in another process: a new account, a new password.
    other = UserBook.load(book.path)
    other.add("chen", Role.SUPERVISOR, PASSWORD + "2")
    other.add("li", Role.SUPERVISOR, PASSWORD + "3")
    after = await web.get("/ui/wallboard", allow_redirects=False)
    assert after.status == 302  # the old password's session is over
    web.session.cookie_jar.clear()
    assert (await login(web, "chen", PASSWORD + "2")).status == 302


async def test_the_wallboard_stream_ends_with_the_session(web):
    await login(web, "li")
    page = await web.get("/ui/wallboard")
    response = await web.get("/ui/wallboard/events")
    await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)  # the state
    logout = await web.post(
        "/logout", data={"csrf": page_csrf(await page.text())}, allow_redirects=False
    )
    assert logout.status == 302
    # The next tick (one second) sees no session and closes the stream.
    rest = await asyncio.wait_for(response.content.read(), 5)
    assert b"event: state" not in rest
    response.close()


async def test_the_wallboard_streams_and_lets_the_server_stop(web):
    import asyncio
    import json
    import time

    await login(web, "li")
    response = await web.get("/ui/wallboard/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
    event, data = first.decode().split("\n", 1)
    assert event == "event: state"
    state = json.loads(data.removeprefix("data: "))
    assert state["serving"] is False and len(state["hours"]["answered"]) == 24
    # An open stream must not hold the server's shutdown for its timeout.
    started = time.monotonic()
    await web.server.close()  # the browser is still connected
    assert time.monotonic() - started < 5
    response.close()
