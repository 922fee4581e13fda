"""Finding tickets: a query that checks itself, and the CSV and JSON-lines exports.

Every search parameter has a shape (a ticket number, digits for a caller, an
id from the catalog, a date) and anything else is refused with the parameter
named, before any SQL is built. Values are always bound, never spliced in.
Dates are Beijing calendar days; times in the store are UTC.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any

from ivr import log
from ivr.tickets import JSON_COLUMNS, TicketStore
from ivr.workorders import TicketRefused, iso
from routing import workorder as wo

MAX_LIMIT = 1000
_NUMBER = re.compile(r"12345-\d{8}(-\d{1,6})?")
_CALLER = re.compile(r"\+?\d{3,20}")
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

# Roles that see a caller's number whole; everyone else sees 138****0000.
SEES_NUMBERS = frozenset({"supervisor", "admin"})

CSV_COLUMNS = (
    "number",
    "arrived_at",
    "caller_number",
    "caller_name",
    "status",
    "outcome",
    "desk",
    "queue_wait",
    "talk_time",
    "agent",
    "state",
    "category",
    "area",
    "enterprise",
    "enterprise_name",
    "address",
    "content",
    "answer",
    "accepted_at",
    "lead_unit",
    "deadline",
    "dispatched_at",
    "handled_at",
    "on_time",
    "closed_at",
    "followed_up_at",
    "supervised",
    "reopens",
    "satisfaction",
    "repeat_of",
    "repeat_reason",
)


def refuse(name: str, message: str) -> TicketRefused:
    return TicketRefused("bad_query", f"{name}: {message}")


@dataclass(frozen=True)
class TicketQuery:
    number: str | None = None
    caller: str | None = None
    desk: str | None = None
    status: str | None = None
    state: str | None = None  # a work-order state, or "none" for calls only
    category: str | None = None
    unit: str | None = None
    area: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    repeat: bool | None = None
    enterprise: bool | None = None
    limit: int = 100
    offset: int = 0
    newest_first: bool = True

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], catalog: wo.Catalog | None = None
    ) -> TicketQuery:
        """From request or command-line parameters (strings); refuse what is off."""
        names = {f.name for f in fields(cls)} | {"from", "to", "order"}
        unknown = sorted(set(params) - names - {"date_from", "date_to"})
        if unknown:
            raise refuse(unknown[0], "no such search parameter")
        values: dict[str, Any] = {}
        for name, raw in params.items():
            if raw is None or raw == "":
                continue
            if isinstance(raw, bool):
                raw = str(raw).lower()
            if not isinstance(raw, str | int):
                raise refuse(name, "must be text")
            values[name] = raw
        query = {}
        if "number" in values:
            query["number"] = _match(values, "number", _NUMBER, "a ticket number")
        if "caller" in values:
            query["caller"] = _match(values, "caller", _CALLER, "digits")
        if "desk" in values:
            query["desk"] = _id(values, "desk")
        if "status" in values:
            query["status"] = _choice(values, "status", ("open", "closed"))
        if "state" in values:
            query["state"] = _choice(
                values, "state", (*(s.value for s in wo.State), "none")
            )
        for name, table in (("category", "categories"), ("unit", "units")):
            if name in values:
                query[name] = _id(values, name)
                if catalog is not None and query[name] not in getattr(catalog, table):
                    raise refuse(name, f"no {name} {query[name]!r}")
        if "area" in values:
            query["area"] = _id(values, "area")
            if catalog is not None and query["area"] not in catalog.areas:
                raise refuse("area", f"no area {query['area']!r}")
        for name, key in (("from", "date_from"), ("to", "date_to")):
            raw = values.get(name, values.get(key))
            if raw is not None:
                query[key] = _date(name, raw)
        for name in ("repeat", "enterprise"):
            if name in values:
                text = str(values[name]).lower()
                if text not in _BOOL:
                    raise refuse(name, "must be true or false")
                query[name] = _BOOL[text]
        query["limit"] = _int(values, "limit", 1, MAX_LIMIT, 100)
        query["offset"] = _int(values, "offset", 0, 1_000_000, 0)
        if "order" in values:
            order = _choice(values, "order", ("newest", "oldest"))
            query["newest_first"] = order == "newest"
        result = cls(**query)
        if result.date_from and result.date_to and result.date_from > result.date_to:
            raise refuse("from", f"{result.date_from} is after to {result.date_to}")
        return result

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []

        def add(clause: str, *values: Any) -> None:
            clauses.append(clause)
            args.extend(values)

        if self.number:
            if len(self.number) == len("12345-20260101-000001"):
                add("number = ?", self.number)
            else:
                add("number LIKE ?", self.number + "%")
        if self.caller:
            add("caller_number = ?", self.caller)
        if self.desk:
            add("desk = ?", self.desk)
        if self.status:
            add("status = ?", self.status)
        if self.state == "none":
            add("state IS NULL")
        elif self.state:
            add("state = ?", self.state)
        if self.category:
            add("category = ?", self.category)
        if self.area:
            add("area = ?", self.area)
        if self.unit:
            add(
                "EXISTS (SELECT 1 FROM assignments a WHERE a.ticket_id = tickets.id "
                "AND a.unit = ?)",
                self.unit,
            )
        if self.date_from:
            add("arrived_at >= ?", day_start(self.date_from))
        if self.date_to:
            add("arrived_at < ?", day_start(self.date_to + timedelta(days=1)))
        if self.repeat is not None:
            add("repeat_of IS NOT NULL" if self.repeat else "repeat_of IS NULL")
        if self.enterprise is not None:
            add("enterprise = ?", int(self.enterprise))
        return " AND ".join(clauses) or "1 = 1", args


def day_start(day: date) -> str:
    """The UTC time at which a Beijing calendar day begins, as stored."""
    return iso(datetime.combine(day, time(0), wo.BEIJING))


def _match(values: Mapping, name: str, pattern: re.Pattern, what: str) -> str:
    text = str(values[name]).strip()
    if not pattern.fullmatch(text):
        raise refuse(name, f"must be {what}")
    return text


def _id(values: Mapping, name: str) -> str:
    try:
        return wo.check_id(name, values[name])
    except wo.TransitionError as exc:
        raise refuse(name, str(exc)) from None


def _choice(values: Mapping, name: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if values[name] not in choices:
        raise refuse(name, f"must be one of {', '.join(choices)}")
    return values[name]


def _date(name: str, raw: Any) -> date:
    try:
        return wo.parse_day(raw, name)
    except wo.TransitionError:
        raise refuse(name, "must be a date YYYY-MM-DD") from None


def _int(values: Mapping, name: str, low: int, high: int, default: int) -> int:
    raw = values.get(name)
    if raw is None:
        return default
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
        number = int(raw)
    else:
        raise refuse(name, f"must be a whole number {low}-{high}")
    if not low <= number <= high:
        raise refuse(name, f"must be a whole number {low}-{high}")
    return number


async def search(store: TicketStore, query: TicketQuery) -> list[dict[str, Any]]:
    where, args = query.where()
    order = "DESC" if query.newest_first else "ASC"
    rows = await store.fetchall(
        f"SELECT * FROM tickets WHERE {where} ORDER BY arrived_at {order}, id {order} "
        "LIMIT ? OFFSET ?",
        (*args, query.limit, query.offset),
    )
    for row in rows:
        for column in JSON_COLUMNS:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return rows


async def count(store: TicketStore, query: TicketQuery) -> int:
    where, args = query.where()
    rows = await store.fetchall(
        f"SELECT COUNT(*) AS n FROM tickets WHERE {where}", args
    )
    return rows[0]["n"]


async def export(
    store: TicketStore, query: TicketQuery, *, timeline: bool = False
) -> list[dict[str, Any]]:
    """Every ticket the query matches, oldest first, page by page."""
    query = TicketQuery(
        **{**query.__dict__, "limit": MAX_LIMIT, "offset": 0, "newest_first": False}
    )
    found: list[dict[str, Any]] = []
    while True:
        page = await search(store, query)
        if timeline:
            for ticket in page:
                full = await store.get(ticket["number"])
                ticket["timeline"] = full["timeline"] if full else []
        found.extend(page)
        if len(page) < query.limit:
            return found
        query = TicketQuery(**{**query.__dict__, "offset": query.offset + query.limit})


# -- what a reader may see ------------------------------------------------------


def present(ticket: dict[str, Any], role: str) -> dict[str, Any]:
    """The ticket as ``role`` may see it: callers' numbers masked unless allowed."""
    if role in SEES_NUMBERS:
        return ticket
    shown = dict(ticket)
    if "caller_number" in shown:
        shown["caller_number"] = log.mask_number(shown["caller_number"])
    return shown


def to_csv(tickets: Iterable[dict[str, Any]]) -> str:
    """One row a ticket, the columns of ``CSV_COLUMNS``; formulas neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for ticket in tickets:
        writer.writerow([_cell(ticket.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    # A spreadsheet runs a cell that starts like a formula; callers' words and
    # units' replies end up here, so such text is prefixed to stay text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
