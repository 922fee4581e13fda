"""Agents on the desks: log in, log out, pause, wrap-up, applied over AMI.

Requests come from three places and meet in one book (:mod:`routing.agents`):

* the ``hotline agent`` command, over MQTT ``ivr/commands/agent/<action>``
  with a JSON body ``{"agent": "6001", "reason": "...", "reply_to": "..."}``;
* feature codes dialled on the agent's phone (``*1`` log in, ``*2`` log out,
  ``*3`` or ``*3<code>`` pause, ``*4`` unpause), which the dialplan reports as
  a ``UserEvent: YhtAgent``;
* app_queue's events: a phone ringing, a call connected, a call completed
  (which starts the router's wrap-up).

The book decides; the queue actions it returns go out in one FIFO that a
single owned task drains, so an agent's actions reach Asterisk in the order
they were decided. Each agent's state is published retained on MQTT
``ivr/status/agents/<extension>``. After every login to Asterisk the book is
reconciled with ``QueueStatus``: the first session adopts what Asterisk holds
(the server restarted), later ones re-apply the router's view (Asterisk
restarted and forgot its dynamic members).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk.message import Message

from ivr import log
from ivr.errors import AgentCommandError, AmiActionError, AmiError
from ivr.queues import ami_action, member_snapshot, queue_status
from routing.agents import (
    DEFAULT_PAUSE,
    PAUSE_CODES,
    Action,
    Agent,
    AgentBook,
    MemberSnapshot,
    extension_of,
    web_interface,
)

COMMANDS = ("login", "logout", "pause", "unpause")
USER_EVENT = "YhtAgent"

# Asterisk's answers to actions that find things already as we want them.
_ALREADY = ("already there", "not there", "not found", "no such channel")

Job = Callable[[], Awaitable[Any]]


class AgentDesk:
    """The agents' book, applied to Asterisk and published (see the module doc)."""

    def __init__(
        self,
        session,
        bus,
        book: AgentBook,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.bus = bus
        self.book = book
        self.clock = clock
        self._jobs: asyncio.Queue[tuple[Job, asyncio.Future]] = asyncio.Queue()
        self._timers: dict[str, asyncio.Task] = {}
        self._published: dict[str, tuple] = {}
        # Called after any change of an agent's state (desk statistics).
        self.on_change: list[Callable[[Agent], None]] = []

    # -- the owned worker --------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                job, done = await self._jobs.get()
                try:
                    result = await job()
                except AmiError as exc:
                    log.routing.warning("agent action not applied: %s", exc)
                    if not done.done():
                        done.set_exception(exc)
                except Exception as exc:
                    log.routing.exception("an agent job failed")
                    if not done.done():
                        done.set_exception(exc)
                else:
                    if not done.done():
                        done.set_result(result)
        finally:
            for task in self._timers.values():
                task.cancel()
            await asyncio.gather(*self._timers.values(), return_exceptions=True)
            self._timers.clear()

    def _submit(self, job: Job) -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        # Nobody may wait for it (event handlers): never "exception never
        # retrieved" for a failure already logged by the worker.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._jobs.put_nowait((job, done))
        return done

    def _send(self, actions: list[Action]) -> asyncio.Future | None:
        if not actions:
            return None
        actions = self._stamped(actions)

        async def apply() -> None:
            for action in actions:
                await self._apply(action)

        return self._submit(apply)

    def _stamped(self, actions: list[Action]) -> list[Action]:
        """The actions on each agent's queue interface as decided now (its
        browser phone's when it takes calls there)."""
        stamped = []
        for action in actions:
            agent = self.book.agents.get(action.extension)
            if not action.via and agent is not None and agent.phone != "sip":
                action = dataclasses.replace(action, via=agent.interface)
            stamped.append(action)
        return stamped

    async def _apply(self, action: Action) -> None:
        name, headers = ami_action(action)
        try:
            await self.session.action(name, headers)
        except AmiActionError as exc:
            if any(text in str(exc).lower() for text in _ALREADY):
                log.routing.debug("%s %s: %s", name, action.interface, exc)
                return
            log.routing.warning("%s for agent %s: %s", name, action.extension, exc)

    # -- requests ------------------------------------------------------------------

    async def command(
        self, action: str, extension: str, reason: str = "", *, source: str = "api"
    ) -> dict:
        """Do ``action`` for agent ``extension``; the agent's state after it.

        Raises AgentCommandError for an unknown agent or action. When
        Asterisk is away the change is kept and applied on reconnect.
        """
        agent, actions = self._decide(action, extension, reason, source)
        return await self._applied(agent, actions)

    async def _applied(self, agent: Agent, actions: list[Action]) -> dict:
        """Send ``actions``; the agent's state after them, with a note when
        Asterisk was not told yet."""
        pending = self._send(actions)
        note = ""
        if pending is not None:
            try:
                await pending
            except AmiError as exc:
                note = f"Asterisk not told yet ({exc}); applied on reconnect"
        return {**self.state_of(agent), "changed": bool(actions), "note": note}

    def _known_agent(self, extension: str) -> Agent:
        agent = self.book.agents.get(extension)
        if agent is None:
            known = ", ".join(sorted(self.book.agents))
            raise AgentCommandError(f"no agent {extension!r} (agents: {known})")
        return agent

    def _decide(
        self, action: str, extension: str, reason: str, source: str
    ) -> tuple[Agent, list[Action]]:
        if action not in COMMANDS:
            raise AgentCommandError(
                f"unknown agent action {action!r} (one of: {', '.join(COMMANDS)})"
            )
        agent = self._known_agent(extension)
        now = self.clock()
        if action == "login":
            actions = self.book.login(extension, now)
        elif action == "logout":
            actions = self.book.logout(extension)
        elif action == "pause":
            try:
                actions = self.book.pause(extension, reason, now)
            except ValueError as exc:
                raise AgentCommandError(str(exc)) from None
        else:
            actions = self.book.unpause(extension, now)
        log.routing.info(
            "agent %s: %s%s (from %s)",
            extension,
            action,
            f" ({agent.pause_reason})" if action == "pause" else "",
            source,
        )
        self._changed(agent)
        return agent, actions

    async def use_phone(
        self, extension: str, phone: str, *, source: str = "web"
    ) -> dict:
        """Agent ``extension`` takes queue calls on ``phone`` ("sip" or
        "web", the browser softphone ``PJSIP/web-<extension>``) from now on.

        Raises AgentCommandError for an unknown agent or phone, or during a call.
        """
        agent = self._known_agent(extension)
        try:
            actions = self.book.use_phone(extension, phone, self.clock())
        except ValueError as exc:
            raise AgentCommandError(str(exc)) from None
        log.routing.info(
            "agent %s: queue calls on %s (from %s)", extension, agent.interface, source
        )
        self._changed(agent)
        return await self._applied(agent, actions)

    async def on_command(self, topic: str, data: dict) -> None:
        """MQTT ``commands/agent/<action>``: do it, answer on ``reply_to``."""
        action = topic.rsplit("/", 1)[-1]
        reply_to = data.get("reply_to")
        try:
            result = {
                "ok": True,
                **await self.command(
                    action,
                    str(data.get("agent", "")),
                    str(data.get("reason") or ""),
                    source="mqtt",
                ),
            }
        except AgentCommandError as exc:
            result = {"ok": False, "agent": data.get("agent"), "message": str(exc)}
        if isinstance(reply_to, str) and reply_to.startswith("replies/"):
            self.bus.publish("agent.reply", reply_to, {"request": action, **result})

    # -- AMI events ----------------------------------------------------------------

    def handle(self, event: Message) -> None:
        name = event.get("Event", "")
        if name == "UserEvent":
            if event.get("UserEvent") == USER_EVENT:
                self._on_feature_code(event)
            return
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, event)

    def _on_feature_code(self, event: Message) -> None:
        # The browser phone's endpoint web-6001 is agent 6001 (issue 9).
        extension = extension_of(event.get("Agent", ""))
        request = event.get("Request", "")
        code = event.get("Code", "")
        reason = PAUSE_CODES.get(code, DEFAULT_PAUSE) if request == "pause" else ""

        try:
            _, actions = self._decide(request, extension, reason, "phone")
        except AgentCommandError as exc:
            log.routing.warning("feature code from %s refused: %s", extension, exc)
            return
        self._send(actions)

    def _agent(self, event: Message) -> Agent | None:
        return self.book.by_interface(
            event.get("Interface") or event.get("Location") or ""
        )

    def _on_called(self, event: Message) -> None:
        agent = self._agent(event)
        if agent is None:
            return
        self.book.called(
            agent.extension, event.get("Channel", ""), event.get("DestChannel", "")
        )
        self._changed(agent)

    def _on_ring_no_answer(self, event: Message) -> None:
        agent = self._agent(event)
        if agent is None:
            return
        self.book.ring_ended(agent.extension, event.get("Channel", ""))
        self._changed(agent)

    def _on_connect(self, event: Message) -> None:
        agent = self._agent(event)
        if agent is None:
            return
        self.book.connected(agent.extension, event.get("Channel", ""))
        self._changed(agent)

    def _on_complete(self, event: Message) -> None:
        agent = self._agent(event)
        if agent is None:
            return
        now = self.clock()
        actions = self.book.completed(
            agent.extension, event.get("Channel", ""), event.get("Queue", ""), now
        )
        self._send(actions)
        if agent.wrapup_until is not None:
            self._arm(agent)
            log.routing.info(
                "agent %s in wrap-up for %.0f s",
                agent.extension,
                agent.wrapup_until - now,
            )
        self._changed(agent)

    def _on_member_status(self, event: Message) -> None:
        agent = self._agent(event)
        if agent is None:
            return
        self.book.device_changed(agent.extension, event.get("Status", ""))
        if "Paused" in event:
            self._on_pause(event)  # publishes the change
        else:
            self._changed(agent)

    def _on_pause(self, event: Message) -> None:
        agent = self._agent(event)
        if agent is None:
            return
        actions = self.book.pause_seen(
            agent.extension,
            event.get("Queue", ""),
            event.get("Paused") == "1",
            event.get("PausedReason") or event.get("Reason") or "",
            self.clock(),
        )
        if actions:
            log.routing.warning(
                "agent %s paused for a wrap-up that is over: unpausing",
                agent.extension,
            )
            self._send(actions)
        self._changed(agent)

    def _on_device_state(self, event: Message) -> None:
        # Follows the phone whether or not it is in a queue (a logged-out
        # agent's phone too), unlike QueueMemberStatus.
        device = event.get("Device", "")
        if not device.startswith("PJSIP/"):
            return
        agent = self.book.by_interface(device)
        # Only the phone the agent takes queue calls on (PJSIP/6001 or its
        # browser phone PJSIP/web-6001); never a channel or another device.
        if agent is None or device != agent.interface:
            return
        self.book.device_changed(agent.extension, event.get("State", ""))
        self._changed(agent)

    def _on_hangup(self, event: Message) -> None:
        channel = event.get("Channel", "")
        if not channel.startswith("PJSIP/"):
            return
        agent = self.book.by_interface(channel)
        if agent is not None and any(c == channel for c in agent.ringing.values()):
            self.book.channel_gone(channel)
            self._changed(agent)

    # -- wrap-up timers ------------------------------------------------------------

    def _arm(self, agent: Agent) -> None:
        task = self._timers.get(agent.extension)
        if task is not None and not task.done():
            return  # it re-reads the deadline when it wakes
        self._timers[agent.extension] = asyncio.create_task(
            self._wrapup(agent), name=f"wrap-up {agent.extension}"
        )

    async def _wrapup(self, agent: Agent) -> None:
        try:
            while agent.wrapup_until is not None:
                left = agent.wrapup_until - self.clock()
                if left > 0:
                    await asyncio.sleep(left)
                    continue
                actions = self.book.wrapup_due(agent.extension, self.clock())
                log.routing.info("agent %s: wrap-up over", agent.extension)
                self._send(actions)
                self._changed(agent)
        finally:
            if self._timers.get(agent.extension) is asyncio.current_task():
                del self._timers[agent.extension]

    # -- after each login to Asterisk ------------------------------------------------

    async def resync(self, *, adopt: bool) -> None:
        """Reconcile every agent with Asterisk's queues (see the module doc)."""
        try:
            await self._submit(self._reconcile(adopt, relearn=True))
        except AmiError as exc:
            # The next login reconciles again; the rest of the login goes on.
            log.routing.warning("agents not reconciled with Asterisk: %s", exc)

    def _reconcile(self, adopt: bool, relearn: bool = False) -> Job:
        """The reconcile job; ``relearn`` (a new AMI session) also forgets
        the calls and rings seen before, which Asterisk reports afresh."""

        async def job() -> None:
            response = await queue_status(self.session)
            members: dict[str, list[MemberSnapshot]] = {}
            located: dict[str, list[tuple[str, str]]] = {}  # (interface, queue)
            for event in getattr(response, "events", []):
                if event.get("Event") != "QueueMember":
                    continue
                agent = self._agent(event)
                if agent is not None:
                    members.setdefault(agent.extension, []).append(
                        member_snapshot(event)
                    )
                    located.setdefault(agent.extension, []).append(
                        (
                            event.get("Interface") or event.get("Location") or "",
                            event.get("Queue", ""),
                        )
                    )
            now, epoch = self.clock(), time.time()
            if relearn:
                self.book.forget_calls()
            actions: list[Action] = []
            for extension, where in located.items():
                # Issue 9: members on the other phone of the agent (browser or
                # SIP) move to the one the router holds; the first session
                # adopts the browser phone Asterisk has.
                agent = self.book.agents[extension]
                if adopt and any(i == web_interface(extension) for i, _ in where):
                    agent.phone = "web"
                stray = [(i, q) for i, q in where if i and i != agent.interface]
                if stray:
                    actions += [Action("remove", extension, q, via=i) for i, q in stray]
                    gone = {q for _, q in stray}
                    members[extension] = [
                        m for m in members[extension] if m.queue not in gone
                    ]
            for extension, agent in self.book.agents.items():
                actions += self.book.reconcile(
                    extension,
                    members.get(extension, []),
                    now=now,
                    epoch=epoch,
                    adopt=adopt,
                )
                if agent.wrapup_until is not None:
                    self._arm(agent)
            for action in self._stamped(actions):
                await self._apply(action)
            for agent in self.book.agents.values():
                self._changed(agent)
            logged_in = sum(a.logged_in for a in self.book.agents.values())
            log.routing.info(
                "agents reconciled with Asterisk: %d logged in, %d actions",
                logged_in,
                len(actions),
            )

        return job

    def desks_changed(self, queues: dict[str, str]) -> None:
        """A new dial plan: memberships follow its desks (a reconcile job)."""
        if queues == self.book.queues:
            return
        self.book.set_queues(queues)
        for problem in self.book.problems():
            log.routing.warning("dial plan and agents: %s", problem)
        if self.session.connected:
            self._submit(self._reconcile(adopt=False))

    # -- what others see -------------------------------------------------------------

    def states(self) -> list[dict]:
        """Every agent's state, as :meth:`state_of` gives it."""
        return [self.state_of(agent) for agent in self.book.agents.values()]

    def state_of(self, agent: Agent) -> dict:
        now = self.clock()
        left = (agent.wrapup_until - now) if agent.in_wrapup(now) else 0.0
        return {
            "agent": agent.extension,
            "name": agent.name,
            "status": agent.status(now),
            "logged_in": agent.logged_in,
            "pause_reason": agent.pause_reason,
            "wrapup_left": round(left, 1),
            "device": agent.device,
            "phone": agent.phone,
            "desks": sorted(
                self.book.desk_of_queue.get(q, q) for q in self.book.membership(agent)
            ),
        }

    def _changed(self, agent: Agent) -> None:
        state = self.state_of(agent)
        key = (state["status"], state["logged_in"], state["pause_reason"])
        if self._published.get(agent.extension) != key:
            self._published[agent.extension] = key
            self.bus.publish(
                "agent.status", f"status/agents/{agent.extension}", state, retain=True
            )
        for listener in self.on_change:
            try:
                listener(agent)
            except Exception:
                log.routing.exception("an agent change listener failed")


_HANDLERS: dict[str, Callable[[AgentDesk, Message], None]] = {
    "AgentCalled": AgentDesk._on_called,
    "AgentRingNoAnswer": AgentDesk._on_ring_no_answer,
    "AgentConnect": AgentDesk._on_connect,
    "AgentComplete": AgentDesk._on_complete,
    "QueueMemberStatus": AgentDesk._on_member_status,
    "QueueMemberAdded": AgentDesk._on_member_status,
    "QueueMemberPause": AgentDesk._on_pause,
    "DeviceStateChange": AgentDesk._on_device_state,
    "Hangup": AgentDesk._on_hangup,
}
