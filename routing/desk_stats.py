"""Live statistics of each desk: pure arithmetic over what calls did.

GB/T 33358-2016 (government service hotlines) asks that calls be answered by
a person within 15 seconds and that at least 95% of calls are connected over
24 hours. Per desk, over a rolling 24-hour window of calls that joined its
queue (a call counts for the desk it first queued at, even if it overflowed):

    answered_15s_rate   answered within 15 s / calls decided, plus callers
                        still waiting beyond 15 s (they already missed it)
    abandon_rate        hung up while waiting / calls decided
    connected_24h_rate  answered / calls decided

A call is decided once answered, abandoned, turned into a callback request
or lost to the system. Rates are None until a desk has a decided call. Live
figures (callers waiting, longest wait) count the queue a caller is in now.
Times are epoch seconds, passed in: nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

WINDOW = 24 * 3600.0
ANSWER_TARGET = 15.0  # seconds
CONNECTED_TARGET = 0.95

OUTCOMES = ("answered", "abandoned", "callback", "lost")


@dataclass
class Offered:
    key: str  # the call's linkedid
    desk: str  # where it first queued
    queued_at: float
    queue: str = ""  # where it waits now
    outcome: str | None = None  # one of OUTCOMES once decided
    waited: float | None = None  # seconds until answered or given up


class DeskStats:
    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self.calls: dict[str, Offered] = {}

    # -- what happens to calls -------------------------------------------------

    def queued(self, key: str, desk: str, queue: str, at: float) -> None:
        """A caller joined ``queue`` (again, after an overflow: only moves it)."""
        call = self.calls.get(key)
        if call is None:
            self.calls[key] = Offered(key, desk, at, queue)
        elif call.outcome is None:
            call.queue = queue

    def decided(self, key: str, outcome: str, at: float) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        call = self.calls.get(key)
        if call is None or call.outcome is not None:
            return
        call.outcome = outcome
        call.waited = max(0.0, at - call.queued_at)

    def still_waiting(self, keys: Iterable[str], at: float) -> None:
        """After a reconnect: callers not in ``keys`` are no longer waiting."""
        alive = set(keys)
        for call in self.calls.values():
            if call.outcome is None and call.key not in alive:
                self.decided(call.key, "lost", at)

    def load(self, call: Offered) -> None:
        """A call from the record (tickets of the last 24 h) at start-up."""
        self.calls.setdefault(call.key, call)

    def expire(self, now: float) -> None:
        old = [
            key
            for key, call in self.calls.items()
            if call.outcome is not None and call.queued_at < now - self.window
        ]
        for key in old:
            del self.calls[key]

    # -- figures ---------------------------------------------------------------

    def waiting(self, queue: str) -> list[Offered]:
        return [
            c for c in self.calls.values() if c.outcome is None and c.queue == queue
        ]

    def snapshot(
        self,
        desk: str,
        queue: str,
        now: float,
        agents: Mapping[str, int] | None = None,
    ) -> dict:
        waiting = self.waiting(queue)
        since = now - self.window
        mine = [
            c for c in self.calls.values() if c.desk == desk and c.queued_at >= since
        ]
        decided = [c for c in mine if c.outcome is not None]
        late = [
            c for c in mine if c.outcome is None and now - c.queued_at > ANSWER_TARGET
        ]
        answered = [c for c in decided if c.outcome == "answered"]
        quick = [c for c in answered if (c.waited or 0.0) <= ANSWER_TARGET]
        abandoned = [c for c in decided if c.outcome == "abandoned"]
        connected = _rate(len(answered), len(decided))
        return {
            "desk": desk,
            "waiting": len(waiting),
            "longest_wait": round(
                max((now - c.queued_at for c in waiting), default=0.0), 1
            ),
            "agents": dict(agents or {}),
            "offered_24h": len(decided),
            "answered_24h": len(answered),
            "abandoned_24h": len(abandoned),
            "callbacks_24h": sum(c.outcome == "callback" for c in decided),
            "answered_15s_rate": _rate(len(quick), len(decided) + len(late)),
            "abandon_rate": _rate(len(abandoned), len(decided)),
            "connected_24h_rate": connected,
            "meets_standard": None
            if connected is None
            else connected >= CONNECTED_TARGET,
        }


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def from_ticket(ticket: Mapping, epoch) -> Offered | None:
    """A closed ticket as an offered call, or None if it never queued.

    ``epoch`` turns the ticket's ISO times into epoch seconds (None if absent).
    """
    queued_at = epoch(ticket.get("queue_entered_at"))
    if queued_at is None or ticket.get("status") != "closed":
        return None
    outcome = {
        "answered": "answered",
        "abandoned_in_queue": "abandoned",
        "callback_requested": "callback",
        "ended_by_system": "lost",
    }.get(ticket.get("outcome") or "")
    if outcome is None:
        return None
    desk = ticket.get("desk") or ticket.get("queue") or ""
    return Offered(
        ticket.get("linkedid") or ticket.get("number") or "",
        desk,
        queued_at,
        ticket.get("queue") or desk,
        outcome,
        ticket.get("queue_wait"),
    )
