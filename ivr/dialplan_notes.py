"""Things worth an admin's attention in a valid dial plan: not errors, notes.

Prompts with only a spoken placeholder, a notice that has expired, desks whose
hours depend on a year the packaged holiday calendar does not know yet.
``hotline check-dialplan`` prints them and the admin API returns them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from routing.dialplan import DialPlan, missing_recordings
from routing.hours import beijing, calendar_covers

# Warn this long before the calendar runs out (it is updated each December).
CALENDAR_MARGIN = timedelta(days=31)


def placeholders(plan: DialPlan, recorded: Iterable[tuple[str, str]]) -> list[str]:
    """``lang/name`` of every prompt the plan needs that nobody has recorded."""
    return [f"{lang}/{name}" for lang, name in missing_recordings(plan, recorded)]


def plan_notes(
    plan: DialPlan, recorded: Iterable[tuple[str, str]], now: datetime
) -> list[str]:
    notes = []
    missing = placeholders(plan, recorded)
    if missing:
        notes.append(
            f"{len(missing)} prompt(s) have only a spoken placeholder, no recording: "
            + ", ".join(missing)
        )
    local = beijing(now)
    if plan.notice is not None and plan.notice.until <= local:
        notes.append(
            f"the notice ({plan.notice.prompt}) expired at "
            f"{beijing(plan.notice.until):%Y-%m-%d %H:%M}: it is no longer played"
        )
    timed = sorted(name for name, desk in plan.desks.items() if not desk.always_open)
    if timed:
        horizon = (local + CALENDAR_MARGIN).date()
        for day in (local.date(), horizon):
            if not calendar_covers(day):
                notes.append(
                    f"the holiday calendar has no data for {day.year}: desks "
                    f"{', '.join(timed)} will count Monday to Friday as working "
                    "days then; upgrade it (pip install -U chinese-calendar)"
                )
                break
    return notes
