"""Warm transfers over AMI: Asterisk's own attended transfer, driven by us.

The agent's key (features.conf ``yht-key-*`` -> ``UserEvent YhtTransferKey``)
or ``POST /calls/{id}/transfer`` starts one: we set ``__YHT_XFER_*`` on the
agent's channel and send ``Atxfer`` into ``yht-transfer``, whose Local channel
dials the target. The caller is held (music); from then on Asterisk's
bridge_basic does the transfer and we watch it:

- complete: we hang up the agent's channel, Asterisk bridges caller and target;
- three-way: we play the atxferthreeway code on the agent's channel;
- abort: ``CancelAtxfer``; the agent is back with the caller;
- busy, no answer, unreachable: Dial() ends, the consultation leg hangs up
  and Asterisk puts the agent back with the caller;
- the agent hangs up while the target rings: Asterisk connects the caller
  when the target answers; if it never does, yht-transfer sends the caller
  back to the desk's queue at the front (ChannelRedirect) and we record it;
- the caller hangs up (case 18): we hang up the consultation leg and the
  agent's channel at once; a late answer after a cancel is hung up too.

The decisions are :class:`routing.transfer.Transfer`'s; this module applies
them, writes the ticket's transfer segment and publishes ``transfer.*``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from panoramisk.message import Message

from ivr import log
from ivr.ami.session import live_channels
from ivr.calls import Call, CallTracker
from ivr.errors import AmiError, HotlineError
from ivr.tasks import TaskOwner
from ivr.tickets import now_iso
from routing import transfer as rules
from routing.agents import extension_of
from routing.transfer import Target, Transfer

TRANSFER_CONTEXT = "yht-transfer"
TRANSFER_EXTEN = "1"
# The Local channels of a consultation: Local/1@yht-transfer-0000002a;1 and ;2.
CONSULT_PREFIX = f"Local/{TRANSFER_EXTEN}@{TRANSFER_CONTEXT}-"
# The builtin codes of features.conf, played on the agent's channel.
THREEWAY_CODE = "*3"
# Seconds to wait for the caller's Hangup after the consultation leg's.
CONSULT_END_GRACE = 0.5


class TransferError(HotlineError):
    """A transfer request that cannot be done; ``status`` is for the API."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


@dataclass
class Running:
    transfer: Transfer
    call: Call
    target: Target
    agent: str  # the agent's extension
    agent_channel: str
    started_iso: str
    consult: list[str] = field(default_factory=list)  # Local ;1, ;2, target
    answered_iso: str = ""
    # From the menu (a dial plan "transfer" action): the caller's own channel
    # dials the target, no agent is on the call.
    direct: bool = False
    settled: float = 0.0  # when the caller went to the target (monotonic)
    # A desk target (case 16): the agent of that desk who answered the
    # consultation, (channel, extension, queue), and when (monotonic).
    desk_agent: tuple[str, str, str] | None = None
    desk_answered: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class TransferDesk:
    def __init__(
        self,
        session,
        tracker: CallTracker,
        bus,
        targets: tuple[Target, ...],
        *,
        handoff=None,
    ) -> None:
        self.session = session
        self.tracker = tracker
        self.bus = bus
        self.targets = {t.name: t for t in targets}
        self.by_key = {t.key: t for t in targets if t.key}
        self.handoff = handoff  # an ivr.handoff.Handoff: records to the target
        self.running: dict[str, Running] = {}  # by the call's linkedid
        self.settled: dict[str, Running] = {}  # lately ended, by linkedid
        # linkedid -> (agent channel, extension), from AgentConnect.
        self.agent_legs: dict[str, tuple[str, str]] = {}
        self._ids = itertools.count(1)
        self._tasks = TaskOwner(log.routing)

    async def run(self) -> None:
        await self._tasks.run()

    # -- requests ----------------------------------------------------------

    def find_call(self, call_id: str) -> Call | None:
        """A live call by linkedid or ticket number."""
        for call in self.tracker.calls.values():
            if call_id in (call.linkedid, call.ticket_number):
                return call
        return None

    async def request(
        self, call_id: str, target_name: str, action: str, *, agent: str | None = None
    ) -> dict:
        """``start``, ``complete``, ``threeway`` or ``abort``; TransferError.

        With ``agent`` (an agent's own session) only that agent's call may be
        transferred.
        """
        call = self.find_call(call_id)
        if call is None:
            raise TransferError(404, "no_such_call", f"no live call {call_id!r}")
        if agent is not None and agent != self.agent_of(call):
            # The same answer as for no call: ticket numbers are guessable.
            raise TransferError(404, "no_such_call", f"no live call {call_id!r}")
        if action == "start":
            target = self.targets.get(target_name)
            if target is None:
                raise TransferError(
                    404,
                    "no_such_target",
                    f"no transfer target {target_name!r}; "
                    f"known: {', '.join(sorted(self.targets)) or 'none'}",
                )
            running = await self.start(call, target)
            return self.describe(running)
        running = self.running.get(call.linkedid)
        if running is None or running.direct:
            raise TransferError(409, "no_transfer", f"call {call_id} has no transfer")
        if target_name and target_name != running.target.name:
            raise TransferError(
                409,
                "other_target",
                f"call {call_id} is being transferred to {running.target.name}",
            )
        if action == "abort":
            self._feed(running, rules.CANCEL, "cancelled by the agent")
        elif action == "complete":
            if running.transfer.state not in ("consulting", "dialing", "threeway"):
                raise TransferError(409, "not_now", "the transfer cannot complete now")
            # The agent leaves: Asterisk bridges the caller with the target (or
            # connects them when the target answers).
            await self._hangup(running.agent_channel)
        elif action == "threeway":
            if running.transfer.state != "consulting":
                raise TransferError(
                    409, "not_answered", "three-way needs the target to have answered"
                )
            await self._play_code(running.agent_channel, THREEWAY_CODE)
        else:
            raise TransferError(400, "bad_action", f"unknown action {action!r}")
        return self.describe(running)

    def agent_of(self, call: Call) -> str:
        """The extension of the agent talking with the caller now."""
        leg = self.agent_legs.get(call.linkedid)
        return leg[1] if leg else call.agent

    async def start(self, call: Call, target: Target) -> Running:
        if call.linkedid in self.running:
            raise TransferError(
                409, "busy", f"call {call.label} is already transferring"
            )
        leg = self.agent_legs.get(call.linkedid)
        if call.phase != "answered" or leg is None:
            raise TransferError(409, "not_answered", f"call {call.label} has no agent")
        transfer = Transfer(
            f"{call.linkedid}-{next(self._ids)}", target.name, time.monotonic()
        )
        running = Running(transfer, call, target, leg[1], leg[0], now_iso())
        self.running[call.linkedid] = running
        variables = {
            "__YHT_XFER_DIAL": target.dial,
            "__YHT_XFER_TIMEOUT": str(target.dial_timeout),
            "__YHT_XFER_ID": transfer.id,
            # yht-transfer requeues the caller if the agent left and the
            # target never answered (docs/transfers.md).
            "__YHT_XFER_AGENT": running.agent_channel,
            "__YHT_XFER_CALLER": call.channel,
        }
        # Announced before Asterisk is asked: its answer events may come
        # before Atxfer's response, and must follow "started".
        self._publish(running, "transfer.started", {})
        self.tracker.note(
            call,
            "transfer_started",
            {"transfer": transfer.id, "target": target.name, "agent": running.agent},
        )
        try:
            for name, value in variables.items():
                await self.session.action(
                    "Setvar",
                    {
                        "Channel": running.agent_channel,
                        "Variable": name,
                        "Value": value,
                    },
                )
            await self.session.action(
                "Atxfer",
                {
                    "Channel": running.agent_channel,
                    "Exten": TRANSFER_EXTEN,
                    "Context": TRANSFER_CONTEXT,
                },
            )
        except AmiError as exc:
            self._feed(running, rules.REFUSED, str(exc))
            raise TransferError(
                502, "pbx_refused", f"Asterisk refused: {exc}"
            ) from None
        log.routing.info(
            "call %s: agent %s transfers to %s", call.label, running.agent, target.name
        )
        if self.handoff is not None:
            self._tasks.spawn(self._send_handoff(running), name="handoff-send")
        return running

    def direct(self, call: Call, target_name: str) -> dict[str, str] | None:
        """The menu sends the caller to ``target_name``: the channel variables
        for yht-hotline's Dial(), or None if no such target is configured."""
        target = self.targets.get(target_name)
        if target is None or call.linkedid in self.running:
            return None
        transfer = Transfer(
            f"{call.linkedid}-{next(self._ids)}", target.name, time.monotonic()
        )
        running = Running(transfer, call, target, "", "", now_iso(), direct=True)
        self.running[call.linkedid] = running
        self._publish(running, "transfer.started", {"from": "menu"})
        self.tracker.note(
            call,
            "transfer_started",
            {"transfer": transfer.id, "target": target.name, "from": "menu"},
        )
        if self.handoff is not None:
            self._tasks.spawn(self._send_handoff(running), name="handoff-send")
        return {
            "YHT_DIRECT_DIAL": target.dial,
            "YHT_DIRECT_TIMEOUT": str(target.dial_timeout),
        }

    async def _send_handoff(self, running: Running) -> None:
        # The ticket's writes queued so far (answer, routing) come first.
        await self.tracker.drain()
        await self.handoff.send(
            running.call.linkedid, running.target.name, running.transfer.id
        )

    def describe(self, running: Running) -> dict:
        t = running.transfer
        return {
            "transfer": t.id,
            "call": running.call.linkedid,
            "ticket": running.call.ticket_number,
            "target": running.target.name,
            "state": t.state,
            "outcome": t.outcome or None,
        }

    # -- AMI events -----------------------------------------------------------

    def handle(self, event: Message) -> None:
        name = event.get("Event", "")
        if name == "AgentConnect":
            linkedid = event.get("Linkedid", "")
            channel = event.get("DestChannel", "")
            running = self.running.get(linkedid)
            if running is not None and _is_desk_leg(running, event.get("Channel", "")):
                self._desk_agent(running, event)
                return
            if linkedid and channel:
                extension = extension_of(event.get("Interface", ""))
                self.agent_legs[linkedid] = (channel, extension)
            return
        if name == "UserEvent" and event.get("UserEvent") == "YhtTransferKey":
            self._on_key(event)
            return
        # AttendedTransfer names each party's linkedid, not its own.
        linkedid = event.get("Linkedid") or event.get("OrigTransfererLinkedid", "")
        # A settled transfer still hears its late events (an answer after a
        # cancel is hung up).
        running = self.running.get(linkedid) or self.settled.get(linkedid)
        if running is None:
            if name == "Hangup":
                self.agent_legs.pop(linkedid, None)
            return
        channel = event.get("Channel", "")
        if name == "Newchannel" and channel.startswith(CONSULT_PREFIX):
            running.consult.append(channel)
        elif name == "DialBegin" and (
            channel in running.consult
            or (running.direct and channel == running.call.channel)
        ):
            running.consult.append(event.get("DestChannel", ""))
        elif name == "DialEnd" and running.direct and channel == running.call.channel:
            self._direct_dial_ended(running, event.get("DialStatus", ""))
        elif (
            name == "DialEnd" and channel in running.consult and channel.endswith(";2")
        ):
            status = event.get("DialStatus", "")
            if status == "ANSWER":
                running.answered_iso = now_iso()
                self._feed(running, rules.ANSWERED)
            elif status == "CANCEL":
                # Someone hung up the consultation leg: who, the next events say.
                self._consult_ended_later(running)
            elif status:
                self._feed(running, rules.DIAL_FAILED, status)
        elif name == "AttendedTransfer":
            if running.agent_channel not in (
                event.get("OrigTransfererChannel"),
                event.get("SecondTransfererChannel"),
            ):
                return
            if event.get("Result") != "Success":
                return
            fact = (
                rules.THREEWAY
                if event.get("DestType") == "Threeway"
                else rules.COMPLETED
            )
            self._feed(running, fact, "agent left; caller with target")
        elif name == "Hangup":
            if channel == running.call.channel:
                self._feed(running, rules.CALLER_GONE)
                self._talk_ended(running)
                self._finish(running)
                self.agent_legs.pop(linkedid, None)
            elif channel == running.agent_channel:
                self._feed(running, rules.AGENT_GONE)
            elif running.consult and channel == running.consult[0]:
                self._consult_ended_later(running)

    def _desk_agent(self, running: Running, event: Message) -> None:
        """Case 16: an agent of the target desk answered the consultation."""
        extension = extension_of(event.get("Interface", ""))
        running.desk_agent = (
            event.get("DestChannel", ""),
            extension,
            event.get("Queue", ""),
        )
        running.desk_answered = time.monotonic()
        log.routing.info(
            "call %s: agent %s of desk %s answered the transfer",
            running.call.label,
            extension,
            running.target.desk,
        )

    def _agent_segments(self, running: Running) -> None:
        """Case 16: the first agent's segment ends when the caller is handed
        to the desk agent, who may now transfer the caller in turn."""
        call, desk_agent = running.call, running.desk_agent
        if desk_agent is None:
            return
        started = call.answered_at or running.transfer.started_at
        self.tracker.note(
            call,
            "agent_segment",
            {
                "agent": running.agent,
                "desk": call.queue,
                "seconds": round(time.monotonic() - started, 3),
                "transfer": running.transfer.id,
            },
        )
        self.agent_legs[call.linkedid] = desk_agent[:2]

    def _direct_dial_ended(self, running: Running, status: str) -> None:
        if status == "ANSWER":
            running.answered_iso = now_iso()
            self._feed(running, rules.ANSWERED)
            # The target took the call: the ticket's call was answered.
            running.call.phase = "answered"
            self._feed(running, rules.COMPLETED, "the target answered the caller")
        elif status == "CANCEL":
            # Only the caller can cancel their own Dial(): they hung up.
            self._feed(running, rules.CALLER_GONE)
        elif status:
            # The dialplan sends the caller to the general desk, at the front.
            self._feed(running, rules.DIAL_FAILED, status)

    def _consult_ended_later(self, running: Running) -> None:
        """The consultation leg ended; decide a moment later.

        When the caller hangs up, Asterisk ends the consultation itself and
        the leg's Hangup can come before the caller's: the caller's wins if it
        follows within ``CONSULT_END_GRACE`` (case 18, "abandoned").
        """

        async def later() -> None:
            await asyncio.sleep(CONSULT_END_GRACE)
            self._feed(running, rules.CONSULT_ENDED)

        self._tasks.spawn(later(), name="transfer-consult-ended")

    def _on_key(self, event: Message) -> None:
        linkedid = event.get("Linkedid", "")
        leg = self.agent_legs.get(linkedid)
        target = self.by_key.get(event.get("Key", ""))
        call = self.find_call(linkedid)
        # Only the agent's own channel may ask (the caller never has the keys).
        if (
            target is None
            or call is None
            or leg is None
            or event.get("Channel") != leg[0]
        ):
            log.routing.warning(
                "transfer key %r on %s ignored", event.get("Key"), event.get("Channel")
            )
            return
        self._tasks.spawn(self._start_quietly(call, target), name="transfer-key")

    async def _start_quietly(self, call: Call, target: Target) -> None:
        try:
            await self.start(call, target)
        except TransferError as exc:
            log.routing.warning("transfer key on call %s: %s", call.label, exc)

    # -- after an AMI reconnect ---------------------------------------------------

    async def resync(self) -> None:
        """Events were missed while the AMI link was down: settle or carry on
        each transfer we follow from the channels Asterisk still has."""
        if not self.running:
            return
        try:
            channels = await live_channels(self.session)
        except AmiError as exc:
            log.routing.warning("transfers: cannot list channels: %s", exc)
            return
        self.reconcile(channels)

    def reconcile(self, channels: list) -> None:
        """Apply :func:`routing.transfer.after_reconnect` to each transfer, given
        the ``CoreShowChannel`` events of a channel listing."""
        live = {e.get("Channel", ""): e for e in channels}
        for running in list(self.running.values()):
            call = running.call
            caller = live.get(call.channel)
            if running.direct:
                self._reconcile_direct(running, caller, live)
                continue
            consult = self._consult_channels(running, live)
            for channel in consult:
                if channel not in running.consult:
                    running.consult.append(channel)
            bridge = caller.get("BridgeId", "") if caller else ""
            mates = [
                c
                for c, e in live.items()
                if bridge and c != call.channel and e.get("BridgeId") == bridge
            ]
            seen = rules.Seen(
                caller_up=caller is not None,
                agent_up=running.agent_channel in live,
                consult_up=bool(consult),
                target_answered=any(
                    live[c].get("ChannelState") == "6" for c in consult
                ),
                caller_with_target=any(c in consult for c in mates),
                caller_alone=bool(bridge) and not mates,
            )
            facts, actions = rules.after_reconnect(running.transfer.state, seen)
            if facts or actions:
                log.routing.info(
                    "call %s: transfer to %s after reconnect: %s",
                    call.label,
                    running.target.name,
                    ", ".join([f for f, _ in facts] + actions),
                )
            if rules.REQUEUE_CALLER in actions:
                running.transfer.requeued = True
                self._tasks.spawn(self._requeue(call.channel), name="transfer-requeue")
            for fact, detail in facts:
                self._feed(running, fact, detail)
            if not seen.caller_up:
                self._talk_ended(running)
                self._finish(running)
                self.agent_legs.pop(call.linkedid, None)

    def _consult_channels(self, running: Running, live: dict) -> list[str]:
        """The consultation's channels still up: the Local legs and the
        target's, all on the call's linkedid."""
        target = _channel_prefix(running.target.dial)
        return [
            channel
            for channel, event in live.items()
            if channel in running.consult
            or (
                event.get("Linkedid") == running.call.linkedid
                and channel.startswith((CONSULT_PREFIX, target))
            )
        ]

    def _reconcile_direct(self, running: Running, caller, live: dict) -> None:
        """A menu transfer: the caller's own Dial() to the target."""
        if caller is None:
            self._feed(running, rules.CALLER_GONE)
            self._talk_ended(running)
            self._finish(running)
            return
        bridge = caller.get("BridgeId", "")
        target = _channel_prefix(running.target.dial)
        if bridge and any(
            e.get("BridgeId") == bridge and c.startswith(target)
            for c, e in live.items()
        ):
            self._direct_dial_ended(running, "ANSWER")
        elif caller.get("Application") != "Dial":
            # Dial() ended while we were away: the dialplan went on to the desk.
            self._direct_dial_ended(running, rules.AWAY)

    async def _requeue(self, channel: str) -> None:
        try:
            await self.session.action(
                "Redirect",
                {
                    "Channel": channel,
                    "Context": "yht-hotline",
                    "Exten": "12345",
                    "Priority": "requeue",
                },
            )
        except AmiError as exc:
            log.routing.warning("requeue of %s: %s", channel, exc)

    # -- applying decisions -----------------------------------------------------

    def _feed(self, running: Running, fact: str, detail: str = "") -> None:
        transfer = running.transfer
        before = (transfer.state, transfer.outcome)
        actions = transfer.on(fact, time.monotonic(), detail)
        for action in actions:
            self._tasks.spawn(self._apply(running, action), name=f"transfer-{action}")
        if (transfer.state, transfer.outcome) != before and transfer.outcome:
            self._settled(running)

    async def _apply(self, running: Running, action: str) -> None:
        if action == rules.CANCEL_ATXFER:
            try:
                await self.session.action(
                    "CancelAtxfer", {"Channel": running.agent_channel}
                )
            except AmiError as exc:
                log.routing.info("CancelAtxfer on %s: %s", running.agent_channel, exc)
        elif action == rules.HANGUP_CONSULT:
            # ;1 first: Dial() on ;2 stops and the target stops ringing.
            for channel in list(running.consult):
                if channel.endswith(";2"):
                    continue
                await self._hangup(channel)
        elif action == rules.HANGUP_AGENT and running.agent_channel:
            await self._hangup(running.agent_channel)

    async def _hangup(self, channel: str) -> None:
        try:
            await self.session.action("Hangup", {"Channel": channel, "Cause": "16"})
        except AmiError as exc:
            log.routing.debug("hangup %s: %s", channel, exc)

    async def _play_code(self, channel: str, code: str) -> None:
        for digit in code:
            try:
                await self.session.action(
                    "PlayDTMF",
                    {
                        "Channel": channel,
                        "Digit": digit,
                        "Duration": "100",
                        "Receive": "true",
                    },
                )
            except AmiError as exc:
                raise TransferError(
                    502, "pbx_refused", f"Asterisk refused: {exc}"
                ) from None
            await asyncio.sleep(0.15)

    def _settled(self, running: Running) -> None:
        """An outcome is known: the ticket's segment and the event, once each."""
        transfer = running.transfer
        running.settled = time.monotonic()
        if transfer.state == "threeway":
            self._publish(running, "transfer.threeway", {})
            self._note_segment(running, final=False)
            return
        self._publish(
            running, rules.event_type(transfer.outcome), {"reason": transfer.reason}
        )
        self._note_segment(running, final=True)
        log.routing.info(
            "call %s: transfer to %s %s (%s)",
            running.call.label,
            running.target.name,
            transfer.outcome,
            transfer.reason,
        )
        if transfer.outcome == "completed":
            self._agent_segments(running)
        else:
            self._finish(running)

    def _note_segment(self, running: Running, *, final: bool) -> None:
        segment = {
            **running.transfer.segment(),
            "agent": running.agent,
            "started_at": running.started_iso,
            "answered_at": running.answered_iso or None,
            "ended_at": now_iso() if final else None,
            # Who was with the caller after the transfer settled.
            "caller_with": {
                "completed": running.target.name,
                "threeway": f"{running.agent}+{running.target.name}",
                "abandoned": None,
            }.get(running.transfer.outcome, running.agent or "general desk"),
        }
        if running.transfer.requeued:
            segment["caller_with"] = f"{running.call.queue or 'general'} queue"
        if running.desk_agent is not None:
            # Case 16: who of the target desk answered.
            segment["desk_agent"] = running.desk_agent[1]
        if running.direct:
            segment["from"] = "menu"
        self.tracker.note(running.call, "transfer", segment)

    def _talk_ended(self, running: Running) -> None:
        """The caller left after a hand-over: how long they talked with whom."""
        transfer = running.transfer
        if transfer.outcome not in ("completed", "threeway") or not running.settled:
            return
        if running.desk_agent is not None and transfer.outcome == "completed":
            # Case 16: the desk agent's segment, from when they answered.
            self.tracker.note(
                running.call,
                "agent_segment",
                {
                    "agent": running.desk_agent[1],
                    "desk": running.desk_agent[2],
                    "seconds": round(time.monotonic() - running.desk_answered, 3),
                    "transfer": transfer.id,
                },
            )
        self.tracker.note(
            running.call,
            "transfer_talk",
            {
                "transfer": transfer.id,
                "with": running.target.name
                if transfer.outcome == "completed"
                else f"{running.agent}+{running.target.name}",
                "seconds": round(time.monotonic() - running.settled, 3),
            },
        )

    def _finish(self, running: Running) -> None:
        if self.running.get(running.call.linkedid) is running:
            del self.running[running.call.linkedid]
            if not running.direct:
                # A menu transfer's caller goes on to a queue, whose dials are
                # not this transfer's.
                self.settled[running.call.linkedid] = running
            while len(self.settled) > 200:
                del self.settled[next(iter(self.settled))]
            running.done.set()

    def _publish(self, running: Running, type: str, data: dict) -> None:
        self.bus.publish(
            type,
            f"events/{running.call.linkedid}",
            {
                "linkedid": running.call.linkedid,
                "ticket": running.call.ticket_number,
                "transfer": running.transfer.id,
                "target": running.target.name,
                "agent": running.agent,
                **data,
            },
        )


def _channel_prefix(dial: str) -> str:
    """How the channels a Dial() string makes are named: ``PJSIP/110@trunk-110``
    -> ``PJSIP/trunk-110-``, ``Local/1@ctx/n`` -> ``Local/1@ctx-``."""
    tech, _, rest = dial.partition("/")
    rest = rest.split("/", 1)[0]
    if tech == "PJSIP":
        return f"PJSIP/{rest.rsplit('@', 1)[-1]}-"
    return f"{tech}/{rest}-"


def _is_desk_leg(running: Running, channel: str) -> bool:
    """The consultation's channel waiting in a desk target's queue."""
    return bool(running.target.desk) and channel.startswith(
        _channel_prefix(running.target.dial)
    )
