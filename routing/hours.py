"""When a desk answers: opening hours on China's official working calendar.

A desk with neither ``hours`` nor ``days`` is open 7x24. ``days: workdays``
follows the State Council's calendar as packaged by ``chinese-calendar``:
Monday to Friday, minus statutory holidays, plus the make-up working days
(调休上班). A list of weekdays (``[mon, tue, ..., sat]``) opens on those days
except statutory days off; ``every_day`` opens on every date.

Times are Beijing time (UTC+8, no daylight saving): an aware ``now`` is
converted, a naive one is taken as Beijing time already. Pure: the calendar is
data shipped inside the library, and the caller passes the time in.

The library only knows the years the State Council has announced (it is
updated each December). For a later year, :func:`day_on_calendar` falls back to
plain weekdays and says so (``known=False``); ``hotline check-dialplan`` warns
before that happens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import chinese_calendar

BEIJING = timezone(timedelta(hours=8), "CST")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WORKDAYS = "workdays"
EVERY_DAY = "every_day"
ALL_DAY = "00:00-24:00"

TIME_RANGE_PATTERN = (
    r"^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
)
_RANGE = re.compile(TIME_RANGE_PATTERN)

Days = str | Sequence[str]  # "workdays", "every_day" or weekday names


def parse_range(text: str) -> tuple[int, int]:
    """``"08:30-17:30"`` -> minutes from midnight (510, 1050); ValueError if bad."""
    if not _RANGE.match(text):
        raise ValueError(f"{text!r} is not a time range such as 08:30-17:30")
    start, end = (_minutes(part) for part in text.split("-"))
    if start >= end:
        raise ValueError(
            f"{text!r} ends before it starts: a range cannot cross midnight, "
            'write two ranges instead ("22:00-24:00" and "00:00-06:00")'
        )
    return start, end


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def beijing(now: datetime) -> datetime:
    """``now`` on the Beijing wall clock, aware (a naive value already is)."""
    if now.tzinfo is None:
        return now.replace(tzinfo=BEIJING)
    return now.astimezone(BEIJING)


@dataclass(frozen=True)
class CalendarDay:
    """What the official calendar says about one date."""

    day: date
    workday: bool
    holiday: str | None = None  # the statutory holiday of a day off, if any
    make_up: bool = False  # a weekend day worked in exchange for a holiday
    known: bool = True  # False: no data for this year, plain weekdays assumed


def day_on_calendar(day: date) -> CalendarDay:
    try:
        workday = chinese_calendar.is_workday(day)
        off, holiday = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return CalendarDay(day, day.weekday() < 5, known=False)
    return CalendarDay(
        day,
        workday,
        holiday=holiday if off else None,
        make_up=workday and day.weekday() >= 5,
    )


def calendar_covers(day: date) -> bool:
    """Whether the packaged calendar has the official data for ``day``'s year."""
    return day_on_calendar(day).known


@dataclass(frozen=True)
class Opening:
    """Whether a desk answers at a moment, and why (for the ticket's reason)."""

    open: bool
    why: str
    calendar_known: bool = True


ALWAYS = Opening(True, "open 7x24")


def opening(hours: Sequence[str] | None, days: Days | None, now: datetime) -> Opening:
    """Whether a desk with ``hours`` on ``days`` is open at ``now``."""
    if hours is None and days is None:
        return ALWAYS
    local = beijing(now)
    calendar = day_on_calendar(local.date())
    day_open, day_why = _day_open(days or WORKDAYS, calendar)
    note = "" if calendar.known else f" (no official calendar for {local.year})"
    if not day_open:
        return Opening(False, f"closed on {day_why}{note}", calendar.known)
    minute = local.hour * 60 + local.minute
    ranges = list(hours or [ALL_DAY])
    for text in ranges:
        start, end = parse_range(text)
        if start <= minute < end:
            return Opening(True, f"open {text} on {day_why}{note}", calendar.known)
    shown = ", ".join(ranges)
    return Opening(
        False, f"closed at {local:%H:%M} (hours {shown}){note}", calendar.known
    )


def _day_open(days: Days, calendar: CalendarDay) -> tuple[bool, str]:
    weekday = WEEKDAYS[calendar.day.weekday()]
    if days == EVERY_DAY:
        return True, weekday
    if days == WORKDAYS:
        if calendar.holiday:
            return False, f"{calendar.holiday} (statutory holiday)"
        if calendar.make_up:
            return True, f"{weekday}, a make-up working day"
        if not calendar.workday:
            return False, f"{weekday} (rest day)"
        return True, weekday
    if calendar.holiday:
        return False, f"{calendar.holiday} (statutory holiday)"
    return weekday in days, weekday
