"""Agents' states and what to tell Asterisk about them: pure decisions.

The router owns what an agent *wants* (logged in or out, a pause and its
reason) and the wrap-up it enforces after each call; Asterisk owns what the
phone *is* (idle, ringing, in use). Every change returns the queue actions
that make Asterisk agree, and :mod:`ivr.agents` sends them over AMI.

Wrap-up is the router's own, never app_queue's: after a transfer app_queue
forgets ``LastCall`` (case 16) and its wrap-up silently ends. Here a wrap-up
is a deadline the router keeps; nothing that Asterisk reports (``LastCall:
0``, ``Paused: 0`` after a restart) ends it early, only its time, the agent
unpausing or logging out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from routing.desks import penalty

WRAP_UP = "wrap-up"  # the pause reason of the router's wrap-up
DEFAULT_PAUSE = "break"
# Feature codes *3<digit> from the agent's phone.
PAUSE_CODES = {"1": "break", "2": "lunch", "3": "meeting", "4": "training"}

# app_queue's member Status (ast_device_state).
DEVICE_STATES = {
    "0": "unknown",
    "1": "idle",
    "2": "in_use",
    "3": "busy",
    "4": "invalid",
    "5": "unavailable",
    "6": "ringing",
    "7": "in_use",  # ringing while in use
    "8": "on_hold",
}
# DeviceStateChange's State, by name.
DEVICE_STATE_NAMES = {
    "UNKNOWN": "unknown",
    "NOT_INUSE": "idle",
    "INUSE": "in_use",
    "BUSY": "busy",
    "INVALID": "invalid",
    "UNAVAILABLE": "unavailable",
    "RINGING": "ringing",
    "RINGINUSE": "in_use",
    "ONHOLD": "on_hold",
}
# The phones an agent takes queue calls on (issue 9): the SIP endpoint
# ``PJSIP/6001`` or the browser softphone's WebRTC endpoint ``PJSIP/web-6001``.
PHONES = ("sip", "web")
WEB_PREFIX = "web-"


def web_interface(extension: str) -> str:
    """The browser phone's endpoint of agent ``extension``: PJSIP/web-6001."""
    return f"PJSIP/{WEB_PREFIX}{extension}"


def extension_of(interface: str) -> str:
    """PJSIP/6001, PJSIP/web-6001 or a channel PJSIP/web-6001-0000002a -> 6001."""
    name = interface.rsplit("/", 1)[-1]
    if name.startswith(WEB_PREFIX):
        name = name[len(WEB_PREFIX) :]
    return name.split("-", 1)[0]


BUSY_DEVICES = frozenset({"in_use", "busy", "ringing", "on_hold"})
GONE_DEVICES = frozenset({"invalid", "unavailable"})

# Events about our own actions arrive this long after we decided otherwise.
ECHO_SECONDS = 2.0

# What an agent is, as the statistics count it.
STATUSES = ("available", "busy", "wrap_up", "paused", "unavailable", "logged_out")

ActionKind = Literal["add", "remove", "pause", "unpause", "penalty", "hangup"]


@dataclass(frozen=True)
class Action:
    """One thing to tell Asterisk. ``queue`` None: every queue of the agent."""

    kind: ActionKind
    extension: str
    queue: str | None = None
    penalty: int = 0
    reason: str = ""
    paused: bool = False
    channel: str = ""  # hangup: the agent's ringing channel
    via: str = ""  # the member's interface when not the SIP phone's

    @property
    def interface(self) -> str:
        return self.via or f"PJSIP/{self.extension}"


@dataclass(frozen=True)
class MemberSnapshot:
    """One queue membership as ``QueueStatus`` reports it."""

    queue: str
    penalty: int
    paused: bool
    reason: str
    last_pause: float  # epoch seconds; 0 when never paused
    device: str


@dataclass
class Agent:
    extension: str
    name: str
    skills: dict[str, int]
    auto_login: bool = True
    logged_in: bool = False
    pause_reason: str | None = None  # a pause the agent asked for
    wrapup_until: float | None = None  # monotonic deadline of the wrap-up
    wrapup_ended: float = float("-inf")  # when the last wrap-up ended
    device: str = "unknown"
    # caller channel -> the agent's channel ringing for it
    ringing: dict[str, str] = field(default_factory=dict)
    calls: set[str] = field(default_factory=set)  # caller channels connected
    # queue -> reason, for queues where Asterisk reports the member paused
    # (by the router, or by someone at Asterisk's own CLI).
    paused_in: dict[str, str] = field(default_factory=dict)
    phone: str = "sip"  # where queue calls ring: one of PHONES

    @property
    def interface(self) -> str:
        if self.phone == "web":
            return web_interface(self.extension)
        return f"PJSIP/{self.extension}"

    def in_wrapup(self, now: float) -> bool:
        return self.wrapup_until is not None and now < self.wrapup_until

    def wants_paused(self, now: float) -> bool:
        return self.pause_reason is not None or self.in_wrapup(now)

    def pause_text(self, now: float) -> str:
        return self.pause_reason or (WRAP_UP if self.in_wrapup(now) else "")

    def status(self, now: float) -> str:
        if not self.logged_in:
            return "logged_out"
        if self.calls or self.ringing or self.device in BUSY_DEVICES:
            return "busy"
        if self.in_wrapup(now):
            return "wrap_up"
        if self.pause_reason is not None:
            return "paused"
        if self.device in GONE_DEVICES:
            return "unavailable"
        return "available"

    def status_in(self, queue: str, now: float) -> str:
        """The status as one desk sees it: paused there counts as paused."""
        status = self.status(now)
        if status in ("available", "unavailable") and queue in self.paused_in:
            return "paused"
        return status


class AgentBook:
    """Every agent's state. ``queues`` maps desk ids to their queue names;
    ``wrapup`` gives the wrap-up seconds of a desk (``default`` otherwise)."""

    def __init__(
        self,
        agents: Iterable,
        queues: Mapping[str, str],
        *,
        wrapup: Mapping[str, float] | None = None,
        default_wrapup: float = 0.0,
    ) -> None:
        self.agents: dict[str, Agent] = {}
        for agent in agents:
            self.agents[agent.extension] = Agent(
                agent.extension,
                agent.name,
                dict(agent.skills),
                auto_login=getattr(agent, "auto_login", True),
            )
        self.queues = dict(queues)
        self.desk_of_queue = {queue: desk for desk, queue in self.queues.items()}
        self.wrapup = dict(wrapup or {})
        self.default_wrapup = default_wrapup

    # -- lookups -------------------------------------------------------------

    def get(self, extension: str) -> Agent:
        try:
            return self.agents[extension]
        except KeyError:
            raise KeyError(f"no agent {extension!r}") from None

    def by_interface(self, interface: str) -> Agent | None:
        """PJSIP/6001, PJSIP/web-6001 (or a channel of either) -> its agent."""
        return self.agents.get(extension_of(interface))

    def membership(self, agent: Agent) -> dict[str, int]:
        """queue -> penalty for the agent's skills at desks that exist."""
        return {
            self.queues[desk]: penalty(level)
            for desk, level in sorted(agent.skills.items())
            if desk in self.queues and level >= 1
        }

    def set_queues(self, queues: Mapping[str, str]) -> None:
        """The dial plan's desks changed: desk ids -> their queue names."""
        self.queues = dict(queues)
        self.desk_of_queue = {queue: desk for desk, queue in self.queues.items()}

    def problems(self) -> list[str]:
        """Skills naming desks the dial plan does not have, and desks nobody
        serves: each would leave calls or agents idle."""
        found = [
            f"agent {a.extension}: skill for unknown desk {desk!r}"
            for a in self.agents.values()
            for desk in sorted(a.skills)
            if desk not in self.queues
        ]
        served = {desk for a in self.agents.values() for desk in a.skills}
        found += [
            f"desk {desk!r}: no agent has its skill"
            for desk in sorted(self.queues)
            if desk not in served
        ]
        return found

    def wrapup_seconds(self, queue: str) -> float:
        desk = self.desk_of_queue.get(queue, queue)
        return float(self.wrapup.get(desk, self.default_wrapup))

    def members_of(self, desk: str) -> list[Agent]:
        return [a for a in self.agents.values() if a.logged_in and desk in a.skills]

    # -- what agents ask for -----------------------------------------------------

    def login(self, extension: str, now: float) -> list[Action]:
        agent = self.get(extension)
        if agent.logged_in:
            return []
        agent.logged_in = True
        agent.wrapup_until = None
        paused = agent.wants_paused(now)
        return [
            Action(
                "add",
                extension,
                queue,
                penalty=pen,
                paused=paused,
                reason=agent.pause_text(now),
            )
            for queue, pen in self.membership(agent).items()
        ]

    def logout(self, extension: str) -> list[Action]:
        """Leave every queue; a phone ringing for a caller stops ringing,
        so app_queue offers the caller to someone else. The next login is
        on the SIP phone again (issue 9)."""
        agent = self.get(extension)
        via = "" if agent.phone == "sip" else agent.interface
        agent.phone = "sip"
        if not agent.logged_in:
            return []
        agent.logged_in = False
        agent.wrapup_until = None
        agent.pause_reason = None
        actions = [
            Action("remove", extension, queue, via=via)
            for queue in self.membership(agent)
        ]
        actions += [
            Action("hangup", extension, channel=channel, via=via)
            for channel in agent.ringing.values()
        ]
        return actions

    def pause(self, extension: str, reason: str, now: float) -> list[Action]:
        agent = self.get(extension)
        reason = reason.strip() or DEFAULT_PAUSE
        if reason == WRAP_UP:
            raise ValueError(f"'{WRAP_UP}' is the router's own pause reason")
        agent.pause_reason = reason
        if not agent.logged_in:
            return []
        return [Action("pause", extension, reason=reason, paused=True)]

    def unpause(self, extension: str, now: float) -> list[Action]:
        """Ready again: ends a pause and a wrap-up still running."""
        agent = self.get(extension)
        was_paused = agent.wants_paused(now)
        agent.pause_reason = None
        if agent.in_wrapup(now):
            agent.wrapup_ended = now
        agent.wrapup_until = None
        if not agent.logged_in or not was_paused:
            return []
        return [Action("unpause", extension)]

    def use_phone(self, extension: str, phone: str, now: float) -> list[Action]:
        """Take queue calls on ``phone`` ("sip" or "web") from now on: the
        memberships move to its interface with the same penalties and pause.

        Refused (ValueError) while a call rings or is up: one call at a time,
        and its end is still reported on the interface it came on.
        """
        agent = self.get(extension)
        if phone not in PHONES:
            raise ValueError(f"unknown phone {phone!r} (one of: {', '.join(PHONES)})")
        if phone == agent.phone:
            return []
        if agent.ringing or agent.calls:
            raise ValueError(
                f"agent {extension} is on a call: change phones after it ends"
            )
        old = agent.interface
        agent.phone = phone
        agent.device = "unknown"  # the new member's status tells
        if not agent.logged_in:
            return []
        members = self.membership(agent)
        paused = agent.wants_paused(now)
        reason = agent.pause_text(now)
        actions = [Action("remove", extension, q, via=old) for q in members]
        actions += [
            Action(
                "add",
                extension,
                q,
                penalty=pen,
                paused=paused,
                reason=reason,
                via=agent.interface,
            )
            for q, pen in members.items()
        ]
        return actions

    # -- what Asterisk reports ---------------------------------------------------

    def called(self, extension: str, caller: str, channel: str) -> None:
        agent = self.agents.get(extension)
        if agent is not None:
            agent.ringing[caller] = channel

    def ring_ended(self, extension: str, caller: str) -> None:
        agent = self.agents.get(extension)
        if agent is not None:
            agent.ringing.pop(caller, None)

    def channel_gone(self, channel: str) -> None:
        """An agent's channel hung up: it rings for nobody any more."""
        agent = self.by_interface(channel)
        if agent is None:
            return
        for caller, ringing in list(agent.ringing.items()):
            if ringing == channel:
                del agent.ringing[caller]

    def connected(self, extension: str, caller: str) -> None:
        agent = self.agents.get(extension)
        if agent is not None:
            agent.ringing.pop(caller, None)
            agent.calls.add(caller)

    def completed(
        self, extension: str, caller: str, queue: str, now: float
    ) -> list[Action]:
        """The agent left a caller: start the wrap-up of ``queue``'s desk.

        A wrap-up already running is only ever extended. An agent paused on
        purpose stays paused; the wrap-up runs underneath.
        """
        agent = self.agents.get(extension)
        if agent is None:
            return []
        # One call at a time: whatever it was, it is over. (Asterisk 22 now
        # and then leaves the caller's channel out of AgentComplete.)
        agent.calls.clear()
        agent.ringing.pop(caller, None)
        seconds = self.wrapup_seconds(queue)
        if not agent.logged_in or seconds <= 0:
            return []
        already_paused = agent.wants_paused(now)
        until = now + seconds
        if agent.wrapup_until is None or agent.wrapup_until < until:
            agent.wrapup_until = until
        if already_paused:
            return []
        return [Action("pause", extension, reason=WRAP_UP, paused=True)]

    def wrapup_due(self, extension: str, now: float) -> list[Action]:
        """The wrap-up timer fired: unpause unless something else holds."""
        agent = self.agents.get(extension)
        if agent is None or agent.wrapup_until is None:
            return []
        if now < agent.wrapup_until:
            return []  # extended meanwhile: a later timer ends it
        agent.wrapup_until = None
        agent.wrapup_ended = now
        if not agent.logged_in or agent.pause_reason is not None:
            return []
        return [Action("unpause", extension)]

    def pause_seen(
        self, extension: str, queue: str, paused: bool, reason: str, now: float
    ) -> list[Action]:
        """Asterisk reports a member paused or unpaused in ``queue``.

        The router's wants stand (nothing here changes them), with one
        exception it owns: a member paused for a wrap-up the router is not
        running (its unpause was lost, or it ended meanwhile) is unpaused, so
        no wrap-up pause outlives its time.
        """
        agent = self.agents.get(extension)
        if agent is None:
            return []
        if not paused:
            agent.paused_in.pop(queue, None)
            return []
        agent.paused_in[queue] = reason
        # A wrap-up whose time is up but whose timer has not run yet ends now.
        ended = (
            agent.wrapup_until if agent.wrapup_until is not None else agent.wrapup_ended
        )
        if (
            reason == WRAP_UP
            and agent.logged_in
            and not agent.wants_paused(now)
            # Not the echo of our own pause, sent just before the wrap-up
            # ended: its unpause is on the way.
            and now - ended > ECHO_SECONDS
        ):
            return [Action("unpause", extension, queue)]
        return []

    def device_changed(self, extension: str, status: str) -> None:
        """``status``: app_queue's number ("1") or the device state's name."""
        agent = self.agents.get(extension)
        if agent is not None:
            agent.device = DEVICE_STATES.get(status) or DEVICE_STATE_NAMES.get(
                status, "unknown"
            )
            if agent.device == "idle":
                # Nothing rings and no call is up on an idle phone: events of
                # a call that ended while we were away do not leave it busy.
                agent.ringing.clear()
                agent.calls.clear()

    def forget_calls(self) -> None:
        """After a reconnect: calls and rings are re-learnt from Asterisk."""
        for agent in self.agents.values():
            agent.ringing.clear()
            agent.calls.clear()

    # -- after a reconnect ---------------------------------------------------------

    def reconcile(
        self,
        extension: str,
        members: list[MemberSnapshot],
        *,
        now: float,
        epoch: float,
        adopt: bool,
    ) -> list[Action]:
        """Make Asterisk's memberships of one agent match the router's view.

        ``adopt`` (the first session of this server) takes what Asterisk
        holds as the truth: an agent in any queue is logged in, a pause keeps
        its reason, and a wrap-up pause runs on for what is left of it. Later
        sessions (Asterisk restarted or the link came back) re-apply the
        router's view: a ``Paused: 0`` or ``LastCall: 0`` never ends a wrap-up.
        """
        agent = self.get(extension)
        if members:
            agent.device = members[0].device
        agent.paused_in = {m.queue: m.reason for m in members if m.paused}
        if adopt:
            self._adopt(agent, members, now, epoch)

        wanted = self.membership(agent) if agent.logged_in else {}
        paused = agent.wants_paused(now)
        reason = agent.pause_text(now)
        actual = {m.queue: m for m in members}
        actions = []
        for queue, pen in wanted.items():
            member = actual.get(queue)
            if member is None:
                actions.append(
                    Action(
                        "add",
                        extension,
                        queue,
                        penalty=pen,
                        paused=paused,
                        reason=reason,
                    )
                )
                continue
            if member.penalty != pen:
                actions.append(Action("penalty", extension, queue, penalty=pen))
            if member.paused != paused or (paused and member.reason != reason):
                kind = "pause" if paused else "unpause"
                actions.append(
                    Action(kind, extension, queue, reason=reason, paused=paused)
                )
        for queue in actual:
            if queue not in wanted:
                actions.append(Action("remove", extension, queue))
        return actions

    def _adopt(
        self, agent: Agent, members: list[MemberSnapshot], now: float, epoch: float
    ) -> None:
        if not members:
            agent.logged_in = agent.auto_login
            return
        agent.logged_in = True
        paused = [m for m in members if m.paused]
        manual = [m for m in paused if m.reason != WRAP_UP]
        if manual:
            agent.pause_reason = manual[0].reason or DEFAULT_PAUSE
        wrapups = [m for m in paused if m.reason == WRAP_UP]
        if wrapups and agent.wrapup_until is None:
            seconds = max(self.wrapup_seconds(m.queue) for m in wrapups)
            started = max(m.last_pause for m in wrapups)
            left = seconds - (epoch - started) if started > 0 else 0.0
            if left > 0:
                agent.wrapup_until = now + left
