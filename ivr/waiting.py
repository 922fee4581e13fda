"""Callers waiting for a person: overflow, priority and the callback offer.

Each caller the tracker knows gets a :class:`routing.overflow.WaitPlan` when
they first join a queue, and a timer task that carries out its steps. app_queue
cannot change a waiting caller's penalty limit or desk, so each step sets the
caller's channel variables and withdraws the caller (``QueueWithdrawCaller``);
the dialplan puts them straight back with the new ``QUEUE_MAX_PENALTY``, desk
and ``position`` argument, so the caller keeps their place:

    YHT_MAX_PENALTY   the least skilled level now allowed (empty: anyone)
    YHT_DESK          the queue to (re)join
    YHT_POSITION      where to rejoin it (1 is the head)
    YHT_PRIORITY      the caller's priority, which may have been raised

A callback offer is a withdraw too: the dialplan plays the offer and waits a
few seconds for the key, then either rejoins or reports ``UserEvent:
YhtCallback`` (see :mod:`ivr.callbacks`).

Priorities are raised in place with ``QueueChangePriorityCaller``: for a repeat
caller when they join, and for a caller flagged in crisis while they wait
(MQTT ``ivr/commands/call/flag`` with ``{"ticket": ..., "flag": "crisis"}``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from panoramisk.message import Message

from ivr import log
from ivr.calls import Call, CallTracker
from ivr.errors import AmiActionError, AmiError
from ivr.queues import queue_status
from ivr.tasks import TaskOwner
from routing.numbers import is_dialable
from routing.overflow import Step, WaitPlan, position_by_wait, queued_priority

CRISIS = "crisis"
# QueueWithdrawCaller's WithdrawInfo, read back by the dialplan.
OFFER_INFO = "callback-offer"
# Seconds a withdrawn caller may take to be back in a queue (the offer's
# prompt and key wait are the longest part).
REJOIN_WAIT = 30.0


@dataclass
class Waiter:
    call: Call
    plan: WaitPlan
    first_queued: float  # monotonic
    queue: str
    base_priority: int
    priority: int
    crisis: bool = False
    withdrawing: bool = False
    task: asyncio.Task | None = None
    rejoined: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def channel(self) -> str:
        return self.call.channel


class WaitingRoom:
    """Every citizen waiting in a queue, with the timer of their wait plan."""

    def __init__(
        self,
        session,
        tracker: CallTracker,
        plan_provider: Callable[[], object],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.session = session
        self.tracker = tracker
        self._plan = plan_provider
        self.clock = clock
        self._sleep = sleep
        self.waiters: dict[str, Waiter] = {}  # by caller channel
        self._owned = TaskOwner(log.routing)

    # -- the owner ---------------------------------------------------------------

    async def run(self) -> None:
        """Own the timers: they end with this task."""
        await self._owned.run()

    def _spawn(self, coro, name: str) -> asyncio.Task:
        return self._owned.spawn(coro, name)

    # -- AMI events --------------------------------------------------------------

    def handle(self, event: Message) -> None:
        name = event.get("Event", "")
        if name == "QueueCallerJoin":
            self._on_join(event)
        elif name == "QueueCallerLeave":
            self._on_leave(event)
        elif name in ("Hangup", "AgentConnect"):
            self._end(event.get("Channel", ""))

    def _on_join(self, event: Message, priority: int | None = None) -> None:
        channel = event.get("Channel", "")
        queue = event.get("Queue", "")
        waiter = self.waiters.get(channel)
        if waiter is not None:
            waiter.queue = queue
            waiter.withdrawing = False
            waiter.rejoined.set()
            return
        call = self.tracker.by_channel(channel)
        if call is None:
            return  # not a citizen's call (a callback waiting for an agent)
        plan = self._plan()
        desk = call.desk if call.desk in plan.desks else plan.desk_of_queue(queue)
        # QueueCallerJoin's "Priority" is the dialplan's, not the queue's.
        base = call.priority if priority is None else priority
        waiter = Waiter(
            call,
            WaitPlan(plan.desks, desk),
            self.clock(),
            queue,
            base,
            base,
        )
        waiter.rejoined.set()
        self.waiters[channel] = waiter
        if call.repeat_of:
            self._spawn(self._raise(waiter, "repeat caller"), f"priority {channel}")
        if waiter.plan.next_at() is not None:
            waiter.task = self._spawn(self._timeline(waiter), f"waiting {channel}")

    def _on_leave(self, event: Message) -> None:
        waiter = self.waiters.get(event.get("Channel", ""))
        if waiter is not None and not waiter.withdrawing:
            self._end(waiter.channel)

    def _end(self, channel: str) -> None:
        waiter = self.waiters.pop(channel, None)
        if waiter is not None and waiter.task is not None:
            waiter.task.cancel()

    # -- priority ------------------------------------------------------------------

    async def flag(self, key: str, flag: str) -> dict:
        """Flag a live call (by ticket number or linkedid); a crisis raises its
        priority at once if it is waiting. KeyError if no such live call."""
        call = next(
            (
                c
                for c in self.tracker.calls.values()
                if key in (c.ticket_number, c.linkedid)
            ),
            None,
        )
        if call is None:
            raise KeyError(f"no live call {key!r}")
        self.tracker.flag(call, flag, "flagged", {})
        waiter = self.waiters.get(call.channel)
        log.routing.info(
            "call %s flagged %r%s",
            call.ticket_number or call.linkedid,
            flag,
            " while waiting" if waiter is not None else "",
        )
        if flag == CRISIS and waiter is not None and not waiter.crisis:
            waiter.crisis = True
            await self._raise(waiter, "crisis")
        return {"ticket": call.ticket_number, "flag": flag, "waiting": bool(waiter)}

    async def on_command(self, topic: str, data: dict) -> None:
        """MQTT ``commands/call/flag``."""
        key = str(data.get("ticket") or data.get("linkedid") or "")
        flag = str(data.get("flag") or "").strip()
        if not key or not flag:
            log.routing.warning("call flag command without ticket or flag: %s", data)
            return
        try:
            await self.flag(key, flag)
        except KeyError as exc:
            log.routing.warning("call flag command: %s", exc.args[0])

    async def _raise(self, waiter: Waiter, why: str) -> None:
        priority = queued_priority(
            waiter.base_priority,
            crisis=waiter.crisis,
            repeat=bool(waiter.call.repeat_of),
        )
        if priority <= waiter.priority:
            return
        waiter.priority = priority
        try:
            await self.session.action(
                "QueueChangePriorityCaller",
                {
                    "Queue": waiter.queue,
                    "Caller": waiter.channel,
                    "Priority": priority,
                    "Immediate": "yes",
                },
            )
            # Also for the next (re)join: the dialplan reads YHT_PRIORITY.
            await self._setvar(waiter.channel, "YHT_PRIORITY", priority)
        except AmiError as exc:
            log.routing.warning(
                "could not raise the priority of %s: %s", waiter.channel, exc
            )
            return
        self.tracker.note(
            waiter.call, "priority_raised", {"priority": priority, "reason": why}
        )
        log.routing.info(
            "call %s: priority %d (%s)",
            waiter.call.ticket_number or waiter.call.linkedid,
            priority,
            why,
        )

    # -- the timetable ---------------------------------------------------------------

    async def _timeline(self, waiter: Waiter) -> None:
        while (at := waiter.plan.next_at()) is not None:
            delay = waiter.first_queued + at - self.clock()
            if delay > 0:
                await self._sleep(delay)
                continue
            if self.waiters.get(waiter.channel) is not waiter:
                return
            for step in waiter.plan.due(self.clock() - waiter.first_queued):
                # One withdraw at a time: the dialplan must have put the
                # caller back before the next step can take them out.
                try:
                    await asyncio.wait_for(waiter.rejoined.wait(), REJOIN_WAIT)
                except TimeoutError:
                    return
                try:
                    await self._carry_out(waiter, step)
                except AmiError as exc:
                    log.routing.warning(
                        "call %s: %s not done: %s",
                        waiter.call.ticket_number,
                        step.kind,
                        exc,
                    )

    async def _carry_out(self, waiter: Waiter, step: Step) -> None:
        call = waiter.call
        if step.kind == "offer_callback" and not is_dialable(call.caller_number):
            # No number we could call back (withheld, or not a plain number):
            # no offer the caller could take; they keep their place.
            return
        plan = self._plan()
        waited = round(self.clock() - waiter.first_queued, 1)
        queue = plan.queue_name(step.desk) if step.desk in plan.desks else step.desk
        position = await self._position(waiter, queue, waited)
        penalty = "" if step.max_penalty is None else step.max_penalty
        variables = {
            "YHT_DESK": queue,
            "YHT_MAX_PENALTY": penalty,
            "YHT_POSITION": position,
            "YHT_PRIORITY": waiter.priority,
        }
        info = {"widen": "widen", "move": "move"}.get(step.kind, OFFER_INFO)
        if not await self._withdraw(waiter, variables, info):
            return
        data = {"after": waited, "desk": step.desk, "position": position}
        if step.kind == "widen":
            self.tracker.note(
                call, "overflow_widened", {**data, "max_penalty": penalty}
            )
        elif step.kind == "move":
            flag = step.flag or f"overflow to {step.desk}"
            self.tracker.flag(call, flag, "overflow_moved", data)
        else:
            self.tracker.note(call, "callback_offered", data)
        log.routing.info(
            "call %s after %.0f s in queue: %s (desk %s, position %s)",
            call.ticket_number or call.linkedid,
            waited,
            step.kind,
            step.desk,
            position,
        )

    async def _position(self, waiter: Waiter, queue: str, waited: float) -> int:
        """The caller's place in ``queue``: their own if they are in it,
        otherwise behind everyone who has waited longer."""
        response = await queue_status(self.session, queue)
        entries = []
        for event in getattr(response, "events", []):
            if event.get("Event") != "QueueEntry" or event.get("Queue") != queue:
                continue
            if event.get("Channel") == waiter.channel:
                return _int(event.get("Position")) or 1
            entries.append(
                (_int(event.get("Priority")), float(_int(event.get("Wait"))))
            )
        return position_by_wait(entries, waiter.priority, waited)

    async def _withdraw(self, waiter: Waiter, variables: dict, info: str) -> bool:
        for name, value in variables.items():
            await self._setvar(waiter.channel, name, value)
        waiter.withdrawing = True
        waiter.rejoined.clear()
        try:
            await self.session.action(
                "QueueWithdrawCaller",
                {"Queue": waiter.queue, "Caller": waiter.channel, "WithdrawInfo": info},
            )
        except AmiActionError as exc:
            # Answered or gone in the meantime: nothing to do.
            waiter.withdrawing = False
            waiter.rejoined.set()
            log.routing.debug("withdraw of %s refused: %s", waiter.channel, exc)
            return False
        return True

    async def _setvar(self, channel: str, name: str, value: object) -> None:
        await self.session.action(
            "Setvar", {"Channel": channel, "Variable": name, "Value": str(value)}
        )

    # -- after a reconnect -------------------------------------------------------------

    def forget(self) -> None:
        """The AMI link dropped: timers restart from what QueueStatus shows."""
        for channel in list(self.waiters):
            self._end(channel)

    async def resync(self) -> None:
        """Adopt callers already waiting (the server or the link restarted).

        Their wait so far comes from QueueStatus, so steps already due are
        taken at once (a caller held to level 1 is widened without delay).
        """
        try:
            response = await queue_status(self.session)
        except AmiError as exc:
            log.routing.warning("cannot list waiting callers: %s", exc)
            return
        now = self.clock()
        for event in getattr(response, "events", []):
            if event.get("Event") != "QueueEntry":
                continue
            channel = event.get("Channel", "")
            if channel in self.waiters or self.tracker.by_channel(channel) is None:
                continue
            self._on_join(event, _int(event.get("Priority")))
            waiter = self.waiters.get(channel)
            if waiter is not None:
                waiter.first_queued = now - _int(event.get("Wait"))


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
