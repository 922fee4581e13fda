"""The menu walk: what a call does next, one step at a time, with no I/O.

The IVR engine asks :class:`MenuWalk` for a step, carries it out over
AsyncAGI and reports back what happened (a key, a timeout, a finished
prompt); the dry-run simulator does the same with a list of keys::

    walk = MenuWalk(plan, language="zh")
    step = walk.start()          # Play greeting, or Collect the first menu
    step = walk.after_play()     # after a Play
    step = walk.on_key("2")      # after a Collect (several digits for collect:)
    step = walk.on_timeout()     # after a Collect that got nothing

A wrong key or no key plays the menu's ``invalid``/``no_input`` prompt, counts
a failure and asks again; after ``retries`` failures the menu's ``on_failure``
runs. Entering a menu (or repeating it) starts its count afresh. ``Queue``,
``Transfer`` and ``Hangup`` are final.

Before the first menu a call hears the greeting, then the plan's notice while
it lasts. A registered enterprise then goes straight to its desk; a caller
with a recent ticket is offered that desk on one key (any other key counts in
the first menu); in ``mode: direct`` every caller goes to a desk chosen from
these facts. Facts and the time come from the caller of the walk::

    walk = MenuWalk(plan, "zh", caller=CallerFacts(recent_desk="psych"), now=now)

Without ``now`` the walk cannot tell the time: the notice is not played and
every desk counts as open. A queue to a desk closed at ``now`` does the desk's
``when_closed`` instead (by default: queue to general, which never closes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from routing.callers import UNKNOWN, CallerFacts
from routing.dialplan import (
    DEFAULT_LANGUAGE,
    Action,
    CollectAction,
    DialPlan,
    HangupAction,
    MenuAction,
    PlayAction,
    QueueAction,
    TransferAction,
)
from routing.dialplan_model import GENERAL
from routing.hours import beijing, opening

__all__ = [
    "FINAL",
    "CallerFacts",
    "Collect",
    "Hangup",
    "MenuWalk",
    "Play",
    "Queue",
    "Step",
    "Transfer",
    "simulate",
]

ZERO = "0"
# The offer to returning callers is not a menu; its keys are logged under this.
OFFER = "returning_callers"


@dataclass(frozen=True)
class Play:
    """Play ``prompt``, then call ``after_play``."""

    prompt: str
    menu: str = ""
    text: str = ""
    language: str = DEFAULT_LANGUAGE  # of the recording: <lang>/<prompt>.wav


@dataclass(frozen=True)
class Collect:
    """Play ``prompt`` and wait for keys; then ``on_key`` or ``on_timeout``."""

    prompt: str
    timeout: int
    max_digits: int = 1
    interruptible: bool = True  # a key during the prompt counts
    menu: str = ""
    text: str = ""
    language: str = DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Queue:
    """Final: hand the call to ``desk`` (Asterisk queue ``queue``)."""

    desk: str
    priority: int
    reason: str
    queue: str = ""
    menu: str = ""


@dataclass(frozen=True)
class Transfer:
    """Final: transfer the call to ``number``."""

    target: str
    number: str
    reason: str
    menu: str = ""


@dataclass(frozen=True)
class Hangup:
    """Final: play ``prompt``, then hang up."""

    prompt: str
    menu: str = ""
    text: str = ""
    language: str = DEFAULT_LANGUAGE


Step = Play | Collect | Queue | Transfer | Hangup
FINAL = (Queue, Transfer, Hangup)


class MenuWalk:
    """One call's way through a dial plan. Not reusable: one walk per call."""

    def __init__(
        self,
        plan: DialPlan,
        language: str = DEFAULT_LANGUAGE,
        *,
        caller: CallerFacts | None = None,
        now: datetime | None = None,
    ):
        if language not in plan.languages:
            raise ValueError(
                f"language {language!r} is not one of {', '.join(plan.languages)}"
            )
        self.plan = plan
        self.language = language
        self.caller = caller or UNKNOWN
        # Decisions use the moment the call began: a menu does not change its
        # mind about opening hours while the caller listens.
        self.now = beijing(now) if now is not None else None
        # (menu, key) per caller action; key is "timeout", "invalid" or
        # "digits" (collected digits are not recorded: they may be personal).
        self.path: list[tuple[str, str]] = []
        self.collected: dict[str, str] = {}  # save_as -> digits
        self.step: Step | None = None
        self._menu = plan.start.menu or ""
        self._failures: list[str] = []
        self._after_play: Callable[[], Step] | None = None
        self._collecting: CollectAction | None = None  # None: a menu's key
        self._offering = False  # the returning-caller offer awaits a key

    @property
    def menu(self) -> str:
        return self._menu

    @property
    def finished(self) -> bool:
        return isinstance(self.step, FINAL)

    def start(self) -> Step:
        if self.step is not None:
            raise RuntimeError("the walk has already started")
        greeting = self.plan.start.greeting
        if greeting:
            return self._play(greeting, self._after_greeting)
        return self._after_greeting()

    @property
    def notice_active(self) -> bool:
        notice = self.plan.notice
        return notice is not None and self.now is not None and self.now < notice.until

    def _after_greeting(self) -> Step:
        if self.notice_active:
            assert self.plan.notice is not None
            return self._play(self.plan.notice.prompt, self._by_caller)
        return self._by_caller()

    def _by_caller(self) -> Step:
        """Route on what is known about the caller, before any menu."""
        plan, facts = self.plan, self.caller
        if facts.is_enterprise and plan.enterprises is not None:
            self.path.append(("enterprises", "registered"))
            desks = plan.enterprises
            return self._queue(desks.desk, desks.priority, "registered enterprise")
        recent = self._recent_desk()
        if plan.mode == "direct":
            if recent is not None:
                return self._queue(recent, 0, "direct: returning caller")
            return self._queue(plan.start.desk or GENERAL, 0, "direct")
        if recent is not None:
            assert plan.returning_callers is not None
            return self._offer(plan.returning_callers.prompt)
        return self._enter(plan.start.menu or "")

    def _recent_desk(self) -> str | None:
        desk = self.caller.recent_desk
        if self.plan.returning_callers is None or desk not in self.plan.desks:
            return None
        return desk

    def _offer(self, prompt: str) -> Step:
        assert self.plan.returning_callers is not None
        self._offering = True
        language, text = self._text(prompt)
        timeout = self.plan.returning_callers.timeout
        return self._set(Collect(prompt, timeout, text=text, language=language))

    def _take_offer(self, key: str | None) -> Step:
        self._offering = False
        offer = self.plan.returning_callers
        assert offer is not None
        self.path.append((OFFER, key or "timeout"))
        if key == offer.key:
            desk = self._recent_desk()
            assert desk is not None
            return self._queue(desk, 0, "returning caller")
        step = self._enter(self.plan.start.menu or "")
        # An impatient caller pressed a key of the first menu: honour it there.
        menu = self.plan.menus[self._menu]
        if key in menu.keys or (key == ZERO and self.plan.zero_for_person):
            return self.on_key(key)
        return step

    def after_play(self) -> Step:
        self._expect(Play)
        assert self._after_play is not None
        then, self._after_play = self._after_play, None
        return then()

    def on_key(self, key: str) -> Step:
        """A key (a menu) or the digits typed (a ``collect``)."""
        self._expect(Collect)
        if self._offering:
            return self._take_offer(key)
        if self._collecting is not None:
            return self._digits(self._collecting, key)
        menu = self.plan.menus[self._menu]
        action = menu.keys.get(key)
        if action is not None:
            self.path.append((self._menu, key))
            return self._do(action, f"key {key}")
        if key == ZERO and self.plan.zero_for_person:
            self.path.append((self._menu, key))
            return self._queue(self.plan.zero_for_person, 0, "zero for a person")
        self.path.append((self._menu, "invalid"))
        return self._fail("invalid key", menu.invalid)

    def on_timeout(self) -> Step:
        self._expect(Collect)
        if self._offering:
            return self._take_offer(None)
        self.path.append((self._menu, "timeout"))
        return self._fail("no input", self.plan.menus[self._menu].no_input)

    # --- moves ---------------------------------------------------------------

    def _expect(self, kind: type) -> None:
        if not isinstance(self.step, kind):
            now = type(self.step).__name__ if self.step else "nothing (not started)"
            raise RuntimeError(f"expected a {kind.__name__} step, the walk is at {now}")

    def _enter(self, name: str) -> Step:
        self._menu = name
        self._failures = []
        return self._ask_menu()

    def _ask_menu(self) -> Step:
        menu = self.plan.menus[self._menu]
        self._collecting = None
        language, text = self._text(menu.prompt)
        return self._set(
            Collect(
                menu.prompt, menu.timeout, menu=self._menu, text=text, language=language
            )
        )

    def _ask_digits(self, action: CollectAction) -> Step:
        spec = action.collect
        self._collecting = action
        language, text = self._text(spec.prompt)
        return self._set(
            Collect(
                spec.prompt,
                spec.timeout,
                max_digits=spec.digits.max,
                menu=self._menu,
                text=text,
                language=language,
            )
        )

    def _digits(self, action: CollectAction, digits: str) -> Step:
        spec = action.collect
        ok = digits.isdigit() and spec.digits.min <= len(digits) <= spec.digits.max
        self.path.append((self._menu, "digits" if ok else "invalid"))
        if not ok:
            return self._fail("invalid digits", self.plan.menus[self._menu].invalid)
        self.collected[spec.save_as] = digits
        return self._do(spec.then, "digits entered")

    def _fail(self, what: str, prompt: str | None) -> Step:
        menu = self.plan.menus[self._menu]
        self._failures.append(what)
        if len(self._failures) < menu.retries:
            then = self._ask_again
        else:
            then = partial(self._do, menu.on_failure, _failure_reason(self._failures))
            self._failures = []
        return self._play(prompt, then) if prompt else then()

    def _ask_again(self) -> Step:
        """The same question: the menu, or the digits being collected."""
        if self._collecting is not None:
            return self._ask_digits(self._collecting)
        return self._ask_menu()

    def _do(
        self,
        action: Action,
        reason: str,
        closed: tuple[str, ...] = (),
        priority: int = 0,
    ) -> Step:
        """Carry out ``action``; ``closed``: desks found closed on the way here."""
        if isinstance(action, MenuAction):
            return self._enter(action.menu)
        if isinstance(action, QueueAction):
            # A caller sent on from a closed desk keeps the priority they had.
            level = max(action.priority, priority)
            return self._queue(action.queue, level, reason, closed)
        if isinstance(action, PlayAction):
            then = partial(self._do, action.then, reason, closed, priority)
            return self._play(action.play, then)
        if isinstance(action, HangupAction):
            language, text = self._text(action.hangup)
            return self._set(Hangup(action.hangup, self._menu, text, language))
        if isinstance(action, TransferAction):
            target = self.plan.targets[action.transfer]
            return self._set(
                Transfer(action.transfer, target.number, reason, self._menu)
            )
        if isinstance(action, CollectAction):
            return self._ask_digits(action)
        raise TypeError(f"unknown action {action!r}")  # pragma: no cover

    def _queue(
        self, desk: str, priority: int, reason: str, closed: tuple[str, ...] = ()
    ) -> Step:
        spec = self.plan.desks.get(desk)
        if spec is not None and not spec.always_open and self.now is not None:
            hours = opening(spec.hours, spec.days, self.now)
            if not hours.open:
                why = f"{reason}; desk {desk} {hours.why}"
                if desk in closed:
                    # Validation refuses such loops; never spin on one anyway,
                    # and queue to general as it is, hours or not.
                    queue = self.plan.queue_name(GENERAL)
                    step = Queue(GENERAL, priority, f"{why}; loop", queue, self._menu)
                    return self._set(step)
                fallback = spec.when_closed or QueueAction(queue=GENERAL)
                return self._do(fallback, why, (*closed, desk), priority)
        queue = self.plan.queue_name(desk)
        return self._set(Queue(desk, priority, reason, queue, self._menu))

    def _play(self, prompt: str, then: Callable[[], Step]) -> Step:
        self._after_play = then
        language, text = self._text(prompt)
        return self._set(Play(prompt, self._menu, text, language))

    def _set(self, step: Step) -> Step:
        self.step = step
        return step

    def _text(self, prompt: str) -> tuple[str, str]:
        return self.plan.prompts[prompt].text_in(self.language)


def _failure_reason(failures: Sequence[str]) -> str:
    """ "no input twice", "invalid key 3 times", "no input and invalid key"."""
    kinds = list(dict.fromkeys(failures))
    if len(kinds) > 1:
        return " and ".join(kinds)
    count = len(failures)
    times = {1: "once", 2: "twice"}.get(count, f"{count} times")
    return f"{kinds[0]} {times}"


def simulate(
    plan: DialPlan,
    keys: Sequence[str | None],
    language: str = DEFAULT_LANGUAGE,
    *,
    caller: CallerFacts | None = None,
    now: datetime | None = None,
) -> list[str]:
    """A dry run: the lines a caller pressing ``keys`` would go through.

    ``None`` in ``keys`` is a caller who presses nothing until the timeout.
    """
    walk = MenuWalk(plan, language, caller=caller, now=now)
    lines: list[str] = []
    pending = list(keys)
    step = walk.start()
    while True:
        lines.append(_describe(step, language))
        if isinstance(step, Play):
            step = walk.after_play()
        elif isinstance(step, Collect):
            if not pending:
                where = f"menu {step.menu}" if step.menu else "the offer"
                lines.append(f"(no more keys: the call waits in {where})")
                return lines
            key = pending.pop(0)
            if key is None:
                lines.append(f"  ... no key for {step.timeout} s")
                step = walk.on_timeout()
            else:
                lines.append(f"  caller presses {key}")
                step = walk.on_key(key)
        else:
            break
    if pending:
        rest = ", ".join("(none)" if k is None else k for k in pending)
        lines.append(f"(keys left over after the call left the menus: {rest})")
    return lines


def _describe(step: Step, language: str) -> str:
    def said(prompt: str, text: str, lang: str) -> str:
        note = f" [{lang}]" if lang != language else ""
        return f"{prompt}{note}: {text}"

    where = f"[{step.menu}] " if step.menu else ""
    match step:
        case Play():
            return f"{where}play {said(step.prompt, step.text, step.language)}"
        case Collect():
            return (
                f"{where}ask {said(step.prompt, step.text, step.language)}"
                f" (wait {step.timeout} s for {_digits_word(step.max_digits)})"
            )
        case Queue():
            return (
                f"{where}-> desk {step.desk} (queue {step.queue}, priority "
                f"{step.priority}): {step.reason}"
            )
        case Transfer():
            return f"{where}-> transfer to {step.target} ({step.number}): {step.reason}"
        case Hangup():
            return f"{where}hang up after {said(step.prompt, step.text, step.language)}"
    raise TypeError(step)  # pragma: no cover


def _digits_word(count: int) -> str:
    return "a key" if count == 1 else f"up to {count} digits"
