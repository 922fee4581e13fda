"""The supervisors' wallboard: every desk live, over server-sent events.

The figures per desk are the desk board's (:mod:`ivr.desk_status`, the same
as ``GET /status/desks`` and MQTT): callers waiting, the longest wait, agents
by state, the 15-second answer rate, the 24-hour connection and abandon
rates. The ticket store adds what only it knows: satisfaction today, calls
per hour today for the chart, and the latest calls (numbers masked).

:func:`stream` sends the whole state when it changes (checked every second)
and a comment every 15 s so proxies keep the stream open; the browser's
EventSource reconnects by itself after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import web

from ivr import log
from ivr.log import mask_number
from ivr.tickets import parse_iso
from ivr.web.status_routes import AGENT_DESK, DESK_BOARD
from routing.hours import BEIJING

TICKET_STORE = web.AppKey("wallboard_ticket_store", object)
CLOSING = web.AppKey("wallboard_closing", asyncio.Event)
# The last ticket-store reading and its time: many screens share one query.
HISTORY = web.AppKey("wallboard_history", dict)
TICK = 1.0
HEARTBEAT = 15.0
HISTORY_TTL = 5.0  # seconds a ticket-store reading is reused
RECENT = 10


def setup(app: web.Application) -> None:
    app[CLOSING] = asyncio.Event()
    app[HISTORY] = {}
    app.on_shutdown.append(_closing)


async def _closing(app: web.Application) -> None:
    # Open streams end now, or the server would wait for them when it stops.
    app[CLOSING].set()


async def state(app: web.Application) -> dict:
    """Everything the wallboard shows, as JSON-ready values."""
    board = app.get(DESK_BOARD)
    desks = board.snapshot() if board is not None else {}
    history = await _history(app)
    for desk, figures in desks.items():
        figures["satisfaction_today"] = history["satisfaction"].get(desk)
    agents = app.get(AGENT_DESK)
    return {
        "desks": desks,
        "agents": (agents.states() if agents else []),
        "hours": history["hours"],
        "recent": history["recent"],
        "serving": board is not None,
    }


async def _history(app: web.Application) -> dict:
    cached = app[HISTORY]
    now = time.monotonic()
    if cached and now - cached["at"] < HISTORY_TTL:
        return cached["value"]
    store = app.get(TICKET_STORE)
    result = {"satisfaction": {}, "hours": _empty_hours(), "recent": []}
    if store is not None:
        try:
            result = await _read_history(store)
        except Exception:  # the wallboard keeps showing the live figures
            log.web.exception("wallboard: reading the ticket store failed")
    cached.update(at=now, value=result)
    return result


def _empty_hours() -> dict:
    return {"answered": [0] * 24, "abandoned": [0] * 24, "other": [0] * 24}


def _today_start() -> datetime:
    local = datetime.now(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


async def _read_history(store) -> dict:
    since = _today_start()
    since_text = since.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    rows = await store.fetchall(
        "SELECT desk, outcome, arrived_at, satisfaction FROM tickets "
        "WHERE arrived_at >= ?",
        (since_text,),
    )
    hours = _empty_hours()
    scores: dict[str, list[int]] = {}
    for row in rows:
        arrived = parse_iso(row["arrived_at"])
        if arrived is None:
            continue
        hour = arrived.astimezone(BEIJING).hour
        outcome = row["outcome"] or ""
        if outcome == "answered":
            hours["answered"][hour] += 1
        elif outcome.startswith("abandoned"):
            hours["abandoned"][hour] += 1
        else:
            hours["other"][hour] += 1
        if row["satisfaction"] is not None and row["desk"]:
            scores.setdefault(row["desk"], []).append(int(row["satisfaction"]))
    recent = await store.fetchall(
        "SELECT number, caller_number, caller_name, desk, outcome, arrived_at, "
        "queue_wait FROM tickets ORDER BY id DESC LIMIT ?",
        (RECENT,),
    )
    return {
        "satisfaction": {
            desk: {"average": round(sum(s) / len(s), 2), "count": len(s)}
            for desk, s in scores.items()
        },
        "hours": hours,
        "recent": [_recent(row) for row in recent],
    }


def _recent(row: dict) -> dict:
    arrived = parse_iso(row["arrived_at"])
    return {
        "ticket": row["number"],
        # Masked for every role here: the wallboard hangs where visitors pass.
        "caller": mask_number(row["caller_number"]),
        "name": row["caller_name"] or "",
        "desk": row["desk"] or "",
        "outcome": row["outcome"] or "in progress",
        "arrived": arrived.astimezone(BEIJING).strftime("%H:%M:%S") if arrived else "",
        "wait": row["queue_wait"],
    }


async def stream(
    request: web.Request, still_allowed: Callable[[], bool] = lambda: True
) -> web.StreamResponse:
    """The state as server-sent events while ``still_allowed()`` says so."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        }
    )
    await response.prepare(request)
    closing = request.app[CLOSING]
    last = None
    quiet_since = time.monotonic()
    with contextlib.suppress(ConnectionResetError):
        async for current in _ticks(request.app, closing):
            if not still_allowed():
                break
            text = json.dumps(current, ensure_ascii=False, sort_keys=True)
            if text != last:
                await response.write(f"event: state\ndata: {text}\n\n".encode())
                last = text
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > HEARTBEAT:
                await response.write(b": still here\n\n")
                quiet_since = time.monotonic()
    return response


async def _ticks(app: web.Application, closing: asyncio.Event) -> AsyncIterator[dict]:
    while not closing.is_set():
        yield await state(app)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), TICK)
