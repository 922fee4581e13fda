"""Repeated complaints: which earlier ticket a new one repeats, and why.

A ticket repeats an earlier work order when, within 30 days before it, the
same caller called, or someone asked about the same address in the same
category. Addresses are compared after folding width, case, spaces and
punctuation, so "武侯区 人民南路４段１号" and "武侯区人民南路4段1号。" match.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW = timedelta(days=30)

# Numbers that identify nobody: a withheld caller, or the trunk's placeholder.
_ANONYMOUS = {"", "anonymous", "unknown", "<unknown>", "0"}


def address_key(address: str | None) -> str:
    """The address folded for comparison; '' when there is nothing to compare."""
    if not address:
        return ""
    folded = unicodedata.normalize("NFKC", address).casefold()
    return "".join(
        ch for ch in folded if unicodedata.category(ch)[0] not in ("P", "S", "Z", "C")
    )


@dataclass(frozen=True)
class Seen:
    """What repeat detection needs to know of a ticket."""

    number: str
    at: datetime
    caller: str = ""
    address_key: str = ""
    category: str | None = None


@dataclass(frozen=True)
class Repeat:
    of: str  # the earlier ticket's number
    reasons: tuple[str, ...]  # "caller", "address_category"


def reasons(new: Seen, earlier: Seen) -> tuple[str, ...]:
    if earlier.number == new.number or not (
        timedelta(0) <= new.at - earlier.at <= WINDOW
    ):
        return ()
    found = []
    if new.caller not in _ANONYMOUS and new.caller == earlier.caller:
        found.append("caller")
    if (
        new.address_key
        and new.category
        and new.address_key == earlier.address_key
        and new.category == earlier.category
    ):
        found.append("address_category")
    return tuple(found)


def find_repeat(new: Seen, earlier: Iterable[Seen]) -> Repeat | None:
    """The latest earlier ticket the new one repeats, or None."""
    best: tuple[Seen, tuple[str, ...]] | None = None
    for candidate in earlier:
        why = reasons(new, candidate)
        if why and (best is None or candidate.at > best[0].at):
            best = (candidate, why)
    if best is None:
        return None
    return Repeat(best[0].number, best[1])
