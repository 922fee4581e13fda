"""The work order (工单) after the call: its states, who may move it, deadlines.

Pure: no I/O, and the clock is always an argument. The ticket store loads a
:class:`WorkOrder`, asks :func:`apply` for the next one and writes it back in
one transaction, with the event this module returns in the ticket's timeline.

    (call) ─accept─► accepted ─answer (knowledge base)────────────► closed
                       │  ▲                                          ▲  │
                    dispatch│uphold_return                       close│  │follow_up
                       ▼  │                                          │  ▼
                    dispatched ─sign─► signed ─handle─► handled ─────┘  followed_up
                       │  ▲              │  ▲             │                 │
                  return│  │overrule  return│  │overrule  send_back→signed   reopen
                       ▼  │              ▼  │                          (score 3)
                       returned ◄────────┘  │                              │
                                                                 accepted ◄┘

The lead unit (主办) drives the ticket's state; co-units (协办) each have their
own assignment, deadline, signature and reply, and the lead replies only once
every co-unit has (协办单位先向主办单位反馈). Requests for an extension, returns
by a unit, reminders and supervision act on one assignment and are decided by
the hotline. A deadline is a local (Beijing) date: the unit has until the end of
that day. The day of dispatch is not counted, as in Chinese administrative
practice (期间开始之日不计算在内).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import chinese_calendar

# China has one time zone and no daylight saving time.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

MAX_TEXT = 2000
MAX_WORKING_DAYS = 60
REPEAT_WINDOW = timedelta(days=30)


class TransitionError(ValueError):
    """A refused move; ``code`` is stable for the API, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class Role(StrEnum):
    AGENT = "agent"  # hotline agent (话务员)
    SUPERVISOR = "supervisor"  # hotline supervisor (班长、审核)
    UNIT = "unit"  # a handling unit (承办单位)
    SYSTEM = "system"  # the automatic follow-up call


class State(StrEnum):
    ACCEPTED = "accepted"  # 受理
    DISPATCHED = "dispatched"  # 派单
    SIGNED = "signed"  # 签收
    RETURNED = "returned"  # the lead unit asked to give it back (退单待审)
    HANDLED = "handled"  # 办理 (the unit replied)
    CLOSED = "closed"  # 办结
    FOLLOWED_UP = "followed_up"  # 回访


class Step(StrEnum):
    """Where one unit's assignment stands."""

    DISPATCHED = "dispatched"
    SIGNED = "signed"
    RETURNED = "returned"
    HANDLED = "handled"
    WITHDRAWN = "withdrawn"  # return upheld, or the ticket went back to the hotline


ACTIVE_STEPS = (Step.DISPATCHED, Step.SIGNED, Step.RETURNED)

SURVEY_SCORES = {1: "satisfied", 2: "basically satisfied", 3: "not satisfied"}
SURVEY_SOURCES = ("in_call", "follow_up")

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,80}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_id(kind: str, value: object) -> str:
    """An id from configuration or from a request: lower-case letters, digits, _-."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise TransitionError(
            f"bad_{kind}", f"{kind} id must be 1-40 of a-z 0-9 _ -, got {value!r}"
        )
    return value


def check_text(name: str, value: object, *, required: bool = False) -> str:
    """Free text as the caller or a unit wrote it: kept verbatim, bounded."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise TransitionError("bad_text", f"{name} must be text")
    value = value.strip()
    if required and not value:
        raise TransitionError("missing_text", f"{name} is required")
    if len(value) > MAX_TEXT:
        raise TransitionError("bad_text", f"{name} is longer than {MAX_TEXT}")
    if _CONTROL.search(value):
        raise TransitionError("bad_text", f"{name} contains control characters")
    return value


# -- configuration: units, categories, areas ----------------------------------


@dataclass(frozen=True)
class Named:
    id: str
    name: str
    working_days: int | None = None  # categories: their usual time limit


@dataclass(frozen=True)
class Catalog:
    """Units that handle work orders, request categories and areas."""

    units: Mapping[str, Named]
    categories: Mapping[str, Named]
    areas: Mapping[str, Named]
    working_days: int = 5  # the time limit when a category has none

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Catalog:
        """Build from parsed YAML; ValueError names the entry at fault."""
        unknown = set(raw) - {"units", "categories", "areas", "working_days"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        days = raw.get("working_days", 5)
        if not isinstance(days, int) or not 1 <= days <= MAX_WORKING_DAYS:
            raise ValueError(f"working_days must be 1-{MAX_WORKING_DAYS}")
        return cls(
            units=_entries(raw, "units"),
            categories=_entries(raw, "categories"),
            areas=_entries(raw, "areas", required=False),
            working_days=days,
        )

    def unit(self, unit_id: object) -> Named:
        unit = self.units.get(unit_id) if isinstance(unit_id, str) else None
        if unit is None:
            raise TransitionError("unknown_unit", f"no unit {unit_id!r}")
        return unit

    def category(self, category_id: object) -> Named:
        found = (
            self.categories.get(category_id) if isinstance(category_id, str) else None
        )
        if found is None:
            raise TransitionError("unknown_category", f"no category {category_id!r}")
        return found

    def area(self, area_id: object) -> Named | None:
        if area_id in (None, ""):
            return None
        found = self.areas.get(area_id) if isinstance(area_id, str) else None
        if found is None:
            raise TransitionError("unknown_area", f"no area {area_id!r}")
        return found


_KINDS = {"units": "unit", "categories": "category", "areas": "area"}


def _entries(raw: Mapping, key: str, *, required: bool = True) -> dict[str, Named]:
    items = raw.get(key) or []
    if required and not items:
        raise ValueError(f"{key}: at least one entry is needed")
    result: dict[str, Named] = {}
    for index, item in enumerate(items, start=1):
        where = f"{key} entry {index}"
        if not isinstance(item, Mapping) or set(item) - {"id", "name", "working_days"}:
            raise ValueError(f"{where}: expected id, name (and working_days)")
        try:
            entry_id = check_id(_KINDS[key], item.get("id"))
        except TransitionError as exc:
            raise ValueError(f"{where}: {exc}") from None
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"{where}: name must be 1-80 printable characters")
        days = item.get("working_days")
        if days is not None and (
            not isinstance(days, int) or not 1 <= days <= MAX_WORKING_DAYS
        ):
            raise ValueError(f"{where}: working_days must be 1-{MAX_WORKING_DAYS}")
        if entry_id in result:
            raise ValueError(f"{where}: id {entry_id!r} appears twice")
        result[entry_id] = Named(entry_id, name, days)
    return result


# -- the working-day calendar -------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    day: date
    # True when some day counted lies beyond the calendar library's data (the
    # State Council publishes next year's holidays each autumn): the weekend
    # rule stood in for it, so the date may move once the library is updated.
    provisional: bool = False


class WorkCalendar:
    """Working days on the Chinese calendar, make-up working days (调休) included."""

    def __init__(self, is_workday: Callable[[date], bool] | None = None) -> None:
        self._is_workday = is_workday or chinese_calendar.is_workday

    def workday(self, day: date) -> tuple[bool, bool]:
        """(is a working day, known from the official calendar)."""
        try:
            return self._is_workday(day), True
        except NotImplementedError:
            return day.weekday() < 5, False

    def add_working_days(self, start: date, days: int) -> Deadline:
        """The Nth working day after ``start`` (``start`` itself is not counted)."""
        if not isinstance(days, int) or isinstance(days, bool):
            raise TransitionError("bad_deadline", "working_days must be a number")
        if not 1 <= days <= MAX_WORKING_DAYS:
            raise TransitionError(
                "bad_deadline", f"working_days must be 1-{MAX_WORKING_DAYS}"
            )
        day, counted, exact = start, 0, True
        while counted < days:
            day += timedelta(days=1)
            working, known = self.workday(day)
            exact = exact and known
            counted += working
        return Deadline(day, provisional=not exact)


def local_day(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError("times passed to the work order must be timezone-aware")
    return moment.astimezone(BEIJING).date()


# -- the work order -----------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    role: Role
    name: str
    unit: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "role", Role(self.role))
        except ValueError:
            raise TransitionError("bad_role", f"no role {self.role!r}") from None
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise TransitionError("bad_actor", "an actor needs a printable name")
        if self.role is Role.UNIT:
            check_id("unit", self.unit)
        elif self.unit is not None:
            raise TransitionError("bad_actor", f"a {self.role} acts for no unit")

    def label(self) -> str:
        return f"{self.role}:{self.name}" + (f"@{self.unit}" if self.unit else "")


@dataclass
class Assignment:
    n: int  # the ticket's assignments in order, from 1
    unit: str
    lead: bool
    step: Step
    deadline: date
    dispatched_at: datetime
    round: int = 1
    signed_at: datetime | None = None
    handled_at: datetime | None = None
    result: str = ""
    provisional: bool = False
    before_return: Step | None = None
    return_reason: str = ""
    extension_to: date | None = None  # a pending request
    extension_reason: str = ""
    extensions: int = 0
    reminders: int = 0

    @property
    def active(self) -> bool:
        return self.step in ACTIVE_STEPS

    def overdue(self, now: datetime) -> bool:
        return self.active and local_day(now) > self.deadline

    def on_time(self) -> bool | None:
        if self.handled_at is None:
            return None
        return local_day(self.handled_at) <= self.deadline


@dataclass
class WorkOrder:
    state: State | None = None  # None: a call not (yet) taken as a work order
    category: str | None = None
    assignments: list[Assignment] = field(default_factory=list)
    # A round is one dispatch and what follows it; an upheld return of the
    # lead unit or a reopen starts the next, and earlier rounds stay as history.
    round: int = 1
    supervised: bool = False
    reopens: int = 0
    last_follow_up: int | None = None

    def lead(self) -> Assignment | None:
        for assignment in self.current():
            if assignment.lead:
                return assignment
        return None

    def current(self) -> list[Assignment]:
        return [
            a
            for a in self.assignments
            if a.round == self.round and a.step is not Step.WITHDRAWN
        ]

    def next_round(self) -> None:
        for assignment in self.current():
            if assignment.active:
                assignment.step = Step.WITHDRAWN
                assignment.extension_to = None
        self.round += 1
        self.supervised = False

    def of_unit(self, unit: str) -> Assignment | None:
        for assignment in self.current():
            if assignment.unit == unit:
                return assignment
        return None

    def overdue(self, now: datetime) -> list[Assignment]:
        return [a for a in self.assignments if a.overdue(now)]


@dataclass(frozen=True)
class Change:
    order: WorkOrder
    action: str
    before: State | None
    after: State | None
    data: dict[str, Any]  # what the timeline keeps, beyond actor and states


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    states: frozenset[State | None]
    to: str  # for the table in the docs and the API's help


def _rule(roles: Iterable[Role], states: Iterable[State | None], to: str) -> Rule:
    return Rule(frozenset(roles), frozenset(states), to)


_HOTLINE = (Role.AGENT, Role.SUPERVISOR)
_S = State

RULES: dict[str, Rule] = {
    "accept": _rule(_HOTLINE, [None], "accepted"),
    "answer": _rule(_HOTLINE, [_S.ACCEPTED], "closed"),
    "dispatch": _rule(_HOTLINE, [_S.ACCEPTED], "dispatched"),
    "add_unit": _rule(_HOTLINE, [_S.DISPATCHED, _S.SIGNED], "unchanged"),
    "sign": _rule([Role.UNIT], [_S.DISPATCHED, _S.SIGNED], "signed (lead)"),
    "handle": _rule([Role.UNIT], [_S.SIGNED], "handled (lead)"),
    "request_extension": _rule(
        [Role.UNIT], [_S.DISPATCHED, _S.SIGNED, _S.RETURNED], "unchanged"
    ),
    "approve_extension": _rule(
        [Role.SUPERVISOR], [_S.DISPATCHED, _S.SIGNED, _S.RETURNED], "unchanged"
    ),
    "refuse_extension": _rule(
        [Role.SUPERVISOR], [_S.DISPATCHED, _S.SIGNED, _S.RETURNED], "unchanged"
    ),
    "return": _rule([Role.UNIT], [_S.DISPATCHED, _S.SIGNED], "returned (lead)"),
    "uphold_return": _rule(
        [Role.SUPERVISOR], [_S.DISPATCHED, _S.SIGNED, _S.RETURNED], "accepted (lead)"
    ),
    "overrule_return": _rule(
        [Role.SUPERVISOR], [_S.DISPATCHED, _S.SIGNED, _S.RETURNED], "as before"
    ),
    "remind": _rule(
        _HOTLINE, [_S.DISPATCHED, _S.SIGNED, _S.RETURNED], "unchanged (overdue)"
    ),
    "supervise": _rule(
        [Role.SUPERVISOR], [_S.DISPATCHED, _S.SIGNED, _S.RETURNED], "unchanged"
    ),
    "send_back": _rule(_HOTLINE, [_S.HANDLED], "signed"),
    "close": _rule(_HOTLINE, [_S.HANDLED], "closed"),
    "follow_up": _rule([*_HOTLINE, Role.SYSTEM], [_S.CLOSED], "followed_up"),
    "reopen": _rule([Role.SUPERVISOR, Role.SYSTEM], [_S.FOLLOWED_UP], "accepted"),
}

# What the agent records when taking a call as a work order.
INTAKE = ("category", "content", "address", "area", "enterprise", "enterprise_name")

# Parameters each action takes; anything else in a request is refused.
PARAMS: dict[str, frozenset[str]] = {
    "accept": frozenset(INTAKE),
    "answer": frozenset({"answer"}),
    "dispatch": frozenset({"lead", "co_units"}),
    "add_unit": frozenset({"unit", "working_days", "deadline"}),
    "sign": frozenset(),
    "handle": frozenset({"result"}),
    "request_extension": frozenset({"to", "working_days", "reason"}),
    "approve_extension": frozenset({"unit", "note"}),
    "refuse_extension": frozenset({"unit", "reason"}),
    "return": frozenset({"reason"}),
    "uphold_return": frozenset({"unit", "note"}),
    "overrule_return": frozenset({"unit", "note"}),
    "remind": frozenset({"unit", "note"}),
    "supervise": frozenset({"note"}),
    "send_back": frozenset({"reason"}),
    "close": frozenset({"note"}),
    "follow_up": frozenset({"score", "note"}),
    "reopen": frozenset({"reason"}),
}


@dataclass(frozen=True)
class Context:
    catalog: Catalog
    calendar: WorkCalendar
    now: datetime


def apply(
    order: WorkOrder,
    action: str,
    actor: Actor,
    now: datetime,
    *,
    catalog: Catalog,
    calendar: WorkCalendar | None = None,
    params: Mapping[str, Any] | None = None,
) -> Change:
    """Check and make one move; the order passed in is left as it was."""
    rule = RULES.get(action) if isinstance(action, str) else None
    if rule is None:
        raise TransitionError("unknown_action", f"no action {action!r}")
    params = dict(params or {})
    extra = set(params) - PARAMS[action]
    if extra:
        raise TransitionError(
            "bad_params", f"{action} takes no {', '.join(sorted(map(str, extra)))}"
        )
    if actor.role not in rule.roles:
        raise TransitionError(
            "forbidden", f"a {actor.role} may not {action.replace('_', ' ')}"
        )
    if actor.role is Role.UNIT:
        catalog.unit(actor.unit)
    if order.state not in rule.states:
        raise TransitionError(
            "wrong_state",
            f"cannot {action.replace('_', ' ')} a ticket that is "
            f"{order.state or 'not accepted'}",
        )
    local_day(now)

    new = copy.deepcopy(order)
    ctx = Context(catalog, calendar or WorkCalendar(), now)
    data = _ACTIONS[action](new, actor, ctx, params) or {}
    return Change(new, action, order.state, new.state, data)


# -- the moves ----------------------------------------------------------------


def _accept(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    enterprise = p.get("enterprise", False)
    if not isinstance(enterprise, bool):
        raise TransitionError("bad_params", "enterprise must be true or false")
    area = ctx.catalog.area(p.get("area"))
    intake = {
        "category": ctx.catalog.category(p.get("category")).id,
        "content": check_text("content", p.get("content"), required=True),
        "address": check_text("address", p.get("address")),
        "area": area.id if area else None,
        "enterprise": enterprise,
        "enterprise_name": check_text("enterprise_name", p.get("enterprise_name")),
    }
    order.state = State.ACCEPTED
    order.category = intake["category"]
    return intake


def _answer(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    answer = check_text("answer", p.get("answer"), required=True)
    order.state = State.CLOSED
    return {"answer": answer}


def _deadline(ctx: Context, spec: Mapping[str, Any], default_days: int) -> Deadline:
    """A deadline from ``working_days`` or an explicit ``deadline`` date."""
    if "working_days" in spec and "deadline" in spec:
        raise TransitionError(
            "bad_deadline", "give working_days or a deadline, not both"
        )
    today = local_day(ctx.now)
    if spec.get("deadline") is not None:
        day = parse_day(spec["deadline"], "deadline")
        if day < today:
            raise TransitionError(
                "deadline_past", f"deadline {day} is in the past (today is {today})"
            )
        return Deadline(day)
    return ctx.calendar.add_working_days(today, spec.get("working_days", default_days))


def parse_day(value: object, name: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise TransitionError("bad_date", f"{name} must be a date YYYY-MM-DD")


def _unit_spec(value: object, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"unit": value}
    if isinstance(value, Mapping) and not set(value) - {
        "unit",
        "working_days",
        "deadline",
    }:
        return dict(value)
    raise TransitionError(
        "bad_params", f"{what}: a unit id or {{unit, working_days | deadline}}"
    )


def _new_assignment(
    order: WorkOrder, ctx: Context, spec: dict, *, lead: bool, days: int
) -> Assignment:
    unit = ctx.catalog.unit(spec.get("unit")).id
    if order.of_unit(unit) is not None:
        raise TransitionError("duplicate_unit", f"unit {unit} already has this ticket")
    deadline = _deadline(ctx, spec, days)
    assignment = Assignment(
        n=len(order.assignments) + 1,
        unit=unit,
        lead=lead,
        step=Step.DISPATCHED,
        deadline=deadline.day,
        dispatched_at=ctx.now,
        round=order.round,
        provisional=deadline.provisional,
    )
    order.assignments.append(assignment)
    return assignment


def _describe(assignment: Assignment) -> dict[str, Any]:
    return {
        "unit": assignment.unit,
        "lead": assignment.lead,
        "deadline": assignment.deadline.isoformat(),
        **({"provisional": True} if assignment.provisional else {}),
    }


def _dispatch(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    if "lead" not in p:
        raise TransitionError("bad_params", "dispatch needs a lead unit")
    days = ctx.catalog.working_days
    if order.category in ctx.catalog.categories:
        days = ctx.catalog.categories[order.category].working_days or days
    co_units = p.get("co_units") or []
    if not isinstance(co_units, list):
        raise TransitionError("bad_params", "co_units must be a list")
    lead = _new_assignment(
        order, ctx, _unit_spec(p["lead"], "lead"), lead=True, days=days
    )
    others = [
        _new_assignment(order, ctx, _unit_spec(spec, "co_units"), lead=False, days=days)
        for spec in co_units
    ]
    order.state = State.DISPATCHED
    return {"units": [_describe(a) for a in (lead, *others)]}


def _add_unit(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    days = ctx.catalog.working_days
    assignment = _new_assignment(
        order, ctx, _unit_spec(p, "unit"), lead=False, days=days
    )
    return {"units": [_describe(assignment)]}


def _own(order: WorkOrder, actor: Actor, action: str) -> Assignment:
    assignment = order.of_unit(actor.unit or "")
    if assignment is None:
        raise TransitionError(
            "not_assigned", f"unit {actor.unit} has no part in this ticket"
        )
    return assignment


def _target(order: WorkOrder, p: dict, action: str) -> Assignment:
    """The assignment a hotline decision is about: named, or the only candidate."""
    unit = p.get("unit")
    if unit is None:
        lead = order.lead()
        if lead is None:
            raise TransitionError("bad_params", f"{action} needs a unit")
        return lead
    assignment = order.of_unit(check_id("unit", unit))
    if assignment is None:
        raise TransitionError("not_assigned", f"unit {unit} has no part in this ticket")
    return assignment


def _step_error(assignment: Assignment, action: str) -> TransitionError:
    return TransitionError(
        "wrong_state",
        f"cannot {action.replace('_', ' ')}: unit {assignment.unit}'s part is "
        f"{assignment.step}",
    )


def _sign(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    mine = _own(order, actor, "sign")
    if mine.step is not Step.DISPATCHED:
        raise _step_error(mine, "sign")
    mine.step, mine.signed_at = Step.SIGNED, ctx.now
    if mine.lead:
        order.state = State.SIGNED
    return {"unit": mine.unit, "lead": mine.lead}


def _handle(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    mine = _own(order, actor, "handle")
    result = check_text("result", p.get("result"), required=True)
    if mine.step is not Step.SIGNED:
        raise _step_error(mine, "handle")
    if mine.lead:
        waiting = [a.unit for a in order.current() if not a.lead and a.active]
        if waiting:
            raise TransitionError(
                "co_units_pending",
                f"co-units have not replied yet: {', '.join(waiting)}",
            )
        order.state = State.HANDLED
    mine.step, mine.handled_at, mine.result = Step.HANDLED, ctx.now, result
    return {
        "unit": mine.unit,
        "lead": mine.lead,
        "result": result,
        "on_time": mine.on_time(),
    }


def _request_extension(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    mine = _own(order, actor, "request an extension")
    reason = check_text("reason", p.get("reason"), required=True)
    if mine.step not in (Step.DISPATCHED, Step.SIGNED):
        raise _step_error(mine, "request_extension")
    if mine.extension_to is not None:
        raise TransitionError(
            "pending", f"an extension to {mine.extension_to} is already awaiting"
        )
    if local_day(ctx.now) > mine.deadline:
        raise TransitionError(
            "too_late", f"the deadline {mine.deadline} has passed: ask before it"
        )
    if "to" in p and "working_days" in p:
        raise TransitionError("bad_deadline", "give to or working_days, not both")
    if "to" in p:
        to = parse_day(p["to"], "to")
    else:
        to = ctx.calendar.add_working_days(
            mine.deadline, p.get("working_days", ctx.catalog.working_days)
        ).day
    if to <= mine.deadline:
        raise TransitionError(
            "bad_deadline", f"{to} is not later than the deadline {mine.deadline}"
        )
    mine.extension_to, mine.extension_reason = to, reason
    return {"unit": mine.unit, "to": to.isoformat(), "reason": reason}


def _pending_extension(order: WorkOrder, p: dict, action: str) -> Assignment:
    if p.get("unit") is None:
        pending = [a for a in order.current() if a.extension_to is not None]
        if len(pending) != 1:
            raise TransitionError(
                "bad_params" if pending else "nothing_pending",
                f"{action}: name the unit"
                if pending
                else "no extension request is awaiting a decision",
            )
        return pending[0]
    assignment = _target(order, p, action)
    if assignment.extension_to is None:
        raise TransitionError(
            "nothing_pending", f"unit {assignment.unit} asked for no extension"
        )
    return assignment


def _approve_extension(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    assignment = _pending_extension(order, p, "approve_extension")
    note = check_text("note", p.get("note"))
    before, assignment.deadline = assignment.deadline, assignment.extension_to
    assignment.extension_to, assignment.extension_reason = None, ""
    assignment.extensions += 1
    return {
        "unit": assignment.unit,
        "from": before.isoformat(),
        "to": assignment.deadline.isoformat(),
        "note": note,
    }


def _refuse_extension(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    assignment = _pending_extension(order, p, "refuse_extension")
    reason = check_text("reason", p.get("reason"), required=True)
    asked = assignment.extension_to
    assignment.extension_to, assignment.extension_reason = None, ""
    return {
        "unit": assignment.unit,
        "asked": asked.isoformat() if asked else None,
        "deadline": assignment.deadline.isoformat(),
        "reason": reason,
    }


def _return(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    mine = _own(order, actor, "return")
    reason = check_text("reason", p.get("reason"), required=True)
    if mine.step not in (Step.DISPATCHED, Step.SIGNED):
        raise _step_error(mine, "return")
    mine.before_return, mine.step, mine.return_reason = mine.step, Step.RETURNED, reason
    if mine.lead:
        order.state = State.RETURNED
    return {"unit": mine.unit, "lead": mine.lead, "reason": reason}


def _pending_return(order: WorkOrder, p: dict, action: str) -> Assignment:
    if p.get("unit") is None:
        pending = [a for a in order.current() if a.step is Step.RETURNED]
        if len(pending) != 1:
            raise TransitionError(
                "bad_params" if pending else "nothing_pending",
                f"{action}: name the unit" if pending else "no return is awaiting",
            )
        return pending[0]
    assignment = _target(order, p, action)
    if assignment.step is not Step.RETURNED:
        raise TransitionError(
            "nothing_pending", f"unit {assignment.unit} has not returned the ticket"
        )
    return assignment


def _uphold_return(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    assignment = _pending_return(order, p, "uphold_return")
    note = check_text("note", p.get("note"))
    withdrawn = [assignment]
    if assignment.lead:
        # A misdirected ticket goes back to the hotline whole, to be dispatched anew.
        withdrawn = [a for a in order.current() if a.active]
        order.next_round()
        order.state = State.ACCEPTED
    else:
        assignment.step, assignment.extension_to = Step.WITHDRAWN, None
    return {
        "unit": assignment.unit,
        "reason": assignment.return_reason,
        "withdrawn": [a.unit for a in withdrawn],
        "note": note,
    }


def _overrule_return(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    assignment = _pending_return(order, p, "overrule_return")
    note = check_text("note", p.get("note"), required=True)
    assignment.step = assignment.before_return or Step.DISPATCHED
    assignment.before_return = None
    if assignment.lead:
        order.state = (
            State.SIGNED if assignment.step is Step.SIGNED else State.DISPATCHED
        )
    return {"unit": assignment.unit, "back_to": str(assignment.step), "note": note}


def _remind(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    note = check_text("note", p.get("note"))
    if p.get("unit") is None:
        targets = order.overdue(ctx.now)
        if not targets:
            raise TransitionError("not_overdue", "no unit is past its deadline")
    else:
        target = _target(order, p, "remind")
        if not target.overdue(ctx.now):
            raise TransitionError(
                "not_overdue",
                f"unit {target.unit} is not past its deadline {target.deadline}",
            )
        targets = [target]
    for target in targets:
        target.reminders += 1
    return {"units": [a.unit for a in targets], "note": note}


def _supervise(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    note = check_text("note", p.get("note"), required=True)
    late = order.overdue(ctx.now)
    if not late:
        raise TransitionError("not_overdue", "no unit is past its deadline")
    order.supervised = True
    return {"units": [a.unit for a in late], "note": note}


def _send_back(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    reason = check_text("reason", p.get("reason"), required=True)
    lead = order.lead()
    assert lead is not None and lead.step is Step.HANDLED
    lead.step, lead.handled_at = Step.SIGNED, None
    order.state = State.SIGNED
    return {"unit": lead.unit, "reason": reason}


def _close(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    order.state = State.CLOSED
    return {"note": check_text("note", p.get("note"))}


def check_score(score: object) -> int:
    if isinstance(score, bool) or score not in SURVEY_SCORES:
        raise TransitionError(
            "bad_score",
            "score must be 1 (satisfied), 2 (basically satisfied) or 3 (not satisfied)",
        )
    return int(score)  # type: ignore[call-overload]


def check_source(source: object) -> str:
    if source not in SURVEY_SOURCES:
        raise TransitionError(
            "bad_source", f"source must be one of {', '.join(SURVEY_SOURCES)}"
        )
    return str(source)


def _follow_up(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    score = check_score(p.get("score"))
    order.state = State.FOLLOWED_UP
    order.last_follow_up = score
    return {
        "score": score,
        "meaning": SURVEY_SCORES[score],
        "note": check_text("note", p.get("note")),
    }


def _reopen(order: WorkOrder, actor: Actor, ctx: Context, p: dict) -> dict:
    reason = check_text("reason", p.get("reason"), required=True)
    if order.last_follow_up != 3:
        raise TransitionError(
            "not_unsatisfied",
            "only a follow-up that found the caller unsatisfied reopens a ticket",
        )
    order.next_round()
    order.state = State.ACCEPTED
    order.reopens += 1
    order.last_follow_up = None
    return {"reason": reason, "reopens": order.reopens}


_ACTIONS: dict[str, Callable[[WorkOrder, Actor, Context, dict], dict | None]] = {
    "accept": _accept,
    "answer": _answer,
    "dispatch": _dispatch,
    "add_unit": _add_unit,
    "sign": _sign,
    "handle": _handle,
    "request_extension": _request_extension,
    "approve_extension": _approve_extension,
    "refuse_extension": _refuse_extension,
    "return": _return,
    "uphold_return": _uphold_return,
    "overrule_return": _overrule_return,
    "remind": _remind,
    "supervise": _supervise,
    "send_back": _send_back,
    "close": _close,
    "follow_up": _follow_up,
    "reopen": _reopen,
}
assert set(_ACTIONS) == set(RULES) == set(PARAMS)
