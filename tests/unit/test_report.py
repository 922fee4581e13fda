"""The report against a month of tickets counted here, independently of it."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pytest

from ivr.report import write_report
from ivr.report_figures import jumps
from tests.support.tickets import (
    AGENT,
    CATALOG,
    SUPERVISOR,
    beijing,
    call,
    unit,
)

FIRST, LAST = date(2026, 11, 1), date(2026, 11, 30)
NOW = beijing("2026-12-03 12:00")
DESKS = ["general", "business", "psych", "tibetan", "yi"]
CATEGORIES = ["housing", "traffic", "market", "urban", "labour", "enterprise"]
AREAS = ["jinjiang", "wuhou", "gaoxin", "chenghua"]
ADDRESSES = [f"人民南路{n}号" for n in range(1, 9)]
UNITS = ["housing", "transport", "market", "urban", "hrss"]


@dataclass
class Seeded:
    """What the test did to one call, to count from."""

    arrived: datetime
    caller: str
    desk: str | None
    wait: float | None = None
    answered: bool = False
    order: bool = False
    category: str | None = None
    area: str | None = None
    address: str = ""
    enterprise: bool = False
    state: str | None = None
    deadline: date | None = None
    handled: date | None = None
    score: int | None = None
    repeat: bool = False
    acts: list = field(default_factory=list)


def plan(rng: random.Random) -> list[Seeded]:
    calls: list[Seeded] = []

    def one(day: date, *, category: str | None = None, enterprise: bool = False):
        moment = datetime.combine(day, datetime.min.time()).replace(
            hour=rng.randrange(24), minute=rng.randrange(60)
        )
        arrived = beijing(moment.strftime("%Y-%m-%d %H:%M"))
        desk = None if rng.random() < 0.1 else rng.choice(DESKS)
        seeded = Seeded(arrived, f"1380000{rng.randrange(40):04d}", desk)
        if category is not None:
            seeded.desk = "business"
        if seeded.desk:
            seeded.wait = round(rng.uniform(1, 40), 1)
            seeded.answered = category is not None or rng.random() < 0.85
        if seeded.answered and (category is not None or rng.random() < 0.7):
            seeded.order = True
            seeded.category = category or rng.choice(CATEGORIES)
            seeded.area = rng.choice(AREAS)
            seeded.address = rng.choice(ADDRESSES)
            seeded.enterprise = enterprise or rng.random() < 0.3
        calls.append(seeded)

    day = date(2026, 10, 26)
    while day <= LAST:
        for _ in range(rng.randint(2, 6)):
            one(day)
        if day >= date(2026, 11, 24):
            # A jump: permits for enterprises, barely seen before this week.
            one(day, category="permits", enterprise=True)
        day += timedelta(days=1)
    calls.sort(key=lambda c: c.arrived)
    return calls


async def seed(store, orders, calls: list[Seeded], rng: random.Random) -> None:
    for seeded in calls:
        outcome = (
            "answered"
            if seeded.answered
            else ("abandoned_in_queue" if seeded.desk else "abandoned_in_menu")
        )
        ticket = await call(
            store, seeded.arrived, seeded.caller, desk=seeded.desk,
            wait=seeded.wait, outcome=outcome,
        )  # fmt: skip
        number = ticket["number"]
        if seeded.answered and rng.random() < 0.4:
            seeded.score = rng.choice([1, 2, 3])
            await orders.record_survey(
                number, seeded.score, "in_call", at=seeded.arrived
            )
        if not seeded.order:
            continue
        at = seeded.arrived + timedelta(minutes=5)
        await orders.act(
            number,
            "accept",
            AGENT,
            {
                "category": seeded.category,
                "content": "诉求",
                "area": seeded.area,
                "address": seeded.address,
                "enterprise": seeded.enterprise,
            },
            at=at,
        )
        seeded.state = "accepted"
        if rng.random() < 0.3:
            await orders.act(number, "answer", AGENT, {"answer": "知识库答复"}, at=at)
            seeded.state = "closed"
        else:
            lead = rng.choice(UNITS)
            seeded.deadline = at.date() + timedelta(days=rng.randint(3, 10))
            spec = {"unit": lead, "deadline": seeded.deadline.isoformat()}
            await orders.act(number, "dispatch", AGENT, {"lead": spec}, at=at)
            seeded.state = "dispatched"
            handled = at + timedelta(days=rng.randint(1, 12))
            if rng.random() < 0.8 and handled.date() <= LAST:
                await orders.act(number, "sign", unit(lead), at=at)
                await orders.act(
                    number, "handle", unit(lead), {"result": "已办"}, at=handled
                )
                seeded.handled, seeded.state = handled.date(), "handled"
                if rng.random() < 0.8:
                    await orders.act(number, "close", SUPERVISOR, at=handled)
                    seeded.state = "closed"
        if seeded.state == "closed" and rng.random() < 0.7:
            score = rng.choice([1, 1, 1, 2, 2, 3])
            later = at + timedelta(days=13)
            await orders.record_survey(number, score, "follow_up", at=later)
            seeded.score = score
            seeded.state = "accepted" if score == 3 else "followed_up"


def mark_repeats(calls: list[Seeded]) -> None:
    """Same caller, or same address and category, within 30 days before."""
    orders = [c for c in calls if c.order]
    for index, new in enumerate(orders):
        for old in orders[:index]:
            if timedelta(0) <= new.arrived - old.arrived <= timedelta(days=30) and (
                old.caller == new.caller
                or (old.address == new.address and old.category == new.category)
            ):
                new.repeat = True


def rate(part: int, whole: int):
    return round(part / whole, 4) if whole else None


@pytest.fixture
async def month(make_store, tmp_path):
    store, orders = await make_store()
    rng = random.Random(12345)
    calls = plan(rng)
    await seed(store, orders, calls, rng)
    mark_repeats(calls)
    return store, calls, tmp_path


async def test_the_report_counts_what_was_seeded(month):
    store, calls, tmp_path = month
    out = tmp_path / "report"
    page = await write_report(store, CATALOG, FIRST, LAST, out, now=NOW)
    got = json.loads((out / "figures.json").read_text(encoding="utf-8"))

    inside = [c for c in calls if FIRST <= c.arrived.date() <= LAST]
    offered = [c for c in inside if c.desk]
    answered = [c for c in offered if c.answered]
    orders = [c for c in inside if c.order]
    completed = [c for c in orders if c.state in ("closed", "followed_up")]
    overdue = [c for c in orders if c.deadline and not c.handled and c.deadline <= LAST]
    handled = [c for c in orders if c.handled]
    on_time = [c for c in handled if c.handled <= c.deadline]
    surveyed = [c for c in inside if c.score is not None]
    assert len(inside) > 100 and overdue and handled and len(on_time) < len(handled)

    assert got["calls"] == len(inside)
    assert got["offered"] == len(offered)
    assert got["answered"] == len(answered)
    quick = [c for c in answered if c.wait <= 15]
    assert got["answer_rate_15s"] == rate(len(quick), len(offered))
    assert got["connection_rate_24h"] == rate(len(answered), len(offered))
    by_hour = Counter(c.arrived.hour for c in offered)
    assert [h["offered"] for h in got["calls_by_hour"]] == [
        by_hour[h] for h in range(24)
    ]
    desks = Counter(c.desk or "(none)" for c in inside)
    assert got["calls_by_desk"] == dict(desks)
    assert got["tickets_by_category"] == dict(Counter(c.category for c in orders))
    assert got["work_orders"] == len(orders)
    assert got["completion_rate"] == rate(len(completed), len(orders))
    assert got["due"] == len(handled) + len(overdue)
    assert got["on_time_rate"] == rate(len(on_time), len(handled) + len(overdue))
    satisfied = [c for c in surveyed if c.score in (1, 2)]
    assert got["satisfaction_rate"] == rate(len(satisfied), len(surveyed))
    repeats = [c for c in orders if c.repeat]
    assert repeats and got["repeat_rate"] == rate(len(repeats), len(orders))

    business = [c for c in orders if c.enterprise or c.desk == "business"]
    assert got["enterprise"]["requests"] == len(business)
    assert got["enterprise"]["by_category"] == dict(
        Counter(c.category for c in business)
    )
    assert got["enterprise"]["by_area"] == dict(Counter(c.area for c in business))
    windows: dict[str, list[int]] = {}
    for c in calls:
        if c.order and (c.enterprise or c.desk == "business"):
            back = (LAST - c.arrived.date()).days // 7
            if back <= 4:
                windows.setdefault(c.category, [0] * 5)[back] += 1
    assert got["enterprise"]["weekly"] == dict(sorted(windows.items()))
    warned = {w["category"] for w in got["enterprise"]["warnings"]}
    assert "permits" in warned
    assert warned == {w["category"] for w in jumps(windows)}

    text = page.read_text(encoding="utf-8")
    assert f"id=answer_rate_15s>{got['answer_rate_15s'] * 100:.1f}%" in text
    assert "permits" in text and "class=warn" in text
    for name in (
        "calls_by_desk",
        "tickets_by_category",
        "rates",
        "calls_by_hour",
        "enterprise_trend",
        "enterprise_by_area",
    ):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{name}.png"' in text


def test_a_jump_needs_both_the_factor_and_the_minimum():
    assert jumps({"a": [3, 0, 0, 0, 0]})[0]["category"] == "a"
    assert jumps({"a": [2, 0, 0, 0, 0]}) == []  # too few to mean anything
    assert jumps({"a": [7, 4, 4, 4, 4]}) == []  # under twice the baseline
    assert jumps({"a": [8, 4, 4, 4, 4]})[0]["factor"] == 2.0


async def test_an_empty_period_reports_no_rates(make_store, tmp_path):
    store, _ = await make_store()
    out = tmp_path / "empty"
    await write_report(store, CATALOG, FIRST, LAST, out, now=NOW)
    got = json.loads((out / "figures.json").read_text(encoding="utf-8"))
    assert got["calls"] == 0 and got["answer_rate_15s"] is None
    assert (out / "rates.png").exists()
