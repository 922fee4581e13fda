"""What happens to a caller while they wait for a person: pure decisions.

A desk's ``overflow`` (see :class:`routing.dialplan_model.Overflow`) and
``callback_after`` become a timetable of steps, counted in seconds from the
caller's first moment in a queue:

* ``widen``: agents down to a less skilled level may now take the call;
* ``move``: the caller goes to another desk, with a flag on the ticket (the
  next desk's own overflow then runs from that moment);
* ``offer_callback``: the caller may hang up and be called back, keeping
  their place. Only the desk a caller first queued at decides this, so a
  desk without ``callback_after`` (psychological aid) never sends its callers
  away, even after they moved to the general desk.

Priorities: a crisis flag puts a caller at the head of any line; a repeat
caller goes ahead of first-time callers of the same priority.

``ivr.waiting`` applies these steps over AMI.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from routing.desks import penalty

CRISIS_PRIORITY = 10  # the highest priority a dial plan may give (QueueAction)
REPEAT_BONUS = 1

StepKind = Literal["widen", "move", "offer_callback"]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    at: float  # seconds since the caller first queued
    desk: str  # the desk the caller is at once the step is done
    max_penalty: int | None = None  # None: every member of the desk
    flag: str | None = None


def initial_max_penalty(desk) -> int | None:
    """The penalty limit of a caller joining ``desk``: its level-1 agents
    only while it has a widening still to come, otherwise no limit."""
    overflow = getattr(desk, "overflow", None)
    if overflow is not None and overflow.widen_to_level is not None:
        return penalty(1)
    return None


def _desk_steps(desks: Mapping, name: str, since: float) -> list[Step]:
    overflow = desks[name].overflow
    if overflow is None:
        return []
    steps = []
    if overflow.widen_to_level is not None:
        steps.append(
            Step(
                "widen",
                since + overflow.after,
                name,
                max_penalty=penalty(overflow.widen_to_level),
            )
        )
    if overflow.then is not None and overflow.then in desks:
        then_after = overflow.then_after or (
            overflow.after * 2
            if overflow.widen_to_level is not None
            else overflow.after
        )
        steps.append(
            Step(
                "move",
                since + then_after,
                overflow.then,
                max_penalty=initial_max_penalty(desks[overflow.then]),
                flag=overflow.flag,
            )
        )
    return steps


@dataclass
class WaitPlan:
    """The steps still ahead of one waiting caller.

    ``desks`` maps desk ids to dial plan desks (anything with ``overflow``
    and ``callback_after``); ``desk`` is where the caller first queued.
    """

    desks: Mapping
    origin: str
    desk: str = ""
    max_penalty: int | None = None
    pending: list[Step] = field(default_factory=list)
    moves: int = 0

    def __post_init__(self) -> None:
        self.desk = self.desk or self.origin
        self.max_penalty = initial_max_penalty(self.desks.get(self.desk))
        if self.desk in self.desks:
            self.pending = _desk_steps(self.desks, self.desk, 0.0)
            callback_after = getattr(self.desks[self.desk], "callback_after", None)
            if callback_after is not None:
                self.pending.append(Step("offer_callback", float(callback_after), ""))
        self.pending.sort(key=lambda step: step.at)

    @property
    def offers_callback(self) -> bool:
        return any(step.kind == "offer_callback" for step in self.pending)

    def next_at(self) -> float | None:
        """When the next step is due (seconds since first queued), or None."""
        return self.pending[0].at if self.pending else None

    def due(self, waited: float) -> list[Step]:
        """Take the steps due after ``waited`` seconds, in order.

        A move replaces the old desk's remaining steps by the new desk's,
        counted from the move; a later step of the old desk is dropped. An
        offer keeps the desk the caller is at when it is made.
        """
        taken: list[Step] = []
        while self.pending and self.pending[0].at <= waited:
            step = self.pending.pop(0)
            if step.kind == "offer_callback":
                step = Step("offer_callback", step.at, self.desk, self.max_penalty)
            elif step.kind == "widen":
                if step.desk != self.desk:
                    continue
                self.max_penalty = step.max_penalty
            elif step.kind == "move":
                if step.desk == self.desk or self.moves >= len(self.desks):
                    continue  # a loop the dial plan check should have refused
                self.moves += 1
                self.desk = step.desk
                self.max_penalty = step.max_penalty
                self.pending = [
                    s for s in self.pending if s.kind == "offer_callback"
                ] + _desk_steps(self.desks, step.desk, step.at)
                self.pending.sort(key=lambda s: s.at)
            taken.append(step)
        return taken


def queued_priority(base: int, *, crisis: bool = False, repeat: bool = False) -> int:
    """The priority of a waiting caller: higher is answered first."""
    if crisis:
        return max(base, CRISIS_PRIORITY)
    if repeat:
        return min(base + REPEAT_BONUS, CRISIS_PRIORITY - 1)
    return base


def position_by_wait(
    entries: Iterable[tuple[int, float]], priority: int, waited: float
) -> int:
    """Where a caller who waited ``waited`` s joins a queue of (priority, wait)
    entries: behind higher priorities and those of equal priority waiting
    longer, ahead of everyone else (1 is the head)."""
    ahead = sum(
        1
        for other_priority, other_wait in entries
        if other_priority > priority
        or (other_priority == priority and other_wait >= waited)
    )
    return ahead + 1


def check_overflow(
    plan, broken_desks: Iterable[str] = ()
) -> Iterator[tuple[tuple, str]]:
    """(YAML path, message) for overflows that name no desk, or loop.

    ``broken_desks`` exist in the file but failed validation: naming them is
    not an error here.
    """
    desks = plan.desks
    broken = set(broken_desks)
    for name, desk in desks.items():
        overflow = desk.overflow
        if overflow is None or overflow.then is None:
            continue
        path = ("desks", name, "overflow", "then")
        if overflow.then == name:
            yield path, f"desk '{name}' cannot overflow to itself"
        elif overflow.then not in desks and overflow.then not in broken:
            yield path, f"undefined desk '{overflow.then}'"
    for name in desks:
        chain = [name]
        while True:
            overflow = desks[chain[-1]].overflow
            then = overflow.then if overflow is not None else None
            if then is None or then not in desks or then == chain[-1]:
                break
            if then in chain:
                if chain.index(then) == 0 and name == min(chain):
                    loop = " -> ".join([*chain, then])
                    yield (
                        ("desks", name, "overflow", "then"),
                        f"overflow of desk '{name}' loops ({loop}): end at a desk "
                        "without overflow, such as general",
                    )
                break
            chain.append(then)
