"""Agents' skills as queue membership: which desks an agent serves, how early.

A skill level of 1 is the most skilled. app_queue offers a call to the members
with the lowest penalty first, so level N becomes penalty N - 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def penalty(level: int) -> int:
    """The queue penalty of skill ``level`` (1, the most skilled, is 0)."""
    return level - 1


@dataclass(frozen=True)
class Membership:
    queue: str
    interface: str
    member_name: str
    penalty: int


def memberships(
    agents: Iterable[tuple[str, str, Mapping[str, int]]], desks: Iterable[str]
) -> list[Membership]:
    """(extension, name, skills) for each agent -> the queue members to add.

    Skills naming a desk that does not exist are an error in the caller's
    configuration, reported with the agent and the desk.
    """
    known = set(desks)
    result = []
    for extension, name, skills in agents:
        for desk, level in sorted(skills.items()):
            if desk not in known:
                raise ValueError(
                    f"agent {extension}: skill for unknown desk {desk!r} "
                    f"(desks: {', '.join(sorted(known))})"
                )
            if level < 1:
                raise ValueError(f"agent {extension}: skill level {level} for {desk}")
            result.append(Membership(desk, f"PJSIP/{extension}", name, penalty(level)))
    return result
