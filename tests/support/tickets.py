"""Tickets for tests: a store with the configured catalog, and calls to fill it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from ivr.catalog import load_catalog
from ivr.tickets import TicketStore
from ivr.workorders import WorkOrders, iso
from routing.workorder import Actor, Role

CATALOG = load_catalog(Path(__file__).parents[2] / "config" / "workorder.yaml")
AGENT = Actor(Role.AGENT, "li")
SUPERVISOR = Actor(Role.SUPERVISOR, "wang")

_linkedids = itertools.count(1)


def unit(unit_id: str) -> Actor:
    return Actor(Role.UNIT, f"clerk-{unit_id}", unit_id)


def beijing(text: str) -> datetime:
    """'2026-03-02 10:00' in Beijing as an aware time."""
    return datetime.fromisoformat(text.replace(" ", "T") + "+08:00")


async def open_store(path) -> tuple[TicketStore, WorkOrders]:
    store = await TicketStore.open(path)
    return store, WorkOrders(store, CATALOG)


async def call(
    store: TicketStore,
    arrived: datetime,
    caller: str = "13800000001",
    *,
    desk: str | None = "general",
    wait: float | None = 5.0,
    outcome: str = "answered",
) -> dict:
    """A call that came in, waited ``wait`` seconds in ``desk``'s queue and ended."""
    linkedid = f"t.{next(_linkedids)}"
    arrived_at = iso(arrived)
    ticket = await store.open_ticket(
        linkedid=linkedid,
        channel="PJSIP/pstn-1",
        caller_number=caller,
        arrived_at=arrived_at,
    )
    fields: dict = {}
    if desk is not None:
        fields.update(desk=desk, queue=desk, queue_entered_at=arrived_at)
        if outcome == "answered" and wait is not None:
            fields.update(agent="6001", queue_wait=wait)
    if fields:
        await store.update(linkedid, **fields)
    await store.close_ticket(linkedid, outcome=outcome, ended_at=arrived_at)
    return ticket


def intake(category: str = "consult", **more) -> dict:
    return {"category": category, "content": "路灯不亮", **more}


def now_utc() -> datetime:
    return datetime.now(UTC)
