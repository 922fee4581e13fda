"""The dial plan language: YAML text in, a validated :class:`DialPlan` out.

:func:`parse_dialplan` reports every problem at once, each as
``FILE:LINE:COL: message``, in one :class:`~ivr.errors.DialplanError`. The
models live in :mod:`routing.dialplan_model` and are re-exported here; this
module maps pydantic's errors back to the YAML position of the offending value.
Pure: the caller reads the file (see ``ivr.dialplans.load_dialplan_file``).
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, Tag, ValidationError

from ivr.errors import DialplanError
from routing import dialplan_check
from routing.dialplan_model import (
    ACTION_WORDS,
    DEFAULT_LANGUAGE,
    DTMF_PATTERN,
    LANGUAGE_PATTERN,
    NAME_PATTERN,
    PHONE_PATTERN,
    Action,
    Collect,
    CollectAction,
    Desk,
    DialPlan,
    Digits,
    Enterprises,
    HangupAction,
    Menu,
    MenuAction,
    Notice,
    PlayAction,
    Prompt,
    QueueAction,
    ReturningCallers,
    Start,
    Target,
    TransferAction,
    json_schema,
    missing_recordings,
    required_recordings,
)
from routing.hours import TIME_RANGE_PATTERN
from routing.yamlsource import Located, Path, Pos, load_located

__all__ = [
    "ACTION_WORDS",
    "DEFAULT_LANGUAGE",
    "MAX_TEXT",
    "Action",
    "Collect",
    "CollectAction",
    "Desk",
    "DialPlan",
    "Digits",
    "Enterprises",
    "HangupAction",
    "Menu",
    "MenuAction",
    "Notice",
    "PlayAction",
    "Prompt",
    "QueueAction",
    "ReturningCallers",
    "Start",
    "Target",
    "TransferAction",
    "json_schema",
    "missing_recordings",
    "parse_dialplan",
    "required_recordings",
]

MAX_TEXT = 1_000_000  # characters; ivr.dialplans limits the file's bytes alike


def parse_dialplan(text: str, filename: str = "<dialplan>") -> DialPlan:
    """Validate YAML ``text``; raise DialplanError listing every problem.

    ``filename`` only names the file in the problems.
    """
    if len(text) > MAX_TEXT:
        raise DialplanError([f"{filename}:1: larger than 1 MB; refused"])
    located, found = load_located(text)
    problems = [(p.pos, p.message) for p in found]
    plan = None
    if located is not None:
        if located.data is None:
            problems.append((Pos(1, 1), "the dial plan is empty"))
        elif not isinstance(located.data, dict):
            problems.append(
                (Pos(1, 1), "a dial plan is a mapping (name:, version:, menus:, ...)")
            )
        else:
            plan, more = _validate(located)
            problems += more
    if problems:
        ordered = sorted(dict.fromkeys(problems))
        raise DialplanError(
            [f"{filename}:{pos.line}:{pos.col}: {msg}" for pos, msg in ordered]
        )
    assert plan is not None
    return plan


def _validate(located: Located) -> tuple[DialPlan | None, list[tuple[Pos, str]]]:
    data = located.data
    try:
        plan = DialPlan.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    else:
        return plan, _placed(located, dialplan_check.check_plan(plan))

    problems = [_describe(located, err) for err in errors]
    # Check what is sound too, so one typo does not hide the other problems:
    # leave out what is broken (as little as possible first), validate again.
    for fine in (True, False):
        pruned, broken = _prune(located, errors, fine)
        if pruned is None:
            break  # a top-level value is wrong: nothing sound to build on
        if broken["menus"] and not pruned.get("menus"):
            break  # every menu is broken: the cross checks would only echo that
        try:
            partial = DialPlan.model_validate(pruned)
        except ValidationError:
            continue
        findings = dialplan_check.check_plan(partial, broken)
        return None, problems + _placed(located, findings)
    return None, problems


_ENTRY_MODELS: dict[str, type[BaseModel]] = {
    "prompts": Prompt,
    "desks": Desk,
    "targets": Target,
    "menus": Menu,
}
# Optional sections a broken value can be left out of, keeping the rest.
_OPTIONAL_SECTIONS = ("notice", "enterprises", "returning_callers", "mode")


def _prune(
    located: Located, errors: list[Any], fine: bool
) -> tuple[dict[str, Any] | None, dict[str, set[str]]]:
    """A copy of the data without unknown fields and broken entries (``fine``:
    only the entry's broken key or optional field), and the entries touched."""
    pruned = copy.deepcopy(located.data)
    broken: dict[str, set[str]] = {section: set() for section in _ENTRY_MODELS}
    for err in errors:
        loc = err["loc"]
        path, _ = _data_path(located, loc)
        if err["type"] == "extra_forbidden" and path and path[-1] == loc[-1]:
            drop = path
        elif path and path[0] in _OPTIONAL_SECTIONS:
            drop = path[:1]
        elif len(path) >= 2 and path[0] in _ENTRY_MODELS:
            broken[str(path[0])].add(str(path[1]))
            drop = path[:2]
            if fine and len(path) >= 3:
                field = _ENTRY_MODELS[str(path[0])].model_fields.get(str(path[2]))
                if path[2] == "keys" and len(path) >= 4:
                    drop = path[:4]  # just the broken key
                elif field is not None and not field.is_required():
                    drop = path[:3]  # the default stands in
        else:
            return None, broken
        parent = _get(pruned, drop[:-1])
        if isinstance(parent, dict):
            parent.pop(drop[-1], None)
    return pruned, broken


def _get(data: Any, path: Path) -> Any:
    """The value at ``path``; None once an entry on the way was dropped."""
    for part in path:
        if not isinstance(data, dict | list):
            return None
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _placed(
    located: Located, findings: Iterable[dialplan_check.Finding]
) -> list[tuple[Pos, str]]:
    return [(located.where(f.path, f.at_key), f.message) for f in findings]


def _describe(located: Located, err: Any) -> tuple[Pos, str]:
    """One pydantic error as (position, message an admin can act on)."""
    loc, kind = err["loc"], err["type"]
    path, at_key = _data_path(located, loc)
    if kind == "extra_forbidden":
        word = str(loc[-1])
        message = f"unknown field '{word}'" + _suggest(word, _fields_at(loc))
        return located.where(path, at_key=True), message
    if kind == "missing":
        message = f"missing field '{loc[-1]}'"
        at_key = True  # the field is absent: point at the name of its parent
    else:
        message = _explain(err)
    if path:
        message = f"{'.'.join(str(p) for p in path)}: {message}"
    return located.where(path, at_key), message


def _data_path(located: Located, loc: tuple) -> tuple[Path, bool]:
    """The part of pydantic's ``loc`` present in the data (union tags and
    missing fields are not), and whether the error is about a mapping key."""
    path: Path = ()
    for part in loc:
        if part == "[key]":
            return path, True
        if located.known((*path, part)):
            path = (*path, part)
    return path, False


_TYPE_WORDS = {
    "int_type": "a whole number",
    "string_type": 'text (put numbers in quotes: "110")',
    "bool_type": "true or false",
    "dict_type": "a mapping of name: value lines",
    "model_type": "a mapping of name: value lines",
    "model_attributes_type": "a mapping of name: value lines",
    "list_type": "a list",
    "datetime_type": "a date and time such as 2026-07-31T18:00",
}


def _explain(err: Any) -> str:
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    shown = repr(value) if isinstance(value, str) else str(value)
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, not {shown}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, not {shown}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, not {shown}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern == DTMF_PATTERN:
            return f'{shown} is not a DTMF key: use one of 0-9, "*" or "#"'
        if pattern == NAME_PATTERN:
            return (
                f"{shown} is not a valid name: use lowercase letters, digits,"
                " '-' and '_' (at most 64)"
            )
        if pattern == LANGUAGE_PATTERN:
            return f"{shown} is not a language code such as zh, bo or ii"
        if pattern == TIME_RANGE_PATTERN:
            return (
                f'{shown} is not a time range such as "08:30-17:30" '
                "(24-hour clock, two digits each)"
            )
        if pattern == PHONE_PATTERN:
            return f'{shown} is not a phone number such as "01065123456"'
        return f"{shown} is not valid here"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, not {shown}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "action" and isinstance(value, dict):
        # {qeueu: general}: no action word at all, so no "unknown field" either.
        guesses = (
            _suggest(str(k), ACTION_WORDS) for k in value if k not in ACTION_WORDS
        )
        return str(err["msg"]) + next((g for g in guesses if g), "")
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fields_at(loc: tuple) -> list[str]:
    """Field names of the model holding ``loc[-1]``, for "did you mean"."""
    tp: Any = DialPlan
    for part in loc[:-1]:
        tp = _descend(tp, part)
        if tp is None:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [info.alias or name for name, info in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...]."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _descend(tp: Any, part: Any) -> Any:
    """The type one step into ``tp`` along a pydantic error location."""
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = typing.get_origin(tp)
    if origin is dict:
        return typing.get_args(tp)[1]
    if origin is list:
        return typing.get_args(tp)[0]
    if _is_union(tp):  # a tagged union: the location names the tag
        for member in typing.get_args(tp):
            meta = getattr(member, "__metadata__", ())
            if any(isinstance(m, Tag) and m.tag == part for m in meta):
                return member
    return None
