"""The web pages: log in and out, the dial plan editor, prompts, the wallboard.

Pages are rendered on the server by Jinja2 with autoescape on, so whatever a
caller typed or said and every caller ID reaches the browser as text. The
little JavaScript there is lives in ``static/`` (no inline scripts: the
Content-Security-Policy forbids them) and talks to the admin API's own
handlers under ``/ui/api/``, wrapped by :func:`ivr.web.sessions.session_api`
so a session stands in for a bearer token. Nothing here validates, diffs or
publishes a dial plan itself.

:func:`attach` adds the routes to the admin app; the server calls it when the
admin API is on.
"""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from ivr import log
from ivr.web import dialplan_routes as plans
from ivr.web import pages_desk as desk
from ivr.web import pages_reports as reports
from ivr.web import prompt_routes as prompts
from ivr.web import transfer_routes as transfers
from ivr.web import wallboard
from ivr.web.accounts import UserBook
from ivr.web.auth import Role, public
from ivr.web.keys import PLANS
from ivr.web.sessions import (
    COOKIE,
    CSRF_FIELD,
    LIMITER,
    LOGIN_COOKIE,
    SESSION,
    SESSIONS,
    USERS,
    LoginLimiter,
    Session,
    SessionStore,
    clear_session_cookie,
    current,
    page,
    session_api,
    set_session_cookie,
)
from ivr.web.status_routes import AGENT_DESK, agent_action, agents
from ivr.web.tickets_api import TICKET_OPERATIONS

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
HOME = {
    Role.ADMIN: "/ui/dialplan",
    Role.SUPERVISOR: "/ui/wallboard",
    Role.AGENT: "/ui/desk",
}
# Scripts only from our own files; no frames, no plugins, no foreign hosts.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; media-src 'self' blob:; "
        # The browser softphone's WebSocket goes to Asterisk, on its own port.
        "connect-src 'self' ws: wss:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    request: web.Request, template: str, status: int = 200, **values
) -> web.Response:
    session = values.pop("session", None) or request.get(SESSION)
    html = _templates.get_template(template).render(
        session=session,
        csrf=session.csrf if session else "",
        Role=Role,
        **values,
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


def forbidden(request: web.Request, session: Session, needed: Role) -> web.Response:
    return render(request, "forbidden.html", status=403, session=session, needed=needed)


# -- logging in and out -----------------------------------------------------------


def _safe_next(target: str | None) -> str | None:
    """Only a path on this server: never an open redirect elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


@public
async def login_form(request: web.Request) -> web.Response:
    session = current(request)
    if session is not None:
        raise web.HTTPFound(_safe_next(request.query.get("next")) or _home(session))
    return _login_page(request, "")


def _login_page(request: web.Request, error: str, status: int = 200, **extra):
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status=status,
        login_csrf=token,
        error=error,
        next=_safe_next(request.query.get("next")) or "",
        name=extra.get("name", ""),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/login",
    )
    if "retry_after" in extra:
        response.headers["Retry-After"] = str(extra["retry_after"])
    return response


@public
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    name = str(form.get("name", "")).strip()
    password = str(form.get("password", ""))
    offered = str(form.get(CSRF_FIELD, ""))
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected.encode(), offered.encode()):
        return _login_page(
            request, "the login form was out of date; try again", 403, name=name
        )
    address = request.remote or "?"
    limiter = request.app[LIMITER]
    wait = limiter.reserve(address, name)
    if wait:
        log.web.warning(
            "login refused for %s from %s: too many failures", name, address
        )
        return _login_page(
            request,
            f"too many failed logins; try again in {wait} s",
            429,
            name=name,
            retry_after=wait,
        )
    users = request.app[USERS]
    users.refresh()  # accounts added with `hotline users` while running
    account = await asyncio.to_thread(users.verify, name, password)
    if account is None:
        log.web.info("login failed for %r from %s", name, address)
        return _login_page(request, "wrong name or password", 401, name=name)
    limiter.succeeded(address, name)
    session = request.app[SESSIONS].start(account)
    log.web.info("login: %s (%s) from %s", account.name, account.role_name, address)
    target = _safe_next(str(form.get("next", ""))) or _home(session)
    response = web.HTTPFound(target)
    set_session_cookie(response, request, session)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


@page(Role.AGENT)
async def logout(request: web.Request) -> web.Response:
    session = request[SESSION]
    request.app[SESSIONS].end(session.id)
    log.web.info("logout: %s", session.account.name)
    await desk.back_to_sip_phone(request, session.account.agent)
    response = web.HTTPFound("/login")
    clear_session_cookie(response)
    raise response


def _home(session: Session) -> str:
    return HOME[session.account.role]


@public
async def home(request: web.Request) -> web.Response:
    session = current(request)
    raise web.HTTPFound(_home(session) if session else "/login")


# -- admin: the dial plan and prompts --------------------------------------------


@page(Role.SUPERVISOR)
async def dialplan_page(request: web.Request) -> web.Response:
    live = request.app[PLANS]
    store = live.store
    versions = await asyncio.to_thread(store.versions)
    number = live.version.number if live.version else None
    text = await asyncio.to_thread(store.text, number) if number else ""
    return render(
        request,
        "dialplan.html",
        text=text,
        live=number,
        versions=list(reversed(versions))[:20],
        may_publish=request[SESSION].account.role >= Role.ADMIN,
    )


@page(Role.ADMIN)
async def prompts_page(request: web.Request) -> web.Response:
    return render(request, "prompts.html")


# -- supervisors: the wallboard ----------------------------------------------------


@page(Role.SUPERVISOR)
async def wallboard_page(request: web.Request) -> web.Response:
    state = await wallboard.state(request.app)
    return render(request, "wallboard.html", state=state)


@page(Role.SUPERVISOR)
async def wallboard_events(request: web.Request) -> web.StreamResponse:
    def still_allowed() -> bool:
        # Checked at every tick: a logout or a removed account ends the stream.
        session = current(request)
        return session is not None and session.account.role >= Role.SUPERVISOR

    return await wallboard.stream(request, still_allowed)


@page(Role.SUPERVISOR)
async def agents_page(request: web.Request) -> web.Response:
    agents = request.app.get(AGENT_DESK)
    rows = []
    if agents is not None:
        for agent in agents.book.agents.values():
            state = agents.state_of(agent)
            skills = sorted(agent.skills.items(), key=lambda item: (item[1], item[0]))
            rows.append({**state, "skills": skills})
    return render(
        request,
        "agents.html",
        agents=rows,
        reasons=desk.REASONS,
        serving=bool(agents),
        targets=request.app[desk.TRANSFER_TARGETS],
    )


@page(Role.AGENT)
async def tickets_page(request: web.Request) -> web.Response:
    return render(request, "tickets.html")


# -- agents -----------------------------------------------------------------------


@page(Role.AGENT)
async def desk_page(request: web.Request) -> web.Response:
    return render(
        request,
        "desk.html",
        targets=request.app[desk.TRANSFER_TARGETS],
        reasons=desk.REASONS,
    )


# -- bundled files ------------------------------------------------------------------


@public
async def static(request: web.Request) -> web.StreamResponse:
    relative = request.match_info["path"]
    path = (STATIC / relative).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        raise web.HTTPNotFound()
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": kind,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "max-age=300",
        },
    )


def attach(
    app: web.Application,
    users: UserBook,
    *,
    store=None,
    tracker=None,
    targets: tuple = (),
    softphone=None,
) -> None:
    """Serve the pages from ``app`` (the admin app, before it starts).

    ``store`` (the ticket store) feeds the wallboard, ``tracker`` (the call
    tracker) shows agents their call, ``targets`` are the warm transfer's.
    """
    app[USERS] = users
    app[SESSIONS] = SessionStore()
    app[LIMITER] = LoginLimiter()
    if store is not None:
        app[wallboard.TICKET_STORE] = store
    if tracker is not None:
        app[desk.TRACKER] = tracker
    if softphone is not None:
        app[desk.SOFTPHONE] = softphone
    app[desk.TRANSFER_TARGETS] = tuple(
        {
            "name": t.name,
            "label": getattr(t, "label", "") or t.name,
            "key": getattr(t, "key", ""),  # the agent's DTMF key, shown read-only
        }
        for t in targets
    )
    wallboard.setup(app)
    router = app.router
    router.add_get("/", home)
    router.add_get("/login", login_form)
    router.add_post("/login", login)
    router.add_post("/logout", logout)
    router.add_get("/ui/dialplan", dialplan_page)
    router.add_get("/ui/prompts", prompts_page)
    router.add_get("/ui/wallboard", wallboard_page)
    router.add_get("/ui/wallboard/events", wallboard_events)
    router.add_get("/ui/desk", desk_page)
    router.add_get("/ui/agents", agents_page)
    router.add_get("/ui/tickets", tickets_page)
    reports.attach(app)  # the HTML report of `hotline report`
    router.add_get("/static/{path:.+}", static)
    # The admin API's own handlers, reached with a session instead of a token.
    api = "/ui/api"
    router.add_post(f"{api}/dialplans/validate", session_api(plans.validate))
    router.add_post(f"{api}/dialplans/diff", session_api(plans.diff_against_live))
    router.add_post(f"{api}/dialplans/simulate", session_api(plans.simulate_call))
    router.add_post(f"{api}/dialplans", session_api(plans.publish))
    router.add_post(f"{api}/dialplans/rollback", session_api(plans.rollback))
    router.add_get(f"{api}/prompts", session_api(prompts.list_prompts))
    router.add_post(f"{api}/prompts", session_api(prompts.upload_prompt))
    router.add_get(
        api + "/prompts/{language:[a-z]+}/{name:[a-z0-9_-]+}.wav",
        session_api(prompts.play_prompt),
    )
    router.add_delete(
        api + "/prompts/{language:[a-z]+}/{name:[a-z0-9_-]+}",
        session_api(prompts.delete_prompt),
    )
    router.add_get(f"{api}/status/agents", session_api(agents))
    router.add_post(
        api + "/agents/{extension:[0-9]+}/{action:[a-z]+}", session_api(agent_action)
    )
    # The agent desktop: its own moves, and the tickets and transfer handlers.
    router.add_get(f"{api}/desk", session_api(desk.desk_state))
    # Before the moves' pattern: the browser phone's account and queue phone.
    router.add_post(f"{api}/desk/softphone", session_api(desk.softphone_account))
    router.add_post(f"{api}/desk/phone", session_api(desk.desk_phone))
    router.add_post(api + "/desk/{move:[a-z]+}", session_api(desk.desk_move))
    for path in (
        "/tickets/search",
        "/tickets/catalog",
        "/tickets/{number}/history",
        "/tickets/{number}/actions/",
    ):
        operation = next(o for o in TICKET_OPERATIONS if o.path.startswith(path))
        router.add_route(
            operation.method, api + operation.path, session_api(operation.handler)
        )
    router.add_post(
        api + "/calls/{id:[A-Za-z0-9._-]+}/transfer",
        session_api(transfers.transfer),
    )
    log.web.info(
        "web pages on: %d user(s)%s",
        len(users),
        "" if len(users) else " (add one with: hotline users add NAME --role admin)",
    )


__all__ = ["COOKIE", "attach", "render"]
