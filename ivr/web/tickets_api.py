"""The tickets API: search, view, moves, surveys and exports of work orders.

``add_ticket_routes(app)`` adds the routes of ``TICKET_OPERATIONS`` to the
admin application (``ivr.web.app``) and keeps its error shape (``ApiError``,
``error_body``) and its token book. Callers' numbers are masked for roles
that may not see them (only supervisor and admin see them whole), and a unit
sees only the tickets it was given.

Units have no role in the admin token book, so the routes units use check
tokens themselves: a staff token from the admin book, or a unit token from
the units' own file (``UnitTokens``: ``<unit-id> <name> <token>`` a line).
Those routes are marked public for the admin middleware; the ones for the
hotline only (a caller's history, surveys) use its ``requires`` as usual.

A caller's number never goes in an address: addresses are written to access
logs, so a search by caller is a POST with the filters in a JSON body.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ivr import log
from ivr.errors import ConfigError
from ivr.ticket_search import TicketQuery, export, present, search, to_csv
from ivr.tickets import to_json_lines
from ivr.web.auth import (
    IDENTITY,
    MIN_TOKEN_LENGTH,
    Role,
    public,
    read_private_file,
    requires,
)
from ivr.web.errors import ApiError, error_body
from ivr.web.keys import TOKENS
from ivr.web.openapi import Operation
from ivr.workorders import TicketNotFound, TicketRefused, WorkOrders
from routing import workorder as wo

_NUMBER = re.compile(r"12345-\d{8}-\d{6}")
_TOKEN = re.compile(r"^[A-Za-z0-9_.~+/=-]+$")


@dataclass(frozen=True)
class Caller:
    """Who is calling: agent, supervisor or admin (staff), or a unit."""

    role: str
    name: str
    unit: str | None = None

    def actor(self) -> wo.Actor:
        if self.role == "admin":
            raise TicketRefused(
                "forbidden",
                "the admin role manages configuration; moves are made by agents, "
                "supervisors and units",
            )
        return wo.Actor(wo.Role(self.role), self.name, self.unit)


class UnitTokens:
    """Tokens of the handling units, one ``<unit-id> <name> <token>`` a line."""

    def __init__(self, entries: Iterable[tuple[str, str, str]]) -> None:
        self._entries = [
            (token.encode(), Caller("unit", name, unit))
            for unit, name, token in entries
        ]

    def identify(self, token: str) -> Caller | None:
        offered, found = token.encode(), None
        for known, caller in self._entries:
            # Compare with every entry: the time taken tells nothing.
            if hmac.compare_digest(known, offered):
                found = caller
        return found

    @classmethod
    def parse(cls, text: str, catalog: wo.Catalog, where: str = "unit tokens"):
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ConfigError(f"{where}:{number}: write '<unit-id> <name> <token>'")
            unit, name, token = parts
            if unit not in catalog.units:
                raise ConfigError(f"{where}:{number}: no unit {unit!r} in the catalog")
            if len(token) < MIN_TOKEN_LENGTH or not _TOKEN.match(token):
                raise ConfigError(
                    f"{where}:{number}: a token needs {MIN_TOKEN_LENGTH} or more "
                    "characters"
                )
            entries.append((unit, name, token))
        return cls(entries)

    @classmethod
    def load(cls, path: Path, catalog: wo.Catalog) -> UnitTokens:
        text = read_private_file(path, "unit tokens file")
        return cls.parse(text, catalog, str(path))


WORKORDERS = web.AppKey("workorders", WorkOrders)
UNIT_TOKENS = web.AppKey("unit_tokens", UnitTokens)


# -- errors: the admin API's shape, with our refusals' stable ids -------------------

# A request that cannot be right is 400, a caller who may not 403, a ticket
# not in a state for the move 409. Ids are the refusals' codes with dashes.
_STATUS = {
    "no_ticket": 404,
    "forbidden": 403,
    "not_assigned": 403,
    "wrong_state": 409,
    "pending": 409,
    "nothing_pending": 409,
    "co_units_pending": 409,
    "too_late": 409,
    "not_overdue": 409,
    "not_unsatisfied": 409,
    "duplicate_unit": 409,
    "already_surveyed": 409,
}


def api_error(exc: TicketRefused | TicketNotFound) -> ApiError:
    return ApiError(_STATUS.get(exc.code, 400), exc.code.replace("_", "-"), str(exc))


Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]


def _route(handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
    """Identify the caller and turn refusals into the one error shape."""

    async def route(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request, _who(request))
        except (TicketRefused, TicketNotFound) as exc:
            error = api_error(exc)
        except ApiError as exc:
            error = exc
        # Rendered here with the admin API's helper, so the shape is the same
        # with or without its error middleware in front.
        return web.json_response(
            error_body(error.status, error.error, str(error), error.details),
            status=error.status,
            headers=error.headers,
        )

    route.__name__ = handler.__name__.lstrip("_")
    route.__doc__ = handler.__doc__
    return route


def _who(request: web.Request) -> Caller:
    staff = request.get(IDENTITY)
    if staff is None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            book = request.app.get(TOKENS)
            staff = book.identify(token) if book is not None else None
            if staff is None:
                units = request.app.get(UNIT_TOKENS)
                unit = units.identify(token) if units is not None else None
                if unit is not None:
                    return unit
    if staff is None:
        raise ApiError(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="yihaotong"'},
        )
    return Caller(staff.role.name.lower(), staff.name)


# -- reading requests ---------------------------------------------------------------


def _query_params(request: web.Request) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in request.query.items():
        if name in params:
            raise TicketRefused("bad_query", f"{name}: given more than once")
        params[name] = value
    if "caller" in params:
        raise TicketRefused(
            "number_in_address",
            "a caller's number goes in the JSON body of a POST to /tickets/search "
            "or /tickets/export, not in the address: addresses are logged",
        )
    return params


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TicketRefused("bad_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise TicketRefused("bad_json", "the body must be a JSON object")
    return body


def _query(request: web.Request, caller: Caller, params: dict) -> TicketQuery:
    if caller.role == "unit":
        if params.get("unit") not in (None, "", caller.unit):
            raise TicketRefused("forbidden", "a unit sees only its own tickets")
        params["unit"] = caller.unit or ""
    return TicketQuery.from_params(params, request.app[WORKORDERS].catalog)


def _number(request: web.Request) -> str:
    number = request.match_info["number"]
    if not _NUMBER.fullmatch(number):
        raise TicketRefused("bad_query", "number: must be a ticket number")
    return number


async def _visible(request: web.Request, caller: Caller) -> dict[str, Any]:
    ticket = await request.app[WORKORDERS].view(_number(request))
    if caller.role == "unit" and not any(
        part["unit"] == caller.unit for part in ticket["assignments"]
    ):
        # As if it did not exist: a unit learns nothing of others' tickets.
        raise TicketNotFound(ticket["number"])
    return ticket


def _json(data: Any) -> web.Response:
    return web.json_response(data, dumps=lambda d: json.dumps(d, ensure_ascii=False))


# -- handlers -------------------------------------------------------------------------


async def _found(request: web.Request, caller: Caller, params: dict) -> web.Response:
    query = _query(request, caller, params)
    tickets = await search(request.app[WORKORDERS].store, query)
    return _json(
        {
            "tickets": [present(_brief(t), caller.role) for t in tickets],
            "limit": query.limit,
            "offset": query.offset,
        }
    )


async def _search(request: web.Request, caller: Caller) -> web.Response:
    """Search tickets by number, desk, state, category, unit, area and dates."""
    return await _found(request, caller, _query_params(request))


async def _search_body(request: web.Request, caller: Caller) -> web.Response:
    """Search with the filters in a JSON body; the only way to search by caller."""
    return await _found(request, caller, await _json_body(request))


async def _exported(request: web.Request, caller: Caller, params: dict):
    form = params.pop("format", "jsonl")
    if form not in ("jsonl", "csv"):
        raise TicketRefused("bad_query", "format: must be jsonl or csv")
    query = _query(request, caller, params)
    found = await export(request.app[WORKORDERS].store, query, timeline=form == "jsonl")
    shown = [present(t, caller.role) for t in found]
    if form == "csv":
        return web.Response(
            text=to_csv(shown),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="tickets.csv"'},
        )
    return web.Response(text=to_json_lines(shown), content_type="application/x-ndjson")


async def _export(request: web.Request, caller: Caller) -> web.Response:
    """Every matching ticket as JSON lines (with timelines) or CSV (format=csv)."""
    return await _exported(request, caller, _query_params(request))


async def _export_body(request: web.Request, caller: Caller) -> web.Response:
    """The export with the filters in a JSON body (for a search by caller)."""
    return await _exported(request, caller, await _json_body(request))


async def _overdue(request: web.Request, caller: Caller) -> web.Response:
    """Units' parts past their deadline and not yet handled."""
    parts = await request.app[WORKORDERS].overdue()
    if caller.role == "unit":
        parts = [p for p in parts if p["unit"] == caller.unit]
    return _json({"overdue": parts})


async def _catalog(request: web.Request, caller: Caller) -> web.Response:
    """Units, categories, areas, and the moves: who makes them, from which state."""
    catalog = request.app[WORKORDERS].catalog

    def listed(entries: Mapping[str, wo.Named]) -> list[dict[str, Any]]:
        return [e.__dict__ for e in entries.values()]

    return _json(
        {
            "units": listed(catalog.units),
            "categories": listed(catalog.categories),
            "areas": listed(catalog.areas),
            "working_days": catalog.working_days,
            "actions": {
                name: {
                    "roles": sorted(rule.roles),
                    "from": sorted(s.value if s else "none" for s in rule.states),
                    "to": rule.to,
                    "params": sorted(wo.PARAMS[name]),
                }
                for name, rule in wo.RULES.items()
            },
        }
    )


async def _view(request: web.Request, caller: Caller) -> web.Response:
    """One ticket with its timeline, its units' parts and its surveys."""
    return _json(present(await _visible(request, caller), caller.role))


async def _history(request: web.Request, caller: Caller) -> web.Response:
    """The other tickets of this ticket's caller in the last 30 days, newest first."""
    ticket = await _visible(request, caller)
    history = await request.app[WORKORDERS].store.caller_history(
        ticket["caller_number"], before=ticket["arrived_at"]
    )
    return _json(
        {
            "caller_number": present(ticket, caller.role)["caller_number"],
            "tickets": history,
        }
    )


async def _act(request: web.Request, caller: Caller) -> web.Response:
    """Make a move; the JSON body holds its parameters (see /tickets/catalog)."""
    actor = caller.actor()
    action = request.match_info["action"]
    if action not in wo.RULES:
        raise TicketRefused("unknown_action", f"no action {action!r}")
    if caller.role == "unit":
        await _visible(request, caller)
    params = await _json_body(request)
    ticket = await request.app[WORKORDERS].act(_number(request), action, actor, params)
    return _json(present(ticket, caller.role))


async def _survey(request: web.Request, caller: Caller) -> web.Response:
    """Record the caller's verdict: score 1-3, source in_call or follow_up."""
    actor = caller.actor()
    body = await _json_body(request)
    extra = set(body) - {"score", "source", "note"}
    if extra:
        raise TicketRefused("bad_params", f"survey takes no {', '.join(sorted(extra))}")
    note = body.get("note", "")
    if not isinstance(note, str):
        raise TicketRefused("bad_text", "note must be text")
    ticket = await request.app[WORKORDERS].record_survey(
        _number(request),
        body.get("score"),  # type: ignore[arg-type]
        body.get("source", "follow_up"),
        actor=actor,
        note=note,
    )
    return _json(present(ticket, caller.role))


_BRIEF = (
    "number",
    "arrived_at",
    "caller_number",
    "status",
    "outcome",
    "desk",
    "agent",
    "state",
    "category",
    "area",
    "enterprise",
    "content",
    "lead_unit",
    "deadline",
    "on_time",
    "supervised",
    "satisfaction",
    "repeat_of",
    "repeat_reason",
)


def _brief(ticket: dict[str, Any]) -> dict[str, Any]:
    return {name: ticket.get(name) for name in _BRIEF}


# Loose here (the router's patterns cannot hold braces); handlers check numbers.
NUMBER = "{number}"
# Routes units use check tokens themselves (public to the admin middleware);
# the hotline-only ones need a staff token as every admin route does.
_UNITS_TOO = public
_HOTLINE = requires(Role.AGENT)

TICKET_OPERATIONS = (
    Operation("GET", "/tickets", _UNITS_TOO(_route(_search)), "Search tickets"),
    Operation(
        "POST",
        "/tickets/search",
        _UNITS_TOO(_route(_search_body)),
        "Search tickets (filters in the body)",
        body="json",
    ),
    Operation("GET", "/tickets/export", _UNITS_TOO(_route(_export)), "Export tickets"),
    Operation(
        "POST",
        "/tickets/export",
        _UNITS_TOO(_route(_export_body)),
        "Export tickets (filters in the body)",
        body="json",
    ),
    Operation("GET", "/tickets/overdue", _UNITS_TOO(_route(_overdue)), "Overdue parts"),
    Operation("GET", "/tickets/catalog", _UNITS_TOO(_route(_catalog)), "The catalog"),
    Operation("GET", f"/tickets/{NUMBER}", _UNITS_TOO(_route(_view)), "One ticket"),
    Operation(
        "GET",
        f"/tickets/{NUMBER}/history",
        _HOTLINE(_route(_history)),
        "Caller history",
    ),
    Operation(
        "POST",
        f"/tickets/{NUMBER}/actions/{{action:[a-z_]+}}",
        _UNITS_TOO(_route(_act)),
        "Make a move",
        body="json",
    ),
    Operation(
        "POST",
        f"/tickets/{NUMBER}/survey",
        _HOTLINE(_route(_survey)),
        "Record a survey",
        body="json",
    ),
)


def add_ticket_routes(
    app: web.Application,
    workorders: WorkOrders | None = None,
    units: UnitTokens | None = None,
) -> None:
    """Add the ticket routes; the work orders and unit tokens go in app keys."""
    if workorders is not None:
        app[WORKORDERS] = workorders
    if units is not None:
        app[UNIT_TOKENS] = units
    for operation in TICKET_OPERATIONS:
        app.router.add_route(operation.method, operation.path, operation.handler)


# -- access log -----------------------------------------------------------------------

# 8 digits or more, not part of a ticket number (12345-20260302-000001).
_DIGIT_RUN = re.compile(r"(?<![\d-])\+?\d{8,}(?![\d-])")


def mask_text(text: str) -> str:
    """Mask every phone-number-like run of digits as callers' numbers are."""
    return _DIGIT_RUN.sub(lambda m: log.mask_number(m.group()), text)


class MaskedAccessLogger(AbstractAccessLogger):
    """One INFO line a request, with anything like a phone number masked.

    For ``web.AppRunner(app, access_log_class=MaskedAccessLogger, ...)``: a
    second guard after keeping numbers out of addresses.
    """

    def log(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> None:
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            mask_text(request.path_qs),
            response.status,
            time * 1000,
        )
