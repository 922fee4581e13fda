"""Callbacks that keep the caller's place in the queue.

A caller who takes the offer (``UserEvent: YhtCallback`` from the dialplan,
see :mod:`ivr.waiting`) hangs up. The server then originates (always async)
``Local/wait@yht-callback-wait``: that side joins the desk's queue where the
caller would be now (behind everyone who has waited longer, ahead of those who
came later) and waits like any caller. When an agent answers it, the other
side runs ``yht-callback-dial`` and dials the caller, so the agent hears the
caller's phone ring and the caller never waits on hold again.

Everything is written on the caller's ticket: ``callback_requested`` (by the
tracker), ``callback_queued``, ``callback_agent`` (who took it),
``callback_connected`` or ``callback_failed``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from panoramisk.message import Message

from ivr import log
from ivr.calls import Call, CallTracker
from ivr.errors import AmiError, TicketStoreError
from ivr.queues import queue_status
from ivr.tasks import TaskOwner
from routing.agents import extension_of
from routing.numbers import dialable_number
from routing.overflow import position_by_wait

USER_EVENT = "YhtCallback"
# How long a callback may wait in the queue for an agent before it is given up.
MAX_WAIT = 4 * 3600.0


@dataclass
class Callback:
    id: str
    call: Call
    queue: str
    priority: int
    max_penalty: str
    agent: str = ""
    state: str = "waiting"  # waiting -> dialling -> connected | failed

    @property
    def wait_id(self) -> str:
        return f"{self.id}-wait"

    @property
    def dial_id(self) -> str:
        return f"{self.id}-dial"


class Callbacks:
    """Callbacks requested and not yet connected, and the tasks placing them."""

    def __init__(
        self,
        session,
        tracker: CallTracker,
        dial: Callable[[str], str],
        *,
        caller_id: str = "12345",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.tracker = tracker
        self.dial = dial
        self.caller_id = caller_id
        self.clock = clock
        self.pending: dict[str, Callback] = {}  # by id
        self._ids = itertools.count(1)
        self._boot = f"{int(time.time()):x}"
        self._owned = TaskOwner(log.routing)

    async def run(self) -> None:
        """Own the originate tasks: they end with this task."""
        await self._owned.run()

    @property
    def waiting(self) -> dict[str, int]:
        """Callbacks still waiting for an agent, per queue."""
        counts: dict[str, int] = {}
        for callback in self.pending.values():
            if callback.state == "waiting":
                counts[callback.queue] = counts.get(callback.queue, 0) + 1
        return counts

    def is_ours(self, channel: str) -> bool:
        return channel.startswith("Local/wait@yht-callback-wait")

    # -- AMI events ------------------------------------------------------------

    def handle(self, event: Message) -> None:
        name = event.get("Event", "")
        if name == "UserEvent" and event.get("UserEvent") == USER_EVENT:
            self._on_request(event)
        elif name == "AgentConnect":
            self._on_agent(event)
        elif name == "DialEnd":
            self._on_dial_end(event)

    def _on_request(self, event: Message) -> None:
        call = self.tracker.by_channel(event.get("Channel", ""))
        if call is None:
            log.routing.warning("callback request from an unknown call: ignored")
            return
        callback = Callback(
            f"yhtcb-{self._boot}-{next(self._ids)}",
            call,
            queue=event.get("Desk") or call.queue,
            priority=_int(event.get("Priority")),
            max_penalty=event.get("MaxPenalty", ""),
        )
        self.pending[callback.id] = callback
        self.tracker.callback_requested(
            call, {"desk": callback.queue, "callback": callback.id}
        )
        log.routing.info(
            "call %s: callback requested for %s (desk %s)",
            call.ticket_number,
            log.mask_number(call.caller_number),
            callback.queue,
        )
        self._owned.spawn(self._place(callback), callback.id)

    def _find(self, uniqueid: str) -> Callback | None:
        return self.pending.get(uniqueid.rsplit("-", 1)[0])

    def _on_agent(self, event: Message) -> None:
        callback = self._find(event.get("Uniqueid", ""))
        if callback is None or event.get("Uniqueid") != callback.wait_id:
            return
        callback.agent = extension_of(event.get("Interface", ""))
        callback.state = "dialling"
        self.tracker.note(
            callback.call,
            "callback_agent",
            {"agent": callback.agent, "callback": callback.id},
        )
        log.routing.info(
            "callback %s: agent %s free, calling %s back",
            callback.id,
            callback.agent,
            log.mask_number(callback.call.caller_number),
        )

    def _on_dial_end(self, event: Message) -> None:
        callback = self._find(event.get("Uniqueid", ""))
        if callback is None or event.get("Uniqueid") != callback.dial_id:
            return
        status = event.get("DialStatus", "")
        if status == "ANSWER":
            callback.state = "connected"
            self.tracker.note(
                callback.call,
                "callback_connected",
                {"agent": callback.agent, "callback": callback.id},
            )
            self._later_update(callback)
        else:
            callback.state = "failed"
            self.tracker.note(
                callback.call,
                "callback_failed",
                {"agent": callback.agent, "status": status, "callback": callback.id},
            )
        log.routing.info("callback %s: %s", callback.id, callback.state)
        self.pending.pop(callback.id, None)

    def _later_update(self, callback: Callback) -> None:
        async def write() -> None:
            try:
                await self.tracker.store.update(
                    callback.call.linkedid, agent=callback.agent
                )
            except TicketStoreError as exc:
                log.tickets.warning("callback %s: %s", callback.id, exc)

        self._owned.spawn(write(), f"{callback.id} ticket")

    # -- placing the callback ----------------------------------------------------

    async def _place(self, callback: Callback) -> None:
        call = callback.call
        try:
            # The number goes into a Dial() string: ',' '&' or '/' would add
            # options or destinations. Refused like a callback never placed,
            # so the ticket says the caller still waits for a call.
            number = dialable_number(call.caller_number)
        except ValueError:
            if self.pending.pop(callback.id, None) is not None:
                self.tracker.note(
                    call,
                    "callback_failed",
                    {"callback": callback.id, "status": "not placed: not dialable"},
                )
                log.routing.warning(
                    "callback %s not placed: caller number %r is not dialable",
                    callback.id,
                    log.mask_number(call.caller_number),
                )
            return
        try:
            position = await self._position(callback)
            headers = {
                "Channel": "Local/wait@yht-callback-wait",
                "Context": "yht-callback-dial",
                "Exten": "s",
                "Priority": 1,
                "ChannelId": callback.dial_id,
                "OtherChannelId": callback.wait_id,
                "CallerID": f'"{self.caller_id}" <{self.caller_id}>',
                "Timeout": int(MAX_WAIT * 1000),
                "Variable": [
                    f"YHT_DESK={callback.queue}",
                    f"YHT_PRIORITY={callback.priority}",
                    f"YHT_POSITION={position}",
                    f"YHT_MAX_PENALTY={callback.max_penalty}",
                    f"YHT_CALLBACK_DIAL={self.dial(number)}",
                    f"YHT_TICKET={call.ticket_number}",
                ],
            }
            self.tracker.note(
                call,
                "callback_queued",
                {
                    "callback": callback.id,
                    "queue": callback.queue,
                    "position": position,
                },
            )
            result = await self.session.originate(headers, timeout=MAX_WAIT + 60)
        except AmiError as exc:
            result = None
            reason = str(exc)
        else:
            reason = result.reason
        if result is None or not result.ok:
            # Never answered by an agent within MAX_WAIT, or Asterisk refused.
            if self.pending.pop(callback.id, None) is not None:
                self.tracker.note(
                    call,
                    "callback_failed",
                    {"callback": callback.id, "status": f"not placed: {reason}"},
                )
                log.routing.warning("callback %s not placed: %s", callback.id, reason)

    async def _position(self, callback: Callback) -> int:
        """Behind those who waited longer than the caller, ahead of the rest."""
        call = callback.call
        waited = self.clock() - (call.queued_at or self.clock())
        response = await queue_status(self.session, callback.queue)
        entries = [
            (_int(e.get("Priority")), float(_int(e.get("Wait"))))
            for e in getattr(response, "events", [])
            if e.get("Event") == "QueueEntry" and e.get("Queue") == callback.queue
        ]
        return position_by_wait(entries, callback.priority, waited)


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
