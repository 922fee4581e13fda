"""Satisfaction surveys and follow-up calls: the decisions, no I/O.

The caller rates with one key: 1 satisfied, 2 basically satisfied, 3 not
satisfied. Anything else, or nothing, is "no answer" and never a score.

A closed ticket gets a follow-up call after ``delay`` seconds, only within the
allowed hours (Beijing time, every day). A call that is not answered, or
busy, is tried again ``retry_after`` seconds later, at most ``attempts`` calls
in all; then the caller is recorded as unreachable. A caller who answers the
follow-up but gives no score is not called again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from routing.hours import BEIJING, parse_range

SCORES = {"1": 1, "2": 2, "3": 3}

# How a follow-up call went, as the server saw it.
RATED = "rated"  # answered and a key 1-3 pressed
NO_SCORE = "no_score"  # answered, then a wrong key, silence or a hang-up
NO_ANSWER = "no_answer"  # rang out, or the phone refused the call
BUSY = "busy"
FAILED = "failed"  # the call could not be placed at all
RESULTS = (RATED, NO_SCORE, NO_ANSWER, BUSY, FAILED)

# Asterisk's OriginateResponse Reason: the last state the channel reached.
_ORIGINATE_REASONS = {"5": BUSY, "3": NO_ANSWER, "1": NO_ANSWER}
# Q.850 hangup causes of the called channel, when the Reason says nothing
# (a phone that refuses at once with 486 gives Reason 0 on PJSIP).
_CAUSES = {"17": BUSY, "18": NO_ANSWER, "19": NO_ANSWER, "21": NO_ANSWER}


class Next(StrEnum):
    DONE = "done"  # rated: nothing more to do
    NO_SCORE = "no_score"  # answered without a score: not called again
    RETRY = "retry"
    UNREACHABLE = "unreachable"


def score_of(key: str | None) -> int | None:
    """The score a key gives, or None (a wrong key, or none) for "no answer"."""
    return SCORES.get((key or "").strip())


def originate_result(ok: bool, reason: str, cause: str = "") -> str:
    """What a refused or failed Originate means for the follow-up.

    ``reason`` is the OriginateResponse's, ``cause`` the called channel's
    hangup cause if it was seen.
    """
    if ok:
        return RATED  # answered; the key decides between RATED and NO_SCORE
    found = _ORIGINATE_REASONS.get(reason.strip())
    return found or _CAUSES.get(cause.strip(), FAILED)


@dataclass(frozen=True)
class FollowUpPolicy:
    """``[followup]`` in the server's configuration, checked when built."""

    enabled: bool = True
    delay: float = 3600.0  # seconds from closing to the first call
    hours: tuple[str, ...] = ("09:00-12:00", "14:00-20:00")
    attempts: int = 3
    retry_after: float = 1800.0
    ring_seconds: int = 30

    def __post_init__(self) -> None:
        if not self.hours:
            raise ValueError("[followup] hours: give at least one range")
        for text in self.hours:
            try:
                parse_range(text)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"[followup] hours: {exc}") from None
        if not isinstance(self.attempts, int) or not 1 <= self.attempts <= 10:
            raise ValueError(f"[followup] attempts = {self.attempts!r}: use 1 to 10")
        for name in ("delay", "retry_after"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 30 * 86400:
                raise ValueError(f"[followup] {name} = {value!r}: 0 to 2592000 s")
        if not isinstance(self.ring_seconds, int) or not 5 <= self.ring_seconds <= 120:
            raise ValueError(
                f"[followup] ring_seconds = {self.ring_seconds!r}: use 5 to 120"
            )


def allowed_at(policy: FollowUpPolicy, moment: datetime) -> datetime:
    """The first moment at or after ``moment`` within the allowed hours."""
    local = moment.astimezone(BEIJING)
    ranges = sorted(parse_range(text) for text in policy.hours)
    for day in range(2):
        midnight = (local + timedelta(days=day)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        for start, end in ranges:
            opens = midnight + timedelta(minutes=start)
            closes = midnight + timedelta(minutes=end)
            if local < closes:
                return max(local, opens).astimezone(moment.tzinfo)
    raise AssertionError("a day always has an allowed range")  # pragma: no cover


def first_call_at(policy: FollowUpPolicy, closed_at: datetime) -> datetime:
    return allowed_at(policy, closed_at + timedelta(seconds=policy.delay))


def after_attempt(
    policy: FollowUpPolicy, attempts: int, result: str, now: datetime
) -> tuple[Next, datetime | None]:
    """What to do after ``attempts`` calls, the last of which gave ``result``.

    Returns the next step and, for a retry, when to call again.
    """
    if result not in RESULTS:
        raise ValueError(f"follow-up result {result!r}: one of {', '.join(RESULTS)}")
    if result == RATED:
        return Next.DONE, None
    if result == NO_SCORE:
        return Next.NO_SCORE, None
    if attempts >= policy.attempts:
        return Next.UNREACHABLE, None
    return Next.RETRY, allowed_at(policy, now + timedelta(seconds=policy.retry_after))
