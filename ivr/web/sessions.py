"""Cookie sessions for the web pages, their CSRF tokens and the login limits.

A login makes a session: a random id in an HttpOnly, SameSite=Strict cookie
(Secure behind TLS), and a CSRF token the pages put in every form and send
as ``X-CSRF-Token`` with every request that changes something. Sessions live
in memory: a restart of the server logs everyone out, which is acceptable for
a hotline's few dozen desks and keeps no session secrets on disk.

The bearer-token middleware (:mod:`ivr.web.auth`) skips the handlers made
here (they are marked public for it); :func:`page` and :func:`session_api`
do the checking instead. :func:`session_api` wraps an admin API handler
as it is, so a page reaches the same code a token holder does, with the
session's name and role as the identity.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from aiohttp import web

from ivr.web.accounts import Account, UserBook
from ivr.web.auth import IDENTITY, Handler, Identity, Role, public
from ivr.web.errors import ApiError

COOKIE = "yht_session"
LOGIN_COOKIE = "yht_login"  # the login form's own CSRF token (double submit)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
IDLE_SECONDS = 2 * 3600
MAX_SECONDS = 12 * 3600
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Session:
    id: str
    account: Account
    csrf: str
    started: float
    seen: float

    def identity(self) -> Identity:
        return Identity(self.account.name, self.account.role, self.account.agent)


class SessionStore:
    """Sessions by id; expired ones are dropped when met or swept."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, account: Account) -> Session:
        now = self.clock()
        self.sweep()
        session = Session(
            secrets.token_urlsafe(32), account, secrets.token_urlsafe(32), now, now
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id or "")
        if session is None:
            return None
        now = self.clock()
        if _expired(session, now):
            del self._sessions[session.id]
            return None
        session.seen = now
        return session

    def end(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    def end_all_of(self, name: str) -> None:
        """Log ``name`` out everywhere (the account was changed or removed)."""
        for session in [s for s in self._sessions.values() if s.account.name == name]:
            del self._sessions[session.id]

    def sweep(self) -> None:
        now = self.clock()
        for session in list(self._sessions.values()):
            if _expired(session, now):
                del self._sessions[session.id]


def _expired(session: Session, now: float) -> bool:
    return now - session.seen > IDLE_SECONDS or now - session.started > MAX_SECONDS


# Addresses and names whose failures are kept at most (memory stays bounded
# however many names are tried).
MAX_TRACKED = 10_000


@dataclass
class LoginLimiter:
    """Failed logins per address and per user name in a sliding window.

    Past the limit a login is answered 429 without looking at the password,
    so guessing is slow for one address and for one account from many. A try
    counts as failed from the moment it is let in (:meth:`reserve`) until it
    succeeds, so guesses sent in parallel are counted before any is checked.
    """

    per_address: int = 10
    per_user: int = 5
    window: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque] = field(default_factory=dict)

    def retry_after(self, address: str, name: str) -> int:
        """Seconds to wait before trying again; 0 when a try is allowed."""
        waits = [
            self._wait(f"address:{address}", self.per_address),
            self._wait(f"user:{name.lower()}", self.per_user),
        ]
        return max(waits)

    def reserve(self, address: str, name: str) -> int:
        """Let a try in, counted as failed until :meth:`succeeded`; or the
        seconds to wait (nothing counted) when over the limit."""
        wait = self.retry_after(address, name)
        if not wait:
            self.failed(address, name)
        return wait

    def failed(self, address: str, name: str) -> None:
        if len(self._failures) >= MAX_TRACKED:
            self._sweep()
        now = self.clock()
        for key in (f"address:{address}", f"user:{name.lower()}"):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, address: str, name: str) -> None:
        """The try of :meth:`reserve` was right: it was no failure."""
        self._failures.pop(f"user:{name.lower()}", None)
        key = f"address:{address}"
        times = self._failures.get(key)
        if times:
            times.pop()
        if not times:
            self._failures.pop(key, None)

    def _sweep(self) -> None:
        """Forget expired windows; if names sprayed at random still fill the
        table, the oldest half (bounded memory beats a perfect count)."""
        for key in list(self._failures):
            self._wait(key, 1)
        if len(self._failures) >= MAX_TRACKED:
            by_age = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in by_age[: len(by_age) // 2]:
                del self._failures[key]

    def _wait(self, key: str, limit: int) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        now = self.clock()
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        if len(times) < limit:
            return 0
        return max(1, int(self.window - (now - times[0])) + 1)


USERS = web.AppKey("web_users", UserBook)
SESSIONS = web.AppKey("web_sessions", SessionStore)
LIMITER = web.AppKey("web_login_limiter", LoginLimiter)
SESSION = (
    web.RequestKey("web_session", Session) if hasattr(web, "RequestKey") else "session"
)


def current(request: web.Request) -> Session | None:
    """The request's live session; ended if its account was changed or removed."""
    store = request.app.get(SESSIONS)
    if store is None:
        return None
    session = store.get(request.cookies.get(COOKIE))
    users = request.app.get(USERS)
    if session is None or users is None:
        return session
    users.refresh()
    if users.account(session.account.name) != session.account:
        store.end_all_of(session.account.name)
        return None
    return session


def set_session_cookie(response: web.StreamResponse, request, session: Session):
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
        max_age=MAX_SECONDS,
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def csrf_ok(session: Session, offered: str | None) -> bool:
    return bool(offered) and hmac.compare_digest(
        session.csrf.encode(), str(offered).encode()
    )


def page(role: Role) -> Callable[[Handler], Handler]:
    """A page for ``role`` and above: to the login page without a session,
    a 403 page for a lower role. The handler reads ``request[SESSION]``."""

    def wrap(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            session = current(request)
            if session is None:
                target = quote(request.path_qs, safe="/?=&")
                raise web.HTTPFound(f"/login?next={target}")
            if session.account.role < role:
                from ivr.web.pages import forbidden

                return forbidden(request, session, role)
            if request.method in UNSAFE:
                form = await request.post()
                offered = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
                if not csrf_ok(session, offered):
                    return _csrf_refused()
            request[SESSION] = session
            request[IDENTITY] = session.identity()
            return await handler(request)

        checked.__name__ = handler.__name__
        checked.__doc__ = handler.__doc__
        return public(checked)

    return wrap


def session_api(handler: Handler, role: Role | None = None) -> Handler:
    """``handler`` (an admin API handler) for a logged-in page.

    Its own role mark applies unless ``role`` is given; a request that changes
    something needs the session's CSRF token in ``X-CSRF-Token``.
    """
    needed = role or getattr(handler, "required_role", None) or Role.AGENT

    async def checked(request: web.Request) -> web.StreamResponse:
        session = current(request)
        if session is None:
            raise ApiError(401, "unauthorized", "log in first: the session has ended")
        if session.account.role < needed:
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {needed.name.lower()} role; "
                f"{session.account.name} is {session.account.role_name}",
                {"needed": needed.name.lower(), "role": session.account.role_name},
            )
        if request.method in UNSAFE and not csrf_ok(
            session, request.headers.get(CSRF_HEADER)
        ):
            raise ApiError(
                403, "csrf", f"a request that changes something needs {CSRF_HEADER}"
            )
        request[SESSION] = session
        request[IDENTITY] = session.identity()
        return await handler(request)

    checked.__name__ = f"session_{handler.__name__}"
    return public(checked)


def _csrf_refused() -> web.Response:
    return web.Response(
        status=403,
        text="this form is out of date (CSRF token missing or wrong): reload the page",
        content_type="text/plain",
    )
