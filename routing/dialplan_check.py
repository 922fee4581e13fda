"""Checks across a dial plan's sections, after each value is known to be sound.

Names must point at something defined, every menu must be reachable from
``start``, every menu must have a way out (a desk, a transfer or a goodbye),
and a caller who says nothing must end up with a person, never hung up on and
never looping. The general desk answers 7x24, and a closed desk's
``when_closed`` never leads back to itself. Findings carry the YAML path; the
parser turns it into a line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from routing.callers import normalise_number
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
from routing.overflow import check_overflow
from routing.yamlsource import Path


@dataclass(frozen=True)
class Finding:
    path: Path
    message: str
    at_key: bool = False  # point at the key naming ``path``, not its value


def check_plan(
    plan: DialPlan, broken: Mapping[str, set[str]] | None = None
) -> list[Finding]:
    """Every cross-section problem of ``plan``.

    ``broken`` names entries (per section) that exist in the file but failed
    validation, so ``plan`` lacks or trims them: references to them are not
    "undefined", and the graph checks are skipped when a menu is incomplete.
    """
    broken = broken or {}
    findings = [
        *_languages(plan),
        *_mode(plan, broken),
        *_references(plan, broken),
        *_no_collect_on_failure(plan),
        *_hours(plan, broken),
        *_callers(plan),
        *(Finding(p, m) for p, m in check_overflow(plan, broken.get("desks", ()))),
    ]
    if GENERAL not in plan.desks and GENERAL not in broken.get("desks", ()):
        findings.append(
            Finding(
                ("desks",),
                "desk 'general' is missing: it is the last resort for every call",
                at_key=True,
            )
        )
    if (
        plan.mode == "menu"
        and not broken.get("menus")
        and not broken.get("desks")
        and plan.start.menu in plan.menus
    ):
        findings += _graph(plan)
        findings += _silent_caller(plan)
    return findings


def nested(action: Action, path: Path) -> Iterator[tuple[Action, Path]]:
    """``action`` and the actions it continues with (play/collect ``then``)."""
    yield action, path
    if isinstance(action, PlayAction):
        yield from nested(action.then, (*path, "then"))
    elif isinstance(action, CollectAction):
        yield from nested(action.collect.then, (*path, "collect", "then"))


def closed_actions(plan: DialPlan) -> Iterator[tuple[Action, Path]]:
    """Every desk's ``when_closed`` and the actions it continues with."""
    for name, desk in plan.desks.items():
        if desk.when_closed is not None:
            yield from nested(desk.when_closed, ("desks", name, "when_closed"))


def _menu_actions(plan: DialPlan, name: str) -> Iterator[tuple[Action, Path]]:
    menu = plan.menus[name]
    for key, action in menu.keys.items():
        yield from nested(action, ("menus", name, "keys", key))
    yield from nested(menu.on_failure, ("menus", name, "on_failure"))


def _languages(plan: DialPlan) -> Iterator[Finding]:
    if DEFAULT_LANGUAGE not in plan.languages:
        yield Finding(
            ("languages",),
            f"languages must include {DEFAULT_LANGUAGE} (Mandarin): "
            "every prompt falls back to it",
        )
    seen: set[str] = set()
    for index, language in enumerate(plan.languages):
        if language in seen:
            yield Finding(
                ("languages", index), f"language '{language}' is listed twice"
            )
        seen.add(language)
    for name, prompt in plan.prompts.items():
        path = ("prompts", name, "text")
        if DEFAULT_LANGUAGE not in prompt.text:
            yield Finding(
                path,
                f"prompt '{name}' has no {DEFAULT_LANGUAGE} text: Mandarin is the "
                "fallback for every language",
                at_key=True,
            )
        for language in prompt.text:
            # A missing zh is reported once, above, not for every prompt.
            if language not in plan.languages and language != DEFAULT_LANGUAGE:
                yield Finding(
                    (*path, language),
                    f"language '{language}' is not listed in languages",
                    at_key=True,
                )


def _references(plan: DialPlan, broken: Mapping[str, set[str]]) -> Iterator[Finding]:
    defined = {
        "prompt": set(plan.prompts) | broken.get("prompts", set()),
        "desk": set(plan.desks) | broken.get("desks", set()),
        "menu": set(plan.menus) | broken.get("menus", set()),
        "target": set(plan.targets) | broken.get("targets", set()),
    }

    def check(kind: str, name: str | None, path: Path) -> Iterator[Finding]:
        if name is not None and name not in defined[kind]:
            yield Finding(
                path, f"undefined {kind} '{name}'" + _hint(name, defined[kind])
            )

    def check_action(action: Action, path: Path) -> Iterator[Finding]:
        if isinstance(action, MenuAction):
            yield from check("menu", action.menu, (*path, "menu"))
        elif isinstance(action, QueueAction):
            yield from check("desk", action.queue, (*path, "queue"))
        elif isinstance(action, HangupAction):
            yield from check("prompt", action.hangup, (*path, "hangup"))
        elif isinstance(action, PlayAction):
            yield from check("prompt", action.play, (*path, "play"))
        elif isinstance(action, TransferAction):
            yield from check("target", action.transfer, (*path, "transfer"))
        elif isinstance(action, CollectAction):
            prompt_path = (*path, "collect", "prompt")
            yield from check("prompt", action.collect.prompt, prompt_path)

    yield from check("prompt", plan.start.greeting, ("start", "greeting"))
    yield from check("menu", plan.start.menu, ("start", "menu"))
    yield from check("desk", plan.start.desk, ("start", "desk"))
    yield from check("desk", plan.zero_for_person, ("zero_for_person",))
    if plan.notice is not None:
        yield from check("prompt", plan.notice.prompt, ("notice", "prompt"))
    if plan.enterprises is not None:
        yield from check("desk", plan.enterprises.desk, ("enterprises", "desk"))
    if plan.returning_callers is not None:
        where = ("returning_callers", "prompt")
        yield from check("prompt", plan.returning_callers.prompt, where)
    for action, path in closed_actions(plan):
        yield from check_action(action, path)
    for name, menu in plan.menus.items():
        base = ("menus", name)
        yield from check("prompt", menu.prompt, (*base, "prompt"))
        yield from check("prompt", menu.invalid, (*base, "invalid"))
        yield from check("prompt", menu.no_input, (*base, "no_input"))
        for action, path in _menu_actions(plan, name):
            if path[-1] == "on_failure" and "on_failure" not in menu.model_fields_set:
                continue  # the default (queue general); a missing general is reported
            yield from check_action(action, path)


def _hint(name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if known and len(known) <= 8:
        return f" (defined: {', '.join(known)})"
    return ""


def _exits(plan: DialPlan, name: str) -> tuple[bool, set[str]]:
    """Whether a menu ends the walk by itself, and the menus it leads to."""
    final = bool(plan.zero_for_person) and "0" not in plan.menus[name].keys
    menus: set[str] = set()
    for action, _ in _menu_actions(plan, name):
        if isinstance(action, QueueAction | HangupAction | TransferAction):
            final = True
        elif isinstance(action, MenuAction) and action.menu in plan.menus:
            menus.add(action.menu)
    return final, menus


def _graph(plan: DialPlan) -> Iterator[Finding]:
    exits = {name: _exits(plan, name) for name in plan.menus}
    # A closed desk's when_closed may open a menu (leave a message, call back).
    entries = {plan.start.menu} | {
        action.menu
        for action, _ in closed_actions(plan)
        if isinstance(action, MenuAction) and action.menu in plan.menus
    }
    reached = _closure(exits, entries)
    for name in plan.menus:
        if name not in reached:
            yield Finding(
                ("menus", name),
                f"menu '{name}' is unreachable: no path from start leads to it",
                at_key=True,
            )
    # A menu escapes if it is final or leads to a menu that escapes.
    escapes = {name for name, (final, _) in exits.items() if final}
    grew = True
    while grew:
        grew = False
        for name, (_, targets) in exits.items():
            if name not in escapes and targets & escapes:
                escapes.add(name)
                grew = True
    for name in plan.menus:
        if name in reached and name not in escapes:
            trapped = ", ".join(sorted(_closure(exits, {name})))
            yield Finding(
                ("menus", name),
                f"menu '{name}' has no way out: its keys and on_failure only lead "
                f"to menus ({trapped}), never to a desk, a transfer or a hangup",
                at_key=True,
            )


def _closure(exits: Mapping[str, tuple[bool, set[str]]], start: set[str]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for target in exits[todo.pop()][1] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def _silent_caller(plan: DialPlan) -> Iterator[Finding]:
    """Follow on_failure from the start menu: where does silence lead?"""
    chain: list[str] = []
    name = plan.start.menu
    while name not in chain:
        chain.append(name)
        path: Path = ("menus", name, "on_failure")
        action = plan.menus[name].on_failure
        while isinstance(action, PlayAction):
            action, path = action.then, (*path, "then")
        if isinstance(action, HangupAction):
            yield Finding(
                path,
                f"a caller who says nothing would be hung up on (on_failure of menu "
                f"'{name}'): queue to a desk instead",
            )
            return
        if not isinstance(action, MenuAction) or action.menu not in plan.menus:
            return
        name = action.menu
    loop = " -> ".join([*chain[chain.index(name) :], name])
    yield Finding(
        ("menus", chain[-1], "on_failure"),
        f"a caller who says nothing would loop forever ({loop}): "
        "on_failure must end at a desk",
    )


def _no_collect_on_failure(plan: DialPlan) -> Iterator[Finding]:
    # A failed collect counts as a failure of its menu: from on_failure that
    # would ask again, fail again, and never end.
    for name, menu in plan.menus.items():
        for action, path in nested(menu.on_failure, ("menus", name, "on_failure")):
            if isinstance(action, CollectAction):
                yield Finding(path, "on_failure cannot collect digits")


def _mode(plan: DialPlan, broken: Mapping[str, set[str]]) -> Iterator[Finding]:
    if plan.mode != "menu":
        return
    if plan.start.menu is None:
        yield Finding(
            ("start",),
            "start: missing field 'menu' (the first menu; or set mode: direct "
            "to send every caller straight to a person)",
            at_key=True,
        )
    if not plan.menus and not broken.get("menus"):
        yield Finding(
            ("menus",),
            "menus: a plan in menu mode needs at least one menu (or set mode: direct)",
            at_key=True,
        )


def _hours(plan: DialPlan, broken: Mapping[str, set[str]]) -> Iterator[Finding]:
    general = plan.desks.get(GENERAL)
    if general is not None:
        for field in ("hours", "days"):
            if getattr(general, field) is not None:
                yield Finding(
                    ("desks", GENERAL, field),
                    f"desk 'general' must answer 7x24: it is the last resort of "
                    f"every call, so it cannot have {field}",
                    at_key=True,
                )
    for action, path in closed_actions(plan):
        if isinstance(action, CollectAction):
            yield Finding(
                path, "when_closed cannot collect digits: send the call to a menu"
            )
    if broken.get("desks"):
        return
    # A closed desk hands its calls on; the chain must end at an open desk.
    for name in plan.desks:
        chain = [name]
        while True:
            desk = plan.desks.get(chain[-1])
            # General with hours is reported above; it is every chain's end.
            if desk is None or desk.always_open or chain[-1] == GENERAL:
                break
            then = _queued_desk(desk.when_closed)
            if then is None:
                break
            if then in chain:
                # Report each loop once: from its first desk, by name.
                if chain.index(then) == 0 and name == min(chain):
                    loop = " -> ".join([*chain, then])
                    yield Finding(
                        ("desks", name, "when_closed"),
                        f"when_closed of desk '{name}' loops ({loop}) when they are "
                        "all closed: end at a desk open 7x24 such as general",
                    )
                break
            chain.append(then)


def _queued_desk(action: Action | None) -> str | None:
    """The desk ``when_closed`` queues to (the default: general), or None."""
    if action is None:
        return GENERAL
    while isinstance(action, PlayAction):
        action = action.then
    return action.queue if isinstance(action, QueueAction) else None


def _callers(plan: DialPlan) -> Iterator[Finding]:
    if plan.enterprises is not None:
        seen: dict[str, int] = {}
        for index, number in enumerate(plan.enterprises.numbers):
            key = normalise_number(number)
            if key in seen:
                yield Finding(
                    ("enterprises", "numbers", index),
                    f"number '{number}' is listed twice (also item {seen[key] + 1})",
                )
            else:
                seen[key] = index
    returning = plan.returning_callers
    if returning is not None and returning.key == "0" and plan.zero_for_person:
        yield Finding(
            ("returning_callers", "key"),
            "key 0 reaches a person (zero_for_person): offer another key",
        )
