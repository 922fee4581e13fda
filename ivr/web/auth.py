"""Who may call the admin API: bearer tokens with a role each.

The tokens file holds one token a line, ``<role> <name> <token>``, with ``#``
comments; the roles, each allowed what the one below is::

    agent        read dial plans and versions, list and play prompts
    supervisor   also validate, diff and simulate a dial plan
    admin        also publish, roll back, upload and delete prompts

A request without a known token is answered 401, one whose role is too low
403. Tokens are compared in constant time, and a file anyone else may read is
refused rather than trusted.

Guessing is slowed down per client address (issue 8): after
``FailureLimiter.limit`` wrong tokens within ``window`` seconds, the address
gets 429 with ``Retry-After`` for ``block`` seconds, whatever it sends. The
address is the TCP peer's: behind a reverse proxy, that is the proxy, which
must then do its own limiting. Tokens are never logged.
"""

from __future__ import annotations

import collections
import enum
import hmac
import math
import os
import re
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ivr import log
from ivr.errors import ConfigError
from ivr.web.errors import ApiError

MIN_TOKEN_LENGTH = 24
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.~+/=-]+$")


class Role(enum.IntEnum):
    AGENT = 1
    SUPERVISOR = 2
    ADMIN = 3


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    # The extension an agent account works as (web sessions); None for tokens
    # and for supervisors and admins.
    agent: str | None = None


# aiohttp 3.14 warns about plain string request keys; before 3.14 (our floor is
# 3.9) there is no RequestKey, and a string is all there is.
IDENTITY = (
    web.RequestKey("identity", Identity) if hasattr(web, "RequestKey") else "identity"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenBook:
    def __init__(self, entries: Iterable[tuple[Role, str, str]]) -> None:
        self._entries = [
            (token.encode(), Identity(name, role)) for role, name, token in entries
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, token: str) -> Identity | None:
        offered = token.encode()
        found = None
        for known, identity in self._entries:
            # Compare with every entry: the time taken tells nothing.
            if hmac.compare_digest(known, offered):
                found = identity
        return found

    @classmethod
    def load(cls, path: Path) -> TokenBook:
        text = read_private_file(path, "admin tokens file")
        return cls(parse_tokens(text, str(path)))


def read_private_file(path: Path, what: str) -> str:
    """A secrets file's text; refused unless only its owner may read it."""
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what} {path} may be read by others: chmod 600 it")
    return text


def parse_tokens(text: str, where: str = "tokens") -> list[tuple[Role, str, str]]:
    entries = []
    names: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ConfigError(f"{where}:{number}: write '<role> <name> <token>'")
        role_word, name, token = parts
        try:
            role = Role[role_word.upper()]
        except KeyError:
            raise ConfigError(
                f"{where}:{number}: role {role_word!r} is not admin, supervisor "
                "or agent"
            ) from None
        if not _NAME.match(name) or name in names:
            raise ConfigError(f"{where}:{number}: name {name!r} is invalid or repeated")
        if len(token) < MIN_TOKEN_LENGTH or not _TOKEN.match(token):
            raise ConfigError(
                f"{where}:{number}: a token needs {MIN_TOKEN_LENGTH} or more "
                "characters (make one with: python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        names.add(name)
        entries.append((role, name, token))
    return entries


def requires(role: Role) -> Callable[[Handler], Handler]:
    """Mark a handler with the lowest role that may call it."""

    def mark(handler: Handler) -> Handler:
        handler.required_role = role  # type: ignore[attr-defined]
        return handler

    return mark


def public(handler: Handler) -> Handler:
    handler.required_role = None  # type: ignore[attr-defined]
    return handler


class FailureLimiter:
    """Failed token attempts per client address, and who is blocked for now."""

    # Addresses remembered at most: a flood of addresses cannot fill memory.
    MAX_ADDRESSES = 10_000

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        block: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0 or block <= 0:
            raise ValueError(
                f"failure limit {limit!r}, window {window!r} s and block {block!r} s "
                "must all be positive"
            )
        self.limit = limit
        self.window = window
        self.block = block
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )
        self._blocked: dict[str, float] = {}  # address -> until

    def retry_after(self, address: str) -> int | None:
        """Seconds the address must wait, or None if it may try."""
        until = self._blocked.get(address)
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            del self._blocked[address]
            return None
        return max(1, math.ceil(left))

    def failed(self, address: str) -> None:
        now = self._clock()
        times = self._failures.pop(address, None) or collections.deque()
        times.append(now)
        while times and now - times[0] > self.window:
            times.popleft()
        self._failures[address] = times
        while len(self._failures) > self.MAX_ADDRESSES:
            self._failures.popitem(last=False)
        if len(times) >= self.limit:
            self._blocked[address] = now + self.block
            times.clear()
            log.web.warning(
                "admin API: %d wrong tokens from %s within %.0f s; refusing that "
                "address for %.0f s (block it upstream if it goes on)",
                self.limit,
                address,
                self.window,
                self.block,
            )

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


def auth_middleware(book: TokenBook, limiter: FailureLimiter | None = None):
    limiter = limiter or FailureLimiter()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = request.match_info.handler
        # Unmarked handlers (aiohttp's own 404/405) need a token like any other.
        needed = getattr(route_handler, "required_role", Role.AGENT)
        if needed is None:
            return await handler(request)
        address = request.remote or "unknown"
        wait = limiter.retry_after(address)
        if wait is not None:
            raise ApiError(
                429,
                "too-many-attempts",
                f"too many wrong tokens from {address}; try again in {wait} s",
                {"retry_after": wait},
                headers={"Retry-After": str(wait)},
            )
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        identity = book.identify(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None and header:
            # Only a credential offered and refused counts: a request with
            # none (a browser's first visit) guesses nothing.
            limiter.failed(address)
        elif identity is not None:
            limiter.succeeded(address)
        if identity is None:
            raise ApiError(
                401,
                "unauthorized",
                "a valid bearer token is required",
                headers={"WWW-Authenticate": 'Bearer realm="yihaotong"'},
            )
        if identity.role < needed:
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {needed.name.lower()} role; "
                f"{identity.name} is {identity.role.name.lower()}",
                {"needed": needed.name.lower(), "role": identity.role.name.lower()},
            )
        request[IDENTITY] = identity
        return await handler(request)

    return check
