"""Dial plan files: read one (size-limited) and hand the text to the parser."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ivr.errors import DialplanError
from routing.dialplan import DialPlan, parse_dialplan

MAX_BYTES = 1_000_000  # a real plan is a few kB; refuse before reading more


def load_dialplan_file(path: str | os.PathLike[str]) -> DialPlan:
    """Read and validate a dial plan; DialplanError names ``FILE:LINE:COL``."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DialplanError([f"{name}:1: cannot read: {exc.strerror}"]) from exc
    if len(data) > MAX_BYTES:
        raise DialplanError([f"{name}:1: larger than 1 MB; refused"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DialplanError([f"{name}:{line}: not UTF-8 text"]) from exc
    return parse_dialplan(text, name)


def main_check(path: str | os.PathLike[str]) -> int:
    """``hotline check-dialplan FILE``: 0 and a summary, or 1 and the problems."""
    try:
        plan = load_dialplan_file(path)
    except DialplanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"{Path(path)}: ok ({len(plan.menus)} menus, {len(plan.desks)} desks)")
    return 0
