"""YAML text to plain data, with the line and column of every key and value.

Configuration files written by people need errors that point at a line, so the
loader keeps a position for every path (``("menus", "main", "timeout")``).
Before anything is built, one pass over the parser events refuses what a
hand-written configuration never needs and what makes YAML dangerous or
confusing: anchors and aliases (the "billion laughs" bomb), explicit tags,
several documents, deep nesting, non-scalar keys and duplicate keys.

Pure: takes text, returns data and problems; never reads files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

Path = tuple[str | int, ...]

MAX_DEPTH = 20
MAX_REPORTED_ALIASES = 10


@dataclass(frozen=True, order=True)
class Pos:
    """1-based line and column."""

    line: int
    col: int


@dataclass
class Problem:
    pos: Pos
    message: str
    fatal: bool = True  # False: the data can still be built and checked


@dataclass
class Located:
    """Plain data (dict, list, str, int, float, bool, None) plus positions."""

    data: Any
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)

    def where(self, path: Path, at_key: bool = False) -> Pos:
        """Position of ``path``, or of its longest existing prefix."""
        if at_key and path in self.keys:
            return self.keys[path]
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, Pos(1, 1))

    def known(self, path: Path) -> bool:
        return path in self.values


def load_located(text: str) -> tuple[Located | None, list[Problem]]:
    """Parse ``text``; ``None`` data when nothing could be built."""
    problems = [*_screen(text), *_hash_keys(text)]
    if any(p.fatal for p in problems):
        # Syntax errors and aliases stop here: building a bomb is the danger.
        return None, problems
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True  # already reported, with both lines
    try:
        raw = yaml.load(text)
    except YAMLError as exc:  # pragma: no cover - the screen parsed it already
        return None, [*problems, _syntax_problem(exc)]
    located = Located(data=None)
    located.values[()] = Pos(1, 1)
    located.data = _plain(raw, (), located)
    return located, problems


def _screen(text: str) -> Iterable[Problem]:
    """Walk the parser events once, without building anything."""
    stack: list[_Frame] = []
    documents = 0
    aliases = 0
    yaml = YAML(typ="safe", pure=True)  # events only: skip round-trip comments
    try:
        for ev in yaml.parse(text):
            pos = Pos(ev.start_mark.line + 1, ev.start_mark.column + 1)
            if isinstance(ev, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    yield Problem(
                        pos, "only one YAML document is allowed (remove '---')"
                    )
                    return
                continue
            if isinstance(ev, MappingEndEvent | SequenceEndEvent):
                stack.pop()
                _node_done(stack)
                continue
            if not isinstance(ev, NodeEvent):
                continue
            frame = stack[-1] if stack else None
            is_key = frame is not None and frame.in_map and frame.expect_key
            # `*: ...` scans as an alias named ":" (or as a key that is one).
            if isinstance(ev, AliasEvent) and (is_key or ev.anchor.startswith(":")):
                yield Problem(pos, _STAR_KEY)  # what follows is a syntax error
                return
            if isinstance(ev, AliasEvent) or ev.anchor is not None:
                aliases += 1
                if aliases > MAX_REPORTED_ALIASES:
                    yield Problem(pos, "too many anchors and aliases; stopped reading")
                    return
                mark = (
                    f"*{ev.anchor}" if isinstance(ev, AliasEvent) else f"&{ev.anchor}"
                )
                yield Problem(
                    pos,
                    f"anchors and aliases ({mark}) are not allowed: a dial plan "
                    "never needs them, write the value out",
                )
            elif ev.tag is not None:
                yield Problem(pos, f"YAML tags ({ev.tag}) are not allowed")
            if frame is not None and is_key:
                if isinstance(ev, ScalarEvent):
                    first = frame.keys.setdefault(ev.value, pos)
                    if first is not pos:
                        yield Problem(
                            pos,
                            f"duplicate key '{ev.value}' (first at line {first.line})",
                            fatal=False,
                        )
                else:
                    yield Problem(pos, "a key must be a plain word, not a list or map")
            if isinstance(ev, MappingStartEvent | SequenceStartEvent):
                stack.append(_Frame(in_map=isinstance(ev, MappingStartEvent)))
                if len(stack) > MAX_DEPTH:
                    yield Problem(pos, f"nested deeper than {MAX_DEPTH} levels")
                    return
            else:
                _node_done(stack)
    except YAMLError as exc:
        yield _syntax_problem(exc)


_HASH_KEY = re.compile(r"^\s*#\s*:")


def _hash_keys(text: str) -> Iterable[Problem]:
    """``#: ...`` is a comment to YAML, so a menu's # key would vanish silently."""
    for number, line in enumerate(text.splitlines(), start=1):
        if _HASH_KEY.match(line):
            yield Problem(
                Pos(number, line.index("#") + 1),
                "'#:' is read as a comment; write the key # in quotes: \"#\":",
                fatal=False,
            )


@dataclass
class _Frame:
    in_map: bool
    expect_key: bool = True
    keys: dict[str, Pos] = field(default_factory=dict)


def _node_done(stack: list[_Frame]) -> None:
    if stack and stack[-1].in_map:
        stack[-1].expect_key = not stack[-1].expect_key


_STAR_KEY = 'YAML reads a bare * as an alias: write the key * in quotes: "*"'
_HINTS = {
    "alias": 'write the keys * and # in quotes: "*" and "#"',
    "'\\t'": "indent with spaces, not tabs",
    "mapping values are not allowed": "put a space after ':' or quote the text",
}


def _syntax_problem(exc: YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    pos = Pos(mark.line + 1, mark.column + 1) if mark is not None else Pos(1, 1)
    if isinstance(exc, MarkedYAMLError):
        what = " ".join(part for part in (exc.problem, exc.context) if part)
    else:
        what = str(exc).splitlines()[0]
    hints = [hint for needle, hint in _HINTS.items() if needle in what]
    suffix = f" ({hints[0]})" if hints else ""
    return Problem(pos, f"YAML syntax error: {what}{suffix}")


def _plain(node: Any, path: Path, out: Located) -> Any:
    """Copy ruamel's round-trip objects into plain types, noting positions."""
    if isinstance(node, CommentedMap):
        result: dict[str, Any] = {}
        for key, value in node.items():
            name = _key_text(key)
            sub = (*path, name)
            kline, kcol, vline, vcol = node.lc.data[key]
            out.keys[sub] = Pos(kline + 1, kcol + 1)
            # An empty value has no token; ruamel points past it, so use the key.
            out.values[sub] = (
                out.keys[sub] if value is None else Pos(vline + 1, vcol + 1)
            )
            result[name] = _plain(value, sub, out)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            sub = (*path, index)
            line, col = node.lc.data[index]
            out.values[sub] = Pos(line + 1, col + 1)
            items.append(_plain(value, sub, out))
        return items
    # ruamel subclasses (ScalarInt, ScalarFloat, ScalarBoolean, quoted strings).
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if node is None or isinstance(node, dt.date):
        return node
    return str(node)  # pragma: no cover - no other scalar types in plain YAML


def _key_text(key: Any) -> str:
    # DTMF keys arrive as ints (`1:`); everything is addressed by its text.
    if isinstance(key, bool):
        return str(key).lower()
    return str(key)
