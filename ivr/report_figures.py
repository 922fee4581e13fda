"""The report's figures from ticket rows: pure arithmetic, no I/O.

What each figure counts, over the calls that arrived between the first and the
last day of the report (Beijing days):

* calls: every call (each has a ticket). Offered: calls that reached an agent
  queue. Answered: an agent took the call.
* 15-second answer rate: calls answered within 15 s of entering the queue,
  over calls offered.
* 24-hour connection rate: calls answered over calls offered, around the
  clock; ``calls_by_hour`` shows it hour by hour.
* work orders: calls an agent accepted as a request. Completion rate: work
  orders closed or followed up, over work orders.
* on-time rate: lead units' replies made on or before their deadline, over
  lead units' parts that were replied to or whose deadline had passed by the
  end of the report. A ticket dispatched again after a reopen counts again;
  a part withdrawn before a reply (a return upheld) does not count.
* satisfaction rate: the latest survey of a ticket 1 or 2, over tickets with
  a survey.
* repeat rate: work orders linked to an earlier one (same caller, or same
  address and category, within 30 days), over work orders.
* enterprise requests (营商环境): work orders marked as an enterprise's, or
  routed to the business desk. A category *jumps* when its count in the last
  7 days is at least ``JUMP_FACTOR`` times its mean over the four 7-day
  windows before, and at least ``JUMP_MINIMUM``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from routing.workorder import BEIJING

ANSWER_SECONDS = 15
JUMP_FACTOR = 2.0
JUMP_MINIMUM = 3
BASELINE_WINDOWS = 4
NO_DESK = "(none)"
COMPLETED = ("closed", "followed_up")
ACTIVE = ("dispatched", "signed", "returned")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(BEIJING)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def is_enterprise(ticket: Mapping[str, Any]) -> bool:
    return ticket.get("state") is not None and (
        bool(ticket.get("enterprise")) or ticket.get("desk") == "business"
    )


def figures(
    tickets: Iterable[Mapping[str, Any]],
    first: date,
    last: date,
    *,
    as_of: datetime,
    leads: Iterable[Mapping[str, Any]] = (),
    earlier_enterprise: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Every figure of the report for the tickets that arrived first..last.

    ``leads`` are the lead units' parts (deadline, handled_at, step) of those
    tickets, every round.
    ``earlier_enterprise`` holds enterprise requests of the weeks before the
    report, for the baseline of the jump warning; ``as_of`` is when deadlines
    are judged (the end of the report, or now if that is sooner).
    """
    rows = [t for t in tickets if first <= local(t["arrived_at"]).date() <= last]
    offered = [t for t in rows if t.get("queue_entered_at")]
    answered = [t for t in offered if t.get("outcome") == "answered"]
    quick = [
        t
        for t in answered
        if t.get("queue_wait") is not None and t["queue_wait"] <= ANSWER_SECONDS
    ]
    orders = [t for t in rows if t.get("state")]
    completed = [t for t in orders if t["state"] in COMPLETED]
    judged_day = as_of.astimezone(BEIJING).date()
    leads = list(leads)
    replied = [p for p in leads if p.get("handled_at")]
    overdue = [
        p
        for p in leads
        if not p.get("handled_at")
        and p["step"] in ACTIVE
        and date.fromisoformat(p["deadline"]) < judged_day
    ]
    on_time = [
        p
        for p in replied
        if local(p["handled_at"]).date() <= date.fromisoformat(p["deadline"])
    ]
    surveyed = [t for t in rows if t.get("satisfaction") is not None]
    satisfied = [t for t in surveyed if t["satisfaction"] in (1, 2)]
    repeats = [t for t in orders if t.get("repeat_of")]

    hours = [{"hour": h, "offered": 0, "answered": 0} for h in range(24)]
    for t in offered:
        hour = hours[local(t["arrived_at"]).hour]
        hour["offered"] += 1
        hour["answered"] += t.get("outcome") == "answered"

    return {
        "period": {"from": first.isoformat(), "to": last.isoformat()},
        "calls": len(rows),
        "offered": len(offered),
        "answered": len(answered),
        "answered_15s": len(quick),
        "answer_rate_15s": rate(len(quick), len(offered)),
        "connection_rate_24h": rate(len(answered), len(offered)),
        "calls_by_hour": hours,
        "calls_by_desk": _count(t.get("desk") or NO_DESK for t in rows),
        "tickets_by_desk": _count(t.get("desk") or NO_DESK for t in orders),
        "tickets_by_category": _count(t["category"] for t in orders),
        "work_orders": len(orders),
        "completed": len(completed),
        "completion_rate": rate(len(completed), len(orders)),
        "due": len(replied) + len(overdue),
        "on_time": len(on_time),
        "on_time_rate": rate(len(on_time), len(replied) + len(overdue)),
        "surveyed": len(surveyed),
        "satisfied": len(satisfied),
        "satisfaction_rate": rate(len(satisfied), len(surveyed)),
        "repeats": len(repeats),
        "repeat_rate": rate(len(repeats), len(orders)),
        "enterprise": enterprise(
            [t for t in orders if is_enterprise(t)],
            [t for t in earlier_enterprise if is_enterprise(t)],
            first,
            last,
        ),
    }


def enterprise(
    requests: list[Mapping[str, Any]],
    earlier: list[Mapping[str, Any]],
    first: date,
    last: date,
) -> dict[str, Any]:
    by_category_area: dict[str, Counter] = defaultdict(Counter)
    daily: dict[str, Counter] = {}
    day = first
    while day <= last:
        daily[day.isoformat()] = Counter()
        day += timedelta(days=1)
    for t in requests:
        by_category_area[t["category"]][t.get("area") or NO_DESK] += 1
        daily[local(t["arrived_at"]).date().isoformat()][t["category"]] += 1

    # Seven-day windows ending on the last day; the newest is window 0.
    windows: dict[str, list[int]] = defaultdict(lambda: [0] * (BASELINE_WINDOWS + 1))
    for t in [*requests, *earlier]:
        back = (last - local(t["arrived_at"]).date()).days // 7
        if 0 <= back <= BASELINE_WINDOWS:
            windows[t["category"]][back] += 1
    return {
        "requests": len(requests),
        "by_category": _count(t["category"] for t in requests),
        "by_area": _count(t.get("area") or NO_DESK for t in requests),
        "by_category_area": {
            category: dict(sorted(areas.items()))
            for category, areas in sorted(by_category_area.items())
        },
        "daily": {d: dict(sorted(c.items())) for d, c in daily.items()},
        "weekly": {c: list(w) for c, w in sorted(windows.items())},
        "warnings": jumps(windows),
    }


def jumps(windows: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    """Categories whose last 7 days jump against their own recent baseline."""
    warnings = []
    for category, counts in sorted(windows.items()):
        latest, before = counts[0], counts[1 : BASELINE_WINDOWS + 1]
        baseline = sum(before) / BASELINE_WINDOWS
        if latest >= JUMP_MINIMUM and latest >= JUMP_FACTOR * baseline:
            warnings.append(
                {
                    "category": category,
                    "last_7_days": latest,
                    "baseline": round(baseline, 2),
                    "factor": round(latest / baseline, 2) if baseline else None,
                }
            )
    return warnings


def _count(values: Iterable[str]) -> dict[str, int]:
    counts = Counter(values)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
