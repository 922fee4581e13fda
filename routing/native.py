"""Compile a dial plan to native Asterisk dialplan: the menus without the server.

:func:`compile_dialplan` turns a checked :class:`DialPlan` into
``extensions.conf`` text that walks the same menus as
:class:`routing.menu.MenuWalk` does over AsyncAGI, with Asterisk alone. It is
the benchmark's arm B today and the fallback for when the server is down
tomorrow. For the prefix ``yht-native`` the text holds::

    [yht-native]            the entry and the steps menus share
      s                     Answer, the greeting, the start menu
      queue                 Queue(${YHT_DESK}) at priority ${YHT_PRIORITY}
      collect1 ...          one per ``collect``: Read, then check the digits
    [yht-native-main]       one context per menu with only its keys, i and t,
      s                     so that no key waits for a second digit: reset the
                            failure count, BackGround(prompt), WaitExten(timeout)
      1 2 ... * #           what each key does
      i / t                 a wrong key / no key: count it, play ``invalid`` or
                            ``no_input``, ask again or, after ``retries``
                            failures, do ``on_failure``

The rules are MenuWalk's: wrong keys and silences count together; entering a
menu (repeating it too) resets the count; a ``collect`` keeps its menu's count
and asks for the digits again; the failure prompt plays before
``on_failure``, whose count starts afresh; key 0 reaches ``zero_for_person``
unless the menu uses 0 itself; ``mode: direct`` queues every caller to the
start desk after the greeting. A ``transfer`` goes to the general desk, as in
the IVR engine: neither can dial out yet.

What needs the server is left out, on purpose, for a fallback: facts about
the caller (``enterprises``, ``returning_callers``), the ``notice``, desks'
opening hours (the official calendar has holidays and make-up days that
dialplan cannot know) with their ``when_closed``, ``overflow`` and callbacks.
Every desk is open while the server is away.

Channel variables set on the way: ``YHT_IVR=native``, ``YHT_MENU``,
``YHT_FAILS``, ``YHT_DESK`` (the queue), ``YHT_PRIORITY``,
``YHT_ROUTE_REASON`` and ``YHT_<SAVE_AS>`` for collected digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from routing.dialplan_model import (
    DEFAULT_LANGUAGE,
    GENERAL,
    Action,
    CollectAction,
    DialPlan,
    HangupAction,
    MenuAction,
    PlayAction,
    QueueAction,
    TransferAction,
)

DEFAULT_PREFIX = "yht-native"
ENTRY = "s"
ZERO = "0"

_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
# The path goes into application arguments: nothing that separates them.
_SOUNDS_DIR = re.compile(r"^/[A-Za-z0-9_./-]*$")
_REASON_CHARS = re.compile(r"[^a-z0-9 *#_-]")

Step = tuple[str, str]  # (label or "", application with its arguments)


def compile_dialplan(
    plan: DialPlan,
    *,
    sounds_dir: str,
    language: str = DEFAULT_LANGUAGE,
    prefix: str = DEFAULT_PREFIX,
) -> str:
    """extensions.conf text for ``plan``; calls enter at ``s@<prefix>``.

    ``sounds_dir`` is the prompts folder as Asterisk sees it (the server's
    ``[asterisk] sounds_dir``): a prompt plays from ``<sounds_dir>/<lang>/<name>``.
    """
    if not _PREFIX.match(prefix):
        raise ValueError(f"prefix {prefix!r}: use a-z, 0-9 and '-', at most 15")
    if not _SOUNDS_DIR.match(sounds_dir):
        raise ValueError(
            f"sounds_dir {sounds_dir!r}: an absolute path of letters, digits, "
            "'_', '.', '-' and '/'"
        )
    if language not in plan.languages:
        raise ValueError(
            f"language {language!r} is not one of {', '.join(plan.languages)}"
        )
    return _Compiler(plan, sounds_dir.rstrip("/"), language, prefix).run()


def menu_context(prefix: str, menu: str) -> str:
    return f"{prefix}-{menu}"


@dataclass
class _Compiler:
    plan: DialPlan
    sounds_dir: str
    language: str
    prefix: str
    # Collect steps found while compiling actions: (extension, menu, action).
    _collects: list[tuple[str, str, CollectAction]] = field(default_factory=list)

    def run(self) -> str:
        menus = [self._menu(name) for name in self.plan.menus]
        # Compiling a collect may find more collects (its ``then``): a worklist.
        collects = []
        done = 0
        while done < len(self._collects):
            collects.append(self._collect(*self._collects[done]))
            done += 1
        entry = [
            f"; Dial plan {_comment(self.plan.name)!s} (version {self.plan.version}),"
            " compiled by routing/native.py.",
            f"[{self.prefix}]",
            *self._entry(),
            *self._queue(),
            *(line for lines in collects for line in lines),
        ]
        return "\n".join([*entry, *(line for lines in menus for line in lines)]) + "\n"

    # --- contexts and extensions ---------------------------------------------

    def _entry(self) -> list[str]:
        steps: list[Step] = [("", "Answer()"), ("", "Set(YHT_IVR=native)")]
        start = self.plan.start
        if start.greeting:
            steps.append(("", f"Playback({self._prompt(start.greeting)})"))
        if self.plan.mode == "direct" or start.menu is None:
            steps += self._to_queue(start.desk or GENERAL, 0, "direct")
        else:
            steps.append(("", self._goto_menu(start.menu)))
        return _exten(ENTRY, steps)

    def _queue(self) -> list[str]:
        return _exten(
            "queue",
            [
                ("", "Set(QUEUE_PRIO=${YHT_PRIORITY})"),
                ("", "Queue(${YHT_DESK})"),
                ("", "Hangup()"),
            ],
        )

    def _menu(self, name: str) -> list[str]:
        menu = self.plan.menus[name]
        lines = ["", f"[{menu_context(self.prefix, name)}]"]
        lines += _exten(
            ENTRY,
            [
                ("", f"Set(YHT_MENU={name})"),
                ("", "Set(YHT_FAILS=0)"),
                ("ask", f"BackGround({self._prompt(menu.prompt)})"),
                ("", f"WaitExten({menu.timeout})"),
            ],
        )
        for key, action in menu.keys.items():
            lines += _exten(key, self._action(action, name, f"key {key}"))
        zero = self.plan.zero_for_person
        if zero and ZERO not in menu.keys:
            lines += _exten(ZERO, self._to_queue(zero, 0, "zero for a person"))
        lines += _exten("i", self._failure(name, menu.invalid, "s,ask"))
        lines += _exten("t", self._failure(name, menu.no_input, "s,ask"))
        return lines

    def _collect(self, exten: str, menu: str, action: CollectAction) -> list[str]:
        spec = action.collect
        low, high = spec.digits.min, spec.digits.max
        variable = "YHT_" + spec.save_as.upper().replace("-", "_")
        menu_spec = self.plan.menus[menu]
        steps: list[Step] = [
            (
                "ask",
                f"Read(YHT_DIGITS,{self._prompt(spec.prompt)},{high},,1,{spec.timeout})",
            ),
            ("", "GotoIf($[${LEN(${YHT_DIGITS})} = 0]?none)"),
            ("", f'GotoIf(${{REGEX("^[0-9]{{{low},{high}}}$" ${{YHT_DIGITS}})}}?ok)'),
            *self._failure(menu, menu_spec.invalid, "ask"),
            *_label("none", self._failure(menu, menu_spec.no_input, "ask")),
            *_label(
                "ok",
                [
                    ("", f"Set({variable}=${{YHT_DIGITS}})"),
                    *self._action(spec.then, menu, "digits entered"),
                ],
            ),
        ]
        return _exten(exten, steps)

    # --- steps ---------------------------------------------------------------

    def _failure(self, menu: str, prompt: str | None, again: str) -> list[Step]:
        """Count a failure, play its prompt, ask ``again`` or give up."""
        spec = self.plan.menus[menu]
        steps: list[Step] = [("", "Set(YHT_FAILS=$[${YHT_FAILS} + 1])")]
        if prompt:
            steps.append(("", f"Playback({self._prompt(prompt)})"))
        steps.append(("", f"GotoIf($[${{YHT_FAILS}} < {spec.retries}]?{again})"))
        steps.append(("", "Set(YHT_FAILS=0)"))
        steps += self._action(spec.on_failure, menu, f"menu {menu} failed")
        return steps

    def _action(self, action: Action, menu: str, reason: str) -> list[Step]:
        if isinstance(action, MenuAction):
            return [("", self._goto_menu(action.menu))]
        if isinstance(action, QueueAction):
            return self._to_queue(action.queue, action.priority, reason)
        if isinstance(action, PlayAction):
            play = ("", f"Playback({self._prompt(action.play)})")
            return [play, *self._action(action.then, menu, reason)]
        if isinstance(action, HangupAction):
            return [
                ("", f"Playback({self._prompt(action.hangup)})"),
                ("", "Hangup()"),
            ]
        if isinstance(action, TransferAction):
            why = f"transfer to {action.transfer} not served"
            return self._to_queue(GENERAL, 0, why)
        if isinstance(action, CollectAction):
            exten = f"collect{len(self._collects) + 1}"
            self._collects.append((exten, menu, action))
            return [("", f"Goto({self.prefix},{exten},1)")]
        raise TypeError(f"unknown action {action!r}")  # pragma: no cover

    def _to_queue(self, desk: str, priority: int, reason: str) -> list[Step]:
        return [
            ("", f"Set(YHT_DESK={self.plan.queue_name(desk)})"),
            ("", f"Set(YHT_PRIORITY={priority})"),
            ("", f"Set(YHT_ROUTE_REASON={_REASON_CHARS.sub('', reason.lower())})"),
            ("", f"Goto({self.prefix},queue,1)"),
        ]

    def _goto_menu(self, menu: str) -> str:
        return f"Goto({menu_context(self.prefix, menu)},{ENTRY},1)"

    def _prompt(self, name: str) -> str:
        language, _ = self.plan.prompts[name].text_in(self.language)
        return f"{self.sounds_dir}/{language}/{name}"


def _label(label: str, steps: list[Step]) -> list[Step]:
    first_label, first = steps[0]
    assert not first_label, "a step carries one label"
    return [(label, first), *steps[1:]]


def _exten(name: str, steps: list[Step]) -> list[str]:
    lines = []
    for index, (label, app) in enumerate(steps):
        mark = f"({label})" if label else ""
        if index == 0:
            lines.append(f"exten => {name},1{mark},{app}")
        else:
            lines.append(f" same => n{mark},{app}")
    return lines


def _comment(text: str) -> str:
    return text.replace("\n", " ").replace(";", ",")
