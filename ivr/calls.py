"""Follow every hotline call through AMI events and keep its ticket true.

The tracker sees a call arrive (``Newchannel`` in the inbound context for the
hotline number), its keys, its time in the menu and in a queue, the agent who
answers and the hangup, and writes each step to the ticket and to MQTT. It
works whether or not the IVR server drives the call: a call that reached the
general desk while the server was away is adopted on reconnect.

Ticket writes are async but AMI handlers are not: handlers put jobs on one
FIFO that a single owned task drains, so a call's writes keep their order.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from panoramisk.message import Message

from ivr import log
from ivr.ami.session import live_channels
from ivr.dtmf import DtmfDetector
from ivr.errors import AgiHangup, AmiError
from ivr.retry import retry_store
from ivr.tickets import TicketStore, now_iso
from routing.agents import extension_of

# A busy or failing store is tried again after these pauses (seconds).
WRITE_RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)

# What phase a call was in decides its outcome when it ends.
OUTCOME_BY_PHASE = {
    "arrived": "abandoned_on_arrival",
    "menu": "abandoned_in_menu",
    "queued": "abandoned_in_queue",
    "answered": "answered",
    "callback": "callback_requested",
}


class EventSink(Protocol):
    def publish(self, type: str, topic: str, data: dict) -> object: ...


@dataclass
class Call:
    linkedid: str
    channel: str
    caller_number: str
    caller_name: str
    arrived_at: str
    phase: str = "arrived"
    desk: str = ""
    priority: int = 0
    queue: str = ""
    agent: str = ""
    keys: list[dict] = field(default_factory=list)
    ticket_number: str = ""
    repeat_of: str = ""  # the earlier work order this call's ticket repeats
    # Monotonic clock readings: AMI gives whole seconds, tickets want better.
    queued_at: float | None = None
    answered_at: float | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def label(self) -> str:
        """How logs name the call: its ticket number once there is one."""
        return self.ticket_number or self.linkedid

    ended: asyncio.Event = field(default_factory=asyncio.Event)


class CallTracker:
    def __init__(
        self,
        store: TicketStore,
        events: EventSink,
        *,
        inbound_context: str = "from-pstn",
        hotline_number: str = "12345",
    ) -> None:
        self.store = store
        self.events = events
        self.inbound_context = inbound_context
        self.hotline_number = hotline_number
        self.calls: dict[str, Call] = {}  # by caller channel
        self._dtmf = DtmfDetector()
        # Channels whose Hangup we handled, lately: never adopted again.
        self._ended: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._jobs: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self.calls_seen = 0
        self.calls_ended = 0
        # Sets a channel variable (the server's AMI Setvar): a ticket number
        # known only after the journal applied the ticket's opening.
        self.set_channel_variable: Callable[[str, str, str], Awaitable] | None = None

    # -- the owned worker ------------------------------------------------------

    async def run(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await self._attempt(job)
            except Exception:
                log.tickets.exception("a call-tracking job failed")
            finally:
                self._jobs.task_done()

    async def _attempt(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run a write, retrying while the store is busy or failing.

        A failed write rolls back whole, so trying again is safe; the jobs
        after it wait, which keeps each call's writes in order.
        """
        await retry_store(job, "a ticket write", WRITE_RETRY_DELAYS)

    async def drain(self) -> None:
        """Wait until every queued ticket write is done."""
        await self._jobs.join()

    def _later(self, job: Callable[[], Awaitable[None]]) -> None:
        self._jobs.put_nowait(job)

    # -- lookups used by the IVR engine ----------------------------------------

    def by_channel(self, channel: str) -> Call | None:
        return self.calls.get(channel)

    async def call_for(
        self, channel: str, linkedid: str, env: dict, *, wait: bool = True
    ) -> Call:
        """The tracked call of an AGI channel, adopting it if we missed its arrival.

        With ``wait`` it returns once the call's ticket exists.
        """
        call = self.calls.get(channel)
        if call is None:
            if channel in self._ended:
                # Its Hangup was handled before the IVR asked: nothing to run.
                raise AgiHangup(f"{channel} hung up before its menu began")
            call = self._arrive(
                channel,
                linkedid,
                env.get("agi_callerid", ""),
                env.get("agi_calleridname", ""),
            )
        if wait:
            await call.opened.wait()
        return call

    # -- what the engine reports -----------------------------------------------

    def menu_entered(self, call: Call, menu: str) -> None:
        if call.phase == "arrived":
            call.phase = "menu"
            at = now_iso()
            self._later(lambda: self.store.update(call.linkedid, menu_entered_at=at))
        self._publish(call, "call.menu", {"menu": menu})

    def path(self, call: Call, path: list) -> None:
        snapshot = [list(entry) for entry in path]
        self._later(lambda: self.store.update(call.linkedid, ivr_path=snapshot))

    def routed(self, call: Call, desk: str, priority: int, reason: str) -> None:
        call.desk = desk
        call.priority = priority
        data = {"desk": desk, "priority": priority, "reason": reason}

        async def write() -> None:
            await self.store.update(
                call.linkedid, desk=desk, priority=priority, route_reason=reason
            )
            await self.store.record(call.linkedid, "routed", data)

        self._later(write)
        self._publish(call, "call.routed", data)
        log.routing.info(
            "call %s from %s routed to desk %s (%s)",
            call.ticket_number or call.linkedid,
            log.mask_number(call.caller_number),
            desk,
            reason,
        )

    def note(self, call: Call, kind: str, data: dict) -> None:
        self._later(lambda: self.store.record(call.linkedid, kind, data))

    def flag(self, call: Call, flag: str, kind: str, data: dict) -> None:
        """Put ``flag`` on the call's ticket, with a ``kind`` timeline event."""

        async def write() -> None:
            ticket = await self.store.get(call.linkedid, timeline=False)
            flags = list(ticket["flags"]) if ticket else []
            if flag not in flags:
                await self.store.update(call.linkedid, flags=[*flags, flag])
            await self.store.record(call.linkedid, kind, {"flag": flag, **data})

        self._later(write)
        self._publish(call, "call.flagged", {"flag": flag, **data})

    def callback_requested(self, call: Call, data: dict) -> None:
        """The caller asked to be called back: their hang-up is no abandon."""
        call.phase = "callback"
        self.note(call, "callback_requested", data)
        self._publish(call, "call.callback_requested", data)

    # -- AMI events ------------------------------------------------------------

    def handle(self, event: Message) -> None:
        name = event["Event"]
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, event)

    def _on_newchannel(self, event: Message) -> None:
        if (
            event.get("Context") != self.inbound_context
            or event.get("Exten") != self.hotline_number
        ):
            return
        self._arrive(
            event["Channel"],
            event.get("Linkedid") or event.get("Uniqueid", ""),
            event.get("CallerIDNum", ""),
            event.get("CallerIDName", ""),
        )

    def _arrive(self, channel: str, linkedid: str, number: str, name: str) -> Call:
        number = "" if number in ("<unknown>", "unknown") else number
        name = "" if name in ("<unknown>", "unknown") else name
        call = Call(linkedid, channel, number, name, now_iso())
        self.calls[channel] = call
        self.calls_seen += 1

        async def open_ticket() -> None:
            try:
                ticket = await self.store.open_ticket(
                    linkedid=linkedid,
                    channel=channel,
                    caller_number=number,
                    caller_name=name,
                    arrived_at=call.arrived_at,
                )
                call.ticket_number = ticket["number"]
                # The store linked a repeat caller's ticket to their last work
                # order; the agent's screen shows it with the caller's history.
                call.repeat_of = ticket.get("repeat_of") or ""
            finally:
                call.opened.set()
            self._publish_now(
                call,
                "call.arrived",
                {
                    "channel": channel,
                    "caller": number,
                    "ticket": call.ticket_number,
                    "repeat_of": call.repeat_of or None,
                },
            )

        self._later(open_ticket)
        log.ivr.info("call %s arrived from %s", linkedid, log.mask_number(number))
        return call

    def _on_dtmf(self, event: Message) -> None:
        call = self.calls.get(event.get("Channel", ""))
        if call is None:
            return
        digit = self._dtmf.feed(event, time.monotonic())
        if digit is None:
            return
        entry = {"key": digit, "at": now_iso()}
        if call.phase not in ("arrived", "menu"):
            # Not a menu choice: pressed in the queue, to the agent or in the
            # satisfaction survey.
            entry["during"] = call.phase
        call.keys.append(entry)
        keys = list(call.keys)
        self._later(lambda: self.store.update(call.linkedid, keys=keys))
        self._publish(call, "call.key", {"key": digit})

    def _on_queue_join(self, event: Message) -> None:
        call = self.calls.get(event.get("Channel", ""))
        if call is None:
            return
        if call.queued_at is not None:
            # Back in a queue after the router withdrew it (overflow, a
            # callback offer declined): the wait goes on from the first join.
            self._requeued(call, event.get("Queue", ""))
            return
        call.phase = "queued"
        call.queued_at = time.monotonic()
        call.queue = event.get("Queue", "")
        at = now_iso()
        data = {"queue": call.queue, "position": event.get("Position", "")}

        async def write() -> None:
            fields = {"queue": call.queue, "queue_entered_at": at}
            if not call.desk:
                # Reached the queue without the IVR (server away): the dialplan's
                # fallback desk is the desk.
                fields["desk"] = call.queue
                fields["route_reason"] = "server offline: dialplan fallback"
            await self.store.update(call.linkedid, **fields)
            await self.store.record(call.linkedid, "queued", data, at)

        self._later(write)
        self._publish(call, "call.queued", data)

    def _requeued(self, call: Call, queue: str) -> None:
        call.queue = queue
        data = {"queue": queue}

        async def write() -> None:
            await self.store.update(call.linkedid, queue=queue)
            await self.store.record(call.linkedid, "requeued", data)

        self._later(write)

    def _on_agent_connect(self, event: Message) -> None:
        call = self.calls.get(event.get("Channel", ""))
        if call is None:
            return
        call.phase = "answered"
        call.answered_at = time.monotonic()
        call.agent = extension_of(event.get("Interface", ""))
        at = now_iso()
        hold = _number(event.get("HoldTime"))
        if call.queued_at is not None:
            hold = round(call.answered_at - call.queued_at, 3)
        data = {
            "agent": call.agent,
            "agent_name": event.get("MemberName", ""),
            "queue": event.get("Queue", ""),
            "hold_time": hold,
        }

        async def write() -> None:
            await self.store.update(
                call.linkedid,
                agent=call.agent,
                agent_name=data["agent_name"],
                agent_answered_at=at,
                queue_wait=data["hold_time"],
            )
            await self.store.record(call.linkedid, "answered", data, at)

        self._later(write)
        self._publish(call, "call.answered", data)
        log.ivr.info(
            "call %s answered by agent %s after %ss in queue %s",
            call.ticket_number or call.linkedid,
            call.agent,
            data["hold_time"],
            data["queue"],
        )

    def _on_agent_complete(self, event: Message) -> None:
        call = self.calls.get(event.get("Channel", ""))
        if call is None:
            # Asterisk 22 now and then sends AgentComplete without the caller's
            # channel fields: find the call by the agent who had it.
            call = self.answered_by(extension_of(event.get("Interface", "")))
        if call is None:
            return
        talk = _number(event.get("TalkTime"))
        if call.answered_at is not None:
            talk = round(time.monotonic() - call.answered_at, 3)
        reason = event.get("Reason", "")

        async def write() -> None:
            await self.store.update(call.linkedid, talk_time=talk, ended_by=reason)
            await self.store.record(
                call.linkedid, "agent_complete", {"talk_time": talk, "ended_by": reason}
            )

        self._later(write)

    def _on_abandon(self, event: Message) -> None:
        call = self.calls.get(event.get("Channel", ""))
        if call is None:
            return
        data = {"queue": event.get("Queue", ""), "hold_time": event.get("HoldTime")}
        self._later(lambda: self.store.record(call.linkedid, "abandoned", data))

    def _on_hangup(self, event: Message) -> None:
        call = self.calls.pop(event.get("Channel", ""), None)
        if call is None:
            return
        self._ended[call.channel] = None
        while len(self._ended) > 1000:
            self._ended.popitem(last=False)
        self._dtmf.forget(call.channel)
        cause = _int(event.get("Cause"))
        self._end(call, OUTCOME_BY_PHASE[call.phase], cause, event.get("Cause-txt", ""))

    def _end(self, call: Call, outcome: str, cause: int | None, text: str) -> None:
        async def close() -> None:
            await call.opened.wait()
            ticket = await self.store.close_ticket(
                call.linkedid, outcome=outcome, cause=cause, cause_text=text
            )
            self.calls_ended += 1
            call.ended.set()
            if ticket is not None:
                self._publish_now(
                    call,
                    "call.ended",
                    {
                        "outcome": outcome,
                        "cause": cause,
                        "ticket": ticket["number"],
                        "agent": ticket["agent"],
                        "desk": ticket["desk"],
                    },
                )

        call.phase = "ended"
        self._later(close)

    # -- after a reconnect -----------------------------------------------------

    async def resync(self, session) -> None:
        """Reconcile calls and tickets with the channels Asterisk really has."""
        try:
            channels = await live_channels(session)
        except AmiError as exc:
            log.ivr.warning("cannot list channels after reconnect: %s", exc)
            return
        live = {e.get("Channel", ""): e for e in channels}
        for channel, call in list(self.calls.items()):
            if channel not in live:
                del self.calls[channel]
                self._end(call, "ended_by_system", None, "ended while AMI was away")
        for channel, event in live.items():
            if channel in self.calls:
                # Issue 8: events missed while the link was down (a queue
                # join, an agent answering) must not make an answered call
                # look abandoned when it ends.
                _catch_up(self.calls[channel], event)
                continue
            if event.get("Context") in (self.inbound_context, "hotline-ivr") or (
                event.get("Application") == "Queue" and channel.startswith("PJSIP/pstn")
            ):
                call = self._arrive(
                    channel,
                    event.get("Linkedid") or event.get("Uniqueid", ""),
                    event.get("CallerIDNum", ""),
                    event.get("CallerIDName", ""),
                )
                if event.get("Application") == "Queue":
                    call.phase = "queued"
                    if event.get("BridgeId"):
                        # Talking to an agent already (issue 8: the server
                        # came back mid-call): its end is no abandon.
                        call.phase = "answered"
                        call.agent = event.get("ConnectedLineNum", "")

        # Tickets still open in the store whose channel is gone.
        async def close_orphans() -> None:
            for ticket in await self.store.find(status="open"):
                if ticket["channel"] in live:
                    continue
                await self.store.close_ticket(
                    ticket["linkedid"],
                    outcome="ended_by_system",
                    cause_text="ended while the server was away",
                )

        self._later(close_orphans)

    # -- other components' writes on a call's ticket (issue 6: surveys) --------

    def answered_by(self, extension: str) -> Call | None:
        """The call agent ``extension`` is talking on, if any."""
        if not extension:
            return None
        for call in self.calls.values():
            if call.agent == extension and call.phase == "answered":
                return call
        return None

    def journal_pending(self) -> bool:
        """Whether ticket writes wait in the journal (issue 8): a ticket not
        found may be one whose opening is not applied yet."""
        journal = getattr(self.store, "journal", None)
        return bool(journal is not None and journal.pending)

    def ticket_opened_late(self, ticket: dict) -> None:
        """The journal applied the opening of a ticket: a call still up gets
        its number now (its events and the agent's screen need it)."""
        call = next(
            (c for c in self.calls.values() if c.linkedid == ticket.get("linkedid")),
            None,
        )
        if call is None or call.ticket_number:
            return
        call.ticket_number = ticket["number"]
        call.repeat_of = ticket.get("repeat_of") or ""
        log.tickets.info("call %s: ticket opened from the journal", call.label)
        self._publish_now(call, "call.ticket", {"ticket": call.ticket_number})
        tell = self.set_channel_variable
        if tell is not None:
            channel, number = call.channel, call.ticket_number

            async def tell_the_channel() -> None:
                try:
                    await tell(channel, "YHT_TICKET", number)
                except AmiError as exc:  # the call may have ended meanwhile
                    log.tickets.debug("YHT_TICKET on %s: %s", channel, exc)

            self._later(tell_the_channel)

    def in_order(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` after the writes queued before it, retried alike on a
        TicketStoreError: it must be safe to run again."""
        self._later(job)

    def publish_now(self, call: Call, type: str, data: dict) -> None:
        """Publish at once, with the call's linkedid and ticket (from a job)."""
        self._publish_now(call, type, data)

    def _publish(self, call: Call, type: str, data: dict) -> None:
        """Publish after the writes queued before it: a call's events keep
        their order, and carry the ticket number once the ticket exists."""

        async def publish() -> None:
            self._publish_now(call, type, data)

        self._later(publish)

    def _publish_now(self, call: Call, type: str, data: dict) -> None:
        self.events.publish(
            type,
            f"events/{call.linkedid}",
            {"linkedid": call.linkedid, "ticket": call.ticket_number, **data},
        )


def _catch_up(call: Call, event: Message) -> None:
    """Move a tracked call on to where CoreShowChannels says it is."""
    if event.get("Application") != "Queue" or call.phase not in (
        "arrived",
        "menu",
        "queued",
    ):
        return
    if event.get("BridgeId"):
        call.phase = "answered"
        call.agent = call.agent or event.get("ConnectedLineNum", "")
    else:
        call.phase = "queued"


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


_HANDLERS: dict[str, Callable[[CallTracker, Message], None]] = {
    "Newchannel": CallTracker._on_newchannel,
    "DTMFBegin": CallTracker._on_dtmf,
    "DTMFEnd": CallTracker._on_dtmf,
    "DTMF": CallTracker._on_dtmf,
    "QueueCallerJoin": CallTracker._on_queue_join,
    "AgentConnect": CallTracker._on_agent_connect,
    "AgentComplete": CallTracker._on_agent_complete,
    "QueueCallerAbandon": CallTracker._on_abandon,
    "Hangup": CallTracker._on_hangup,
}
