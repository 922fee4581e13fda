"""What the server knows about a caller before the menu: :class:`CallerFacts`.

The server computes the facts (the caller's number against the plan's
registered enterprises, the caller's recent tickets) and hands them to the
menu walk, which never looks a number up itself. Pure: tickets come in as
(arrival time, desk) pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from routing.dialplan_model import NAME_PATTERN, DialPlan
from routing.hours import beijing

_NAME = re.compile(NAME_PATTERN)
_NOT_DIGIT = re.compile(r"[^0-9]")


@dataclass(frozen=True)
class CallerFacts:
    """Facts about one caller, decided before the call meets a menu.

    ``recent_desk`` is the desk of the caller's latest ticket within the
    plan's ``returning_callers.days``, or None.
    """

    is_enterprise: bool = False
    recent_desk: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.is_enterprise, bool):
            shown = repr(self.is_enterprise)
            raise TypeError(f"is_enterprise must be True or False, not {shown}")
        if self.recent_desk is not None and not (
            isinstance(self.recent_desk, str) and _NAME.match(self.recent_desk)
        ):
            raise ValueError(f"recent_desk {self.recent_desk!r} is not a desk name")


UNKNOWN = CallerFacts()


def normalise_number(number: str) -> str:
    """Digits only, in China's national form: +86 138... and 0086 138... -> 138...

    A landline keeps (or regains) the 0 of its area code: +86 10 6512 3456 and
    010-6512-3456 both become 01065123456, so a number matches however the
    plan or the trunk's caller ID writes it.
    """
    text = number.strip()
    digits = _NOT_DIGIT.sub("", text)
    national = None
    if text.startswith("+86"):
        national = digits[2:]
    elif digits.startswith("0086"):
        national = digits[4:]
    elif len(digits) == 13 and digits.startswith("861"):
        national = digits[2:]  # a mobile number with the code but no "+"
    if national is None:
        return digits
    if len(national) == 11 and national.startswith("1"):
        return national  # a mobile number
    return national if national.startswith("0") else "0" + national


def facts_for(
    plan: DialPlan,
    number: str,
    tickets: Iterable[tuple[datetime, str | None]],
    now: datetime,
) -> CallerFacts:
    """The facts of a caller with ``number`` whose past tickets are ``tickets``.

    ``tickets`` are (arrival time, desk) pairs of that caller's earlier calls;
    only a ticket within ``returning_callers.days`` of ``now`` and with a desk
    the plan still has counts.
    """
    is_enterprise = False
    if plan.enterprises is not None and number:
        registered = {normalise_number(n) for n in plan.enterprises.numbers}
        is_enterprise = normalise_number(number) in registered
    recent = None
    if plan.returning_callers is not None:
        since = beijing(now) - timedelta(days=plan.returning_callers.days)
        latest = None
        for arrived, desk in tickets:
            if not desk or desk not in plan.desks:
                continue
            arrived = beijing(arrived)
            if arrived >= since and (latest is None or arrived > latest[0]):
                latest = (arrived, desk)
        recent = latest[1] if latest else None
    return CallerFacts(is_enterprise=is_enterprise, recent_desk=recent)
