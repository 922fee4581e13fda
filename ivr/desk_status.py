"""Live desk statistics, published retained on MQTT ``ivr/status/desks/<desk>``.

Calls are followed from AMI queue events (joined, answered, abandoned, a
callback requested); agents' states come from :class:`ivr.agents.AgentDesk`.
The arithmetic is :mod:`routing.desk_stats`. At start the last 24 hours of
tickets seed the rates, and after every login to Asterisk the callers still
waiting are re-read from ``QueueStatus``, so a restart of either side leaves
the figures right. A desk's status is published when it changes, and every
``interval`` seconds while someone waits (the longest wait grows).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from panoramisk.message import Message

from ivr import log
from ivr.errors import AmiError, TicketStoreError
from ivr.queues import queue_status
from ivr.tickets import parse_iso
from routing.agents import STATUSES
from routing.desk_stats import WINDOW, DeskStats, from_ticket

CALLBACK_EVENT = "YhtCallback"


class DeskBoard:
    """Follows queue events and agents; publishes each desk's figures."""

    def __init__(
        self,
        bus,
        tracker,
        agents,
        plan_provider: Callable[[], object],
        *,
        callbacks=None,
        interval: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.tracker = tracker
        self.agents = agents
        self.callbacks = callbacks
        self._plan = plan_provider
        self.interval = interval
        self.clock = clock
        self.stats = DeskStats()
        self._channels: dict[str, str] = {}  # caller channel -> linkedid, waiting
        self._published: dict[str, dict] = {}
        self._changed = asyncio.Event()
        agents.on_change.append(lambda agent: self._changed.set())

    # -- AMI events --------------------------------------------------------------

    def handle(self, event: Message) -> None:
        name = event.get("Event", "")
        channel = event.get("Channel", "")
        key = event.get("Linkedid") or event.get("Uniqueid", "")
        now = self.clock()
        if name == "QueueCallerJoin":
            if channel.startswith("Local/"):
                return  # a callback waiting for an agent, not a citizen
            queue = event.get("Queue", "")
            self._channels[channel] = key
            self.stats.queued(key, self._desk(channel, queue), queue, now)
        elif name == "AgentConnect" and channel in self._channels:
            self.stats.decided(self._channels.pop(channel), "answered", now)
        elif name == "QueueCallerAbandon" and channel in self._channels:
            self.stats.decided(self._channels.pop(channel), "abandoned", now)
        elif name == "UserEvent" and event.get("UserEvent") == CALLBACK_EVENT:
            if channel in self._channels:
                self.stats.decided(self._channels.pop(channel), "callback", now)
        elif name == "Hangup" and channel in self._channels:
            # Gone while out of the queue (listening to a callback offer).
            self.stats.decided(self._channels.pop(channel), "abandoned", now)
        else:
            return
        self._changed.set()

    def _desk(self, channel: str, queue: str) -> str:
        plan = self._plan()
        call = self.tracker.by_channel(channel)
        if call is not None and call.desk in plan.desks:
            return call.desk
        return plan.desk_of_queue(queue)

    # -- after each login to Asterisk --------------------------------------------

    async def resync(self, session) -> None:
        """Callers waiting now, as Asterisk sees them; the others are gone."""
        try:
            response = await queue_status(session)
        except AmiError as exc:
            log.routing.warning("cannot read the queues for statistics: %s", exc)
            return
        now = self.clock()
        alive = {}
        for event in getattr(response, "events", []):
            channel = event.get("Channel", "")
            if event.get("Event") != "QueueEntry" or channel.startswith("Local/"):
                continue
            call = self.tracker.by_channel(channel)
            key = call.linkedid if call is not None else event.get("Uniqueid", "")
            queue = event.get("Queue", "")
            alive[channel] = key
            self.stats.queued(
                key, self._desk(channel, queue), queue, now - _int(event.get("Wait"))
            )
        self.stats.still_waiting(alive.values(), now)
        self._channels = alive
        self._changed.set()

    # -- publishing ----------------------------------------------------------------

    async def run(self) -> None:
        await self._load_history()
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), self.interval)
            except TimeoutError:
                pass
            self._changed.clear()
            self.publish()
            # At most one publication per desk and interval.
            await asyncio.sleep(min(self.interval, 1.0))

    def snapshot(self) -> dict[str, dict]:
        """Every desk's figures now (also what ``GET /status/desks`` serves)."""
        plan = self._plan()
        now = self.clock()
        self.stats.expire(now)
        book = self.agents.book
        monotonic = time.monotonic()
        result = {}
        for desk, model in plan.desks.items():
            counts = dict.fromkeys(STATUSES[:-1], 0)
            for agent in book.members_of(desk):
                counts[agent.status_in(plan.queue_name(desk), monotonic)] += 1
            figures = self.stats.snapshot(desk, plan.queue_name(desk), now, counts)
            figures["name"] = model.name
            figures["callbacks_waiting"] = self._callbacks_waiting(
                plan.queue_name(desk)
            )
            result[desk] = figures
        return result

    def _callbacks_waiting(self, queue: str) -> int:
        if self.callbacks is None:
            return 0
        return self.callbacks.waiting.get(queue, 0)

    def publish(self) -> None:
        for desk, figures in self.snapshot().items():
            if self._published.get(desk) == figures:
                continue
            self._published[desk] = figures
            self.bus.publish(
                "desk.status", f"status/desks/{desk}", figures, retain=True
            )

    async def _load_history(self) -> None:
        since = datetime.now(UTC) - timedelta(seconds=WINDOW)
        try:
            rows = await self.tracker.store.fetchall(
                "SELECT number, linkedid, status, outcome, desk, queue, "
                "queue_entered_at, queue_wait FROM tickets "
                "WHERE queue_entered_at >= ? AND status = 'closed'",
                (since.isoformat(timespec="milliseconds").replace("+00:00", "Z"),),
            )
        except (TicketStoreError, sqlite3.Error) as exc:
            log.routing.warning("desk statistics start without history: %s", exc)
            return
        loaded = 0
        for row in rows:
            call = from_ticket(row, _epoch)
            if call is not None:
                self.stats.load(call)
                loaded += 1
        log.routing.info("desk statistics: %d calls of the last 24 h loaded", loaded)


def _epoch(text: str | None) -> float | None:
    moment = parse_iso(text)
    return moment.timestamp() if moment is not None else None


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
