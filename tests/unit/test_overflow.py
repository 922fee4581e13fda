"""Overflow, callback offers and priorities of waiting callers (routing.overflow)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ivr.errors import DialplanError
from routing.dialplan import parse_dialplan
from routing.dialplan_model import Desk, Overflow
from routing.overflow import (
    CRISIS_PRIORITY,
    WaitPlan,
    check_overflow,
    initial_max_penalty,
    position_by_wait,
    queued_priority,
)


def desks(**specs) -> dict[str, Desk]:
    return {
        name: Desk.model_validate({"name": name, **spec})
        for name, spec in specs.items()
    }


TIBETAN = {
    "overflow": {
        "after": 30,
        "widen_to_level": 3,
        "then": "general",
        "flag": "needs a Tibetan interpreter",
    },
    "callback_after": 90,
}


def test_a_desk_that_widens_starts_with_its_best_agents_only():
    plan = desks(tibetan=TIBETAN, general={})
    assert initial_max_penalty(plan["tibetan"]) == 0
    assert initial_max_penalty(plan["general"]) is None
    only_moves = desks(x={"overflow": {"after": 10, "then": "general"}}, general={})
    assert initial_max_penalty(only_moves["x"]) is None


def test_widen_after_t_then_move_with_the_flag_at_twice_t():
    wait = WaitPlan(desks(tibetan=TIBETAN, general={}), "tibetan")
    assert wait.max_penalty == 0
    assert wait.next_at() == 30
    assert wait.due(29.9) == []

    [widen] = wait.due(30)
    assert (widen.kind, widen.desk, widen.max_penalty) == ("widen", "tibetan", 2)
    assert wait.max_penalty == 2 and wait.next_at() == 60

    [move] = wait.due(61)
    assert (move.kind, move.desk, move.flag) == (
        "move",
        "general",
        "needs a Tibetan interpreter",
    )
    assert wait.desk == "general" and wait.max_penalty is None
    # The callback offer of the first desk survives the move.
    [offer] = wait.due(90)
    assert (offer.kind, offer.desk) == ("offer_callback", "general")
    assert wait.next_at() is None


def test_then_after_sets_the_move_and_steps_due_together_come_in_order():
    plan = desks(
        psych={
            "overflow": {
                "after": 10,
                "widen_to_level": 2,
                "then": "general",
                "then_after": 40,
            }
        },
        general={},
    )
    wait = WaitPlan(plan, "psych")
    assert [s.kind for s in wait.due(100)] == ["widen", "move"]


def test_a_desk_without_callback_after_never_offers_one_even_after_moving():
    plan = desks(
        psych={"overflow": {"after": 10, "then": "general"}},
        general={"callback_after": 20},
    )
    wait = WaitPlan(plan, "psych")
    assert not wait.offers_callback
    assert [s.kind for s in wait.due(3600)] == ["move"]


def test_the_next_desk_overflow_runs_from_the_move():
    plan = desks(
        a={"overflow": {"after": 10, "then": "b"}},
        b={"overflow": {"after": 5, "widen_to_level": 2, "then": "general"}},
        general={},
    )
    wait = WaitPlan(plan, "a")
    [move] = wait.due(10)
    assert move.desk == "b" and move.max_penalty == 0
    assert wait.next_at() == 15
    assert [(s.kind, s.desk) for s in wait.due(25)] == [
        ("widen", "b"),
        ("move", "general"),
    ]


def test_a_desk_with_no_overflow_has_nothing_to_do():
    wait = WaitPlan(desks(general={}), "general")
    assert wait.next_at() is None and wait.max_penalty is None


def test_overflow_needs_something_to_do_and_a_later_move():
    with pytest.raises(ValidationError, match="widen_to_level, then, or both"):
        Overflow.model_validate({"after": 10})
    with pytest.raises(ValidationError, match="must be later than after"):
        Overflow.model_validate({"after": 10, "then": "general", "then_after": 10})
    with pytest.raises(ValidationError, match="flag need then"):
        Overflow.model_validate({"after": 10, "widen_to_level": 2, "flag": "x"})


PLAN = """\
name: t
version: 1
prompts:
  menu: {text: {zh: 菜单}}
desks:
  general: {name: 综合}
  tibetan:
    name: 藏语
    overflow: {after: 30, widen_to_level: 3, then: %s}
  yi:
    name: 彝语
    overflow: {after: 30, then: tibetan}
start: {menu: main}
menus:
  main:
    prompt: menu
    keys:
      1: {queue: tibetan}
      2: {queue: yi}
"""


def problems_of(text: str) -> list[str]:
    try:
        parse_dialplan(text, "t.yaml")
    except DialplanError as exc:
        return exc.problems
    return []


def test_the_dial_plan_check_accepts_overflow_to_an_existing_desk():
    plan = parse_dialplan(PLAN % "general", "t.yaml")
    assert plan.desks["tibetan"].overflow.widen_to_level == 3
    assert list(check_overflow(plan)) == []


def test_the_dial_plan_check_reports_undefined_and_looping_overflows_by_line():
    [undefined] = problems_of(PLAN % "police")
    assert undefined.startswith("t.yaml:9:") and "undefined desk 'police'" in undefined
    [loop] = problems_of(PLAN % "yi")
    assert loop.startswith("t.yaml:9:")
    assert "loops (tibetan -> yi -> tibetan)" in loop
    [itself] = problems_of(PLAN % "tibetan")
    assert "cannot overflow to itself" in itself


def test_crisis_goes_to_the_head_and_repeat_callers_ahead_of_their_equals():
    assert queued_priority(0) == 0
    assert queued_priority(0, repeat=True) == 1
    assert queued_priority(5, repeat=True) == 6
    assert queued_priority(0, crisis=True) == CRISIS_PRIORITY
    assert queued_priority(9, repeat=True) == CRISIS_PRIORITY - 1
    assert queued_priority(0, crisis=True, repeat=True) == CRISIS_PRIORITY


def test_a_caller_rejoins_behind_longer_waits_and_higher_priorities():
    entries = [(0, 50.0), (0, 20.0), (5, 1.0), (0, 5.0)]
    assert position_by_wait(entries, 0, 30.0) == 3  # behind 50 s and priority 5
    assert position_by_wait(entries, 0, 100.0) == 2
    assert position_by_wait(entries, 5, 0.5) == 2
    assert position_by_wait([], 0, 3.0) == 1
