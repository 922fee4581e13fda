"""Bench callers: originate them at a steady rate and follow each through AMI.

A caller is ``Local/<id>@bench-caller/n``: Asterisk originates it, its ``;2``
half runs the caller's script (tones, the keys) and its ``;1`` half is the
caller as the hotline sees it, sent to ``from-pstn,12345`` (arm A) or to the
compiled native menu (arm B). The bench's AMI session only gets the events it
measures, and every one of them names the ``;1`` channel, so the call id is
read from the channel name.

What is measured per call, on the bench's clock (event arrival):

- key to prompt: DTMFEnd of the first key ("9": the menu again) to the start
  of the next prompt: ``AGIExecStart`` of GET DATA / STREAM FILE in arm A, the
  ``Newexten`` of BackGround / Playback in arm B;
- key to queue: DTMFEnd of the desk key to ``QueueCallerJoin``;
- answer to greeting: the hotline's ``Answer`` (``Newexten``) to the start of
  the greeting (arm A: the AsyncAGI start and the ticket opened first).

A call succeeded when it heard welcome, the menu, the menu again, joined the
expected queue, was answered by an agent and ended by the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from panoramisk.message import Message

from ivr import log
from ivr.ami.session import AmiSession
from ivr.bench.settings import MAX_CONCURRENT, CallerScript, Phase
from ivr.errors import AmiError
from routing.dialplan_model import DialPlan, MenuAction, QueueAction

_CALLER = re.compile(r"^Local/(\d+)@bench-caller-[0-9a-f]+;1$")
CALLER_BASE = 200000


@dataclass(frozen=True)
class MenuKeys:
    """The start menu as a bench caller uses it."""

    greeting: str
    menu: str
    repeat: str  # the key that plays the menu again
    desks: dict[str, tuple[str, str]]  # key -> (desk, queue), taken in turn

    @classmethod
    def of(cls, plan: DialPlan) -> MenuKeys:
        start = plan.start.menu
        menu = plan.menus[start]
        repeat = [
            key
            for key, action in menu.keys.items()
            if isinstance(action, MenuAction) and action.menu == start
        ]
        desks = {
            key: (action.queue, plan.queue_name(action.queue))
            for key, action in menu.keys.items()
            if isinstance(action, QueueAction)
        }
        zero = plan.zero_for_person
        if zero and "0" not in menu.keys:
            desks["0"] = (zero, plan.queue_name(zero))
        if not repeat or not desks or not plan.start.greeting:
            raise ValueError(
                "the bench needs a greeting and, in the start menu, a key that "
                "repeats the menu and keys that reach desks"
            )
        return cls(plan.start.greeting, menu.prompt, repeat[0], desks)


@dataclass
class BenchCall:
    id: int
    key: str
    desk: str
    queue: str
    sent: float
    talk: float = 0.0  # what the agent is told to talk
    answered: float | None = None  # the hotline's Answer
    prompts: list[tuple[float, str]] = field(default_factory=list)
    keys: list[tuple[float, str]] = field(default_factory=list)
    queued: float | None = None
    queue_joined: str = ""
    connected: float | None = None
    completed_by: str = ""
    ended: float | None = None
    channel: str = ""
    error: str = ""

    @property
    def key_to_prompt(self) -> float | None:
        """First key to the prompt that followed it."""
        if not self.keys:
            return None
        pressed = self.keys[0][0]
        after = [at for at, _ in self.prompts if at >= pressed]
        return after[0] - pressed if after else None

    @property
    def key_to_queue(self) -> float | None:
        if len(self.keys) < 2 or self.queued is None:
            return None
        return self.queued - self.keys[1][0]

    @property
    def answer_to_greeting(self) -> float | None:
        if self.answered is None or not self.prompts:
            return None
        return self.prompts[0][0] - self.answered

    def timeline(self) -> list[str]:
        """What happened, in seconds since the originate: for a failed call."""
        moments = [(self.answered, "answered")]
        moments += [(at, f"prompt {name}") for at, name in self.prompts]
        moments += [(at, f"key {key}") for at, key in self.keys]
        moments += [
            (self.queued, f"queued {self.queue_joined}"),
            (self.connected, "agent"),
            (self.ended, f"ended ({self.completed_by or '?'})"),
        ]
        return [
            f"{at - self.sent:.2f} {what}"
            for at, what in sorted(m for m in moments if m[0] is not None)
        ]

    def verdict(self, menu: MenuKeys) -> str:
        """'' for a call that went as scripted, else what went wrong."""
        if self.error:
            return self.error
        if self.ended is None:
            return "never ended"
        heard = [name for _, name in self.prompts]
        if heard != [menu.greeting, menu.menu, menu.menu]:
            return f"heard {'/'.join(heard) or 'nothing'}"
        if [k for _, k in self.keys] != [menu.repeat, self.key]:
            return "keys lost"
        if self.queue_joined != self.queue:
            return f"queued to {self.queue_joined or 'nothing'}"
        if self.connected is None:
            return "no agent"
        if self.completed_by == "agent":
            return ""
        # No AgentComplete matched (see CallWatcher): the caller hangs up by
        # itself only long after the talk; a call as long as the talk was
        # ended by the agent.
        if not self.completed_by and self.ended - self.connected >= self.talk - 0.2:
            return ""
        return f"ended by {self.completed_by or 'nobody'}"


@dataclass
class PhaseResult:
    phase: Phase
    arm: str
    calls: list[BenchCall]
    started: float
    originated_until: float
    finished: float
    peak_concurrent: int
    failures: Counter


class CallWatcher:
    """Follows bench callers through the filtered events of the bench's session."""

    def __init__(self, session: AmiSession) -> None:
        self.calls: dict[int, BenchCall] = {}
        self.active = 0
        self.peak = 0
        self.events = 0
        # Per queue member, its calls connected and not yet completed, oldest
        # first: the next call may connect before the last AgentComplete.
        self._by_member: dict[str, deque[BenchCall]] = defaultdict(deque)
        self._ended = asyncio.Event()
        session.on_event(self.handle)

    def reset_peak(self) -> None:
        self.peak = self.active

    def handle(self, event: Message) -> None:
        self.events += 1
        match = _CALLER.match(event.get("Channel", ""))
        if match is not None:
            call = self.calls.get(int(match.group(1)))
        elif event["Event"] == "AgentComplete":
            # Asterisk 22 sends it without any channel when both channels
            # are already gone (a few calls in a hundred under load): the
            # member, busy with one call at a time, tells which call it was.
            calls = self._by_member.get(event.get("Interface", ""))
            call = calls.popleft() if calls else None
        else:
            return
        if call is None:
            return
        now = time.monotonic()
        name = event["Event"]
        if name == "Newexten":
            app = event.get("Application", "")
            if app == "Answer":
                if call.answered is None:
                    call.answered = now
                    call.channel = event["Channel"]
                    self.active += 1
                    self.peak = max(self.peak, self.active)
            else:
                call.prompts.append((now, _prompt(event.get("AppData", ""))))
        elif name == "AGIExecStart":
            # "GET DATA /path/main-menu 5000 1" or 'STREAM FILE /path/welcome ""'
            words = event.get("Command", "").split()
            if len(words) > 2:
                call.prompts.append((now, _prompt(words[2])))
        elif name == "DTMFEnd":
            call.keys.append((now, event.get("Digit", "")))
        elif name == "QueueCallerJoin":
            call.queued = now
            call.queue_joined = event.get("Queue", "")
        elif name == "AgentConnect":
            call.connected = now
            self._by_member[event.get("Interface", "")].append(call)
        elif name == "AgentComplete":
            call.completed_by = event.get("Reason", "")
            calls = self._by_member.get(event.get("Interface", ""))
            if calls and any(c is call for c in calls):
                calls.remove(call)
        elif name == "Hangup" and call.ended is None:
            call.ended = now
            if call.answered is not None:
                self.active -= 1
            self._ended.set()

    async def wait_all_ended(self, ids: list[int], deadline: float) -> None:
        while any(self.calls[i].ended is None for i in ids):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), min(left, 1.0))


def _prompt(path: str) -> str:
    return path.rsplit("/", 1)[-1].split()[0] if path else ""


class LoadGenerator:
    """Originates one phase's callers at its rate; bounded in count and time."""

    def __init__(
        self,
        session: AmiSession,
        watcher: CallWatcher,
        script: CallerScript,
        menu: MenuKeys,
        *,
        silent: bool = False,
    ) -> None:
        self.session = session
        self.watcher = watcher
        self.script = script
        self.menu = menu
        self.silent = silent
        self._keys = list(menu.desks)
        self._next_id = CALLER_BASE

    async def run(
        self, phase: Phase, arm: str, *, slack: float = 30.0
    ) -> tuple[list[BenchCall], float, float]:
        """Originate ``phase.calls`` callers; wait until they end or time is up.

        Returns the calls, when the last one was originated and when waiting
        stopped. Calls still up at the deadline are hung up and marked.
        """
        loop = asyncio.get_running_loop()
        target = ("from-pstn", "12345") if arm == "A" else ("yht-native", "s")
        started = time.monotonic()
        # The last caller has this long to finish its script and its talk.
        call_time = (
            self.script.first_key_at + self.script.second_key_after + phase.talk + 3
        )
        deadline = started + phase.calls / phase.rate + call_time + slack
        originates: set[asyncio.Task] = set()
        ids = []
        start = loop.time()
        for index in range(phase.calls):
            at = start + index / phase.rate
            if at > loop.time():
                await asyncio.sleep(at - loop.time())
            if time.monotonic() > deadline:
                break
            if self.watcher.active + len(originates) >= MAX_CONCURRENT:
                # Calls pile up: the system under test fell behind. Stop before
                # Asterisk itself overloads; the calls not made count as failed.
                log.demo.warning(
                    "phase %s: %d calls up; no more callers after %d of %d",
                    phase.name,
                    self.watcher.active + len(originates),
                    index,
                    phase.calls,
                )
                break
            call = self._new_call(index, phase.talk)
            ids.append(call.id)
            task = asyncio.create_task(self._originate(call, target, phase.talk))
            originates.add(task)
            task.add_done_callback(originates.discard)
        originated_until = time.monotonic()
        await self.watcher.wait_all_ended(ids, deadline)
        # Originates answer in a moment; one still pending here failed anyway.
        for task in list(originates):
            task.cancel()
        await asyncio.gather(*originates, return_exceptions=True)
        calls = [self.watcher.calls[i] for i in ids]
        if any(c.ended is None for c in calls):
            log.demo.warning(
                "phase %s: %d calls still up at the deadline; hanging them up",
                phase.name,
                sum(c.ended is None for c in calls),
            )
            for call in calls:
                if call.ended is None and not call.error:
                    call.error = "still up at the deadline"
        return calls, originated_until, time.monotonic()

    def _new_call(self, index: int, talk: float) -> BenchCall:
        self._next_id += 1
        key = self._keys[index % len(self._keys)]
        desk, queue = self.menu.desks[key]
        call = BenchCall(self._next_id, key, desk, queue, time.monotonic(), talk)
        self.watcher.calls[call.id] = call
        return call

    async def _originate(self, call: BenchCall, target: tuple[str, str], talk: float):
        s = self.script
        context, exten = target
        # Wait() counts from the end of SendDTMF: a digit takes 100 ms to send
        # and 250 ms of pause after it.
        variables = [
            f"BENCH_SILENT={int(self.silent)}",
            f"BENCH_WAIT1={s.first_key_at}",
            f"BENCH_KEY1={self.menu.repeat}",
            f"BENCH_WAIT2={max(0.0, s.second_key_after - 0.35):.2f}",
            f"BENCH_KEY2={call.key}",
            f"BENCH_LIMIT={talk + s.patience:.1f}",
            # Inherited by the agent's channels through the queue.
            f"__BENCH_TALK={talk:.2f}",
            # Both arms measure menu, queue and talk; the satisfaction survey
            # after the agent hangs up is not part of the comparison.
            "YHT_NO_SURVEY=1",
        ]
        try:
            result = await self.session.originate(
                {
                    "Channel": f"Local/{call.id}@bench-caller/n",
                    "Context": context,
                    "Exten": exten,
                    "Priority": 1,
                    "CallerID": f"1380{call.id:07d}",
                    "Timeout": 15000,
                    "Variable": variables,
                },
                timeout=30,
            )
        except AmiError as exc:
            call.error = f"originate: {exc}"
            call.ended = call.ended or time.monotonic()
            return
        if not result.ok:
            call.error = f"originate failed (reason {result.reason})"
            call.ended = call.ended or time.monotonic()
