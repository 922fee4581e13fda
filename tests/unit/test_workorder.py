"""The work order's states, who may move it, and deadlines on the Chinese calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from routing.workorder import (
    PARAMS,
    RULES,
    Actor,
    Catalog,
    Role,
    State,
    Step,
    TransitionError,
    WorkCalendar,
    WorkOrder,
    apply,
)

CATALOG = Catalog.from_dict(
    {
        "working_days": 5,
        "units": [
            {"id": "housing", "name": "市住建局"},
            {"id": "water", "name": "市水务局"},
            {"id": "wuhou", "name": "武侯区人民政府"},
        ],
        "categories": [
            {"id": "housing", "name": "住房保障", "working_days": 10},
            {"id": "consult", "name": "政策咨询"},
        ],
        "areas": [{"id": "wuhou", "name": "武侯区"}],
    }
)
AGENT = Actor(Role.AGENT, "li")
SUPERVISOR = Actor(Role.SUPERVISOR, "wang")
SYSTEM = Actor(Role.SYSTEM, "follow-up")
HOUSING = Actor(Role.UNIT, "zhao", "housing")
WATER = Actor(Role.UNIT, "qian", "water")
WUHOU = Actor(Role.UNIT, "sun", "wuhou")

# Mon 2026-03-02 10:00 in Beijing; far from any holiday.
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
INTAKE = {"category": "consult", "content": "路灯不亮", "address": "人民南路1号"}


def at(day: str, hour: int = 10) -> datetime:
    """A time on a Beijing calendar day."""
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+08:00")


def go(order, action, actor, now=T0, **params):
    return apply(order, action, actor, now, catalog=CATALOG, params=params).order


def refused(code, order, action, actor, now=T0, **params):
    with pytest.raises(TransitionError) as caught:
        apply(order, action, actor, now, catalog=CATALOG, params=params)
    assert caught.value.code == code, str(caught.value)
    return caught.value


def accepted(**intake):
    return go(WorkOrder(), "accept", AGENT, **{**INTAKE, **intake})


def dispatched(co_units=(), **lead):
    spec = {"unit": "housing", **lead}
    return go(accepted(), "dispatch", AGENT, lead=spec, co_units=list(co_units))


def signed():
    return go(dispatched(), "sign", HOUSING)


def handled():
    return go(signed(), "handle", HOUSING, result="已修复路灯")


def closed():
    return go(handled(), "close", AGENT)


def followed_up(score):
    return go(closed(), "follow_up", AGENT, score=score)


def returned():
    return go(signed(), "return", HOUSING, reason="不属于本单位职责")


STATES = {
    None: WorkOrder,
    State.ACCEPTED: accepted,
    State.DISPATCHED: dispatched,
    State.SIGNED: signed,
    State.RETURNED: returned,
    State.HANDLED: handled,
    State.CLOSED: closed,
    State.FOLLOWED_UP: lambda: followed_up(3),
}


def allowed_actor(action: str) -> Actor:
    roles = RULES[action].roles
    for actor in (AGENT, SUPERVISOR, HOUSING, SYSTEM):
        if actor.role in roles:
            return actor
    raise AssertionError(action)


# -- deadlines on the Chinese calendar ------------------------------------------


CAL = WorkCalendar()


@pytest.mark.parametrize(
    ("start", "days", "deadline"),
    [
        # National Day and Mid-Autumn 2025: Oct 1-8 off; Sun Sep 28 and
        # Sat Oct 11 are make-up working days.
        ("2025-09-26", 1, "2025-09-28"),
        ("2025-09-26", 5, "2025-10-10"),
        ("2025-09-30", 1, "2025-10-09"),
        ("2025-09-30", 3, "2025-10-11"),
        ("2025-10-01", 4, "2025-10-13"),
        # Spring Festival 2026: Feb 15-23 off; Sat Feb 14 and Sat Feb 28 work.
        ("2026-02-12", 2, "2026-02-14"),
        ("2026-02-13", 3, "2026-02-25"),
        ("2026-02-13", 10, "2026-03-05"),
        ("2026-02-16", 5, "2026-02-28"),
        # An ordinary week: the day of dispatch is not counted.
        ("2026-03-02", 5, "2026-03-09"),
        ("2026-03-06", 1, "2026-03-09"),
    ],
)
def test_working_days_follow_holidays_and_make_up_days(start, days, deadline):
    result = CAL.add_working_days(date.fromisoformat(start), days)
    assert result.day == date.fromisoformat(deadline)
    assert result.provisional is False


def test_a_year_the_calendar_does_not_know_is_counted_by_weekends_and_flagged():
    def no_data(day: date) -> bool:
        if day.year > 2026:
            raise NotImplementedError(f"no data for year {day.year}")
        return day.weekday() < 5

    calendar = WorkCalendar(no_data)
    inside = calendar.add_working_days(date(2026, 12, 21), 3)
    across = calendar.add_working_days(date(2026, 12, 30), 3)
    assert inside == type(inside)(date(2026, 12, 24), provisional=False)
    # Thu Dec 31 counts, then Fri Jan 1 and Mon Jan 4 by the weekend rule.
    assert across.day == date(2027, 1, 4)
    assert across.provisional is True


def test_the_deadline_starts_from_the_beijing_day_not_the_utc_day():
    # 17:00 UTC on Thursday Mar 5 is already Friday in Beijing.
    late = datetime(2026, 3, 5, 17, 0, tzinfo=UTC)
    spec = {"unit": "housing", "working_days": 1}
    order = go(accepted(), "dispatch", AGENT, late, lead=spec)
    assert order.lead().deadline == date(2026, 3, 9)


def test_a_category_time_limit_is_used_when_the_dispatch_gives_none():
    order = go(
        accepted(category="housing"), "dispatch", AGENT, lead={"unit": "housing"}
    )
    assert order.lead().deadline == date(2026, 3, 16)  # 10 working days


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"unit": "housing", "deadline": "2026-03-01"}, "deadline_past"),
        ({"unit": "housing", "deadline": "2026-02-30"}, "bad_date"),
        ({"unit": "housing", "deadline": "next week"}, "bad_date"),
        ({"unit": "housing", "working_days": 0}, "bad_deadline"),
        ({"unit": "housing", "working_days": 61}, "bad_deadline"),
        ({"unit": "housing", "working_days": "5"}, "bad_deadline"),
        (
            {"unit": "housing", "working_days": 3, "deadline": "2026-04-01"},
            "bad_deadline",
        ),
        ({"unit": "nobody"}, "unknown_unit"),
        ({"unit": "housing'; DROP TABLE tickets;--"}, "unknown_unit"),
        ({"unit": "housing", "boss": "me"}, "bad_params"),
        (["housing"], "bad_params"),
    ],
)
def test_dispatch_refuses_bad_deadlines_and_units(spec, code):
    order = accepted()
    refused(code, order, "dispatch", AGENT, lead=spec)
    assert order.state is State.ACCEPTED and order.assignments == []


def test_a_deadline_today_is_allowed_for_urgent_requests():
    order = go(
        accepted(),
        "dispatch",
        AGENT,
        lead={"unit": "housing", "deadline": "2026-03-02"},
    )
    assert order.lead().deadline == date(2026, 3, 2)


# -- who may do what from which state ----------------------------------------------


@pytest.mark.parametrize("action", sorted(RULES))
def test_every_action_is_refused_from_every_state_it_does_not_start_from(action):
    actor = allowed_actor(action)
    for state, build in STATES.items():
        if state in RULES[action].states:
            continue
        order = build()
        refused("wrong_state", order, action, actor)


@pytest.mark.parametrize("action", sorted(RULES))
def test_every_action_is_refused_to_roles_that_may_not_make_it(action):
    state = next(iter(s for s in STATES if s in RULES[action].states))
    order = STATES[state]()
    for actor in (AGENT, SUPERVISOR, HOUSING, SYSTEM):
        if actor.role not in RULES[action].roles:
            refused("forbidden", order, action, actor)


def test_unknown_actions_and_parameters_are_refused():
    refused("unknown_action", accepted(), "delete", AGENT)
    refused("unknown_action", accepted(), None, AGENT)
    refused("bad_params", accepted(), "answer", AGENT, answer="x", priority=1)


def test_a_unit_that_is_not_configured_cannot_act():
    ghost = Actor(Role.UNIT, "x", "ghost-bureau")
    refused("unknown_unit", dispatched(), "sign", ghost)


def test_actors_check_themselves():
    with pytest.raises(TransitionError, match="no role"):
        Actor("mayor", "x")
    with pytest.raises(TransitionError):
        Actor(Role.UNIT, "x")
    with pytest.raises(TransitionError, match="acts for no unit"):
        Actor(Role.AGENT, "x", "housing")
    with pytest.raises(TransitionError, match="printable"):
        Actor(Role.AGENT, "")


def test_apply_leaves_the_order_it_was_given_unchanged():
    order = accepted()
    go(order, "dispatch", AGENT, lead="housing")
    assert order.state is State.ACCEPTED and order.assignments == []


# -- the paths through the life of a work order ------------------------------------


def test_accept_records_the_request_and_checks_it():
    change = apply(
        WorkOrder(),
        "accept",
        AGENT,
        T0,
        catalog=CATALOG,
        params={
            **INTAKE,
            "area": "wuhou",
            "enterprise": True,
            "enterprise_name": "某公司",
        },
    )
    assert change.order.state is State.ACCEPTED
    assert change.before is None and change.after is State.ACCEPTED
    assert change.data["category"] == "consult" and change.data["enterprise"] is True
    refused("unknown_category", WorkOrder(), "accept", AGENT, content="x", category="?")
    refused("missing_text", WorkOrder(), "accept", AGENT, category="consult")
    refused("unknown_area", WorkOrder(), "accept", AGENT, **INTAKE, area="atlantis")
    refused("bad_params", WorkOrder(), "accept", AGENT, **INTAKE, enterprise="yes")
    refused("bad_text", WorkOrder(), "accept", AGENT, **{**INTAKE, "content": "a\x00b"})
    refused(
        "bad_text", WorkOrder(), "accept", AGENT, **{**INTAKE, "content": "x" * 2001}
    )


def test_closed_on_the_spot_from_the_knowledge_base_then_followed_up():
    order = go(accepted(), "answer", AGENT, answer="可在政务服务网办理")
    assert order.state is State.CLOSED and order.assignments == []
    refused("missing_text", accepted(), "answer", AGENT, answer="  ")
    order = go(order, "follow_up", SYSTEM, score=1)
    assert order.state is State.FOLLOWED_UP and order.last_follow_up == 1
    refused("not_unsatisfied", order, "reopen", SUPERVISOR, reason="复查")


def test_the_full_life_with_a_co_unit():
    order = dispatched(co_units=[{"unit": "water", "deadline": "2026-03-06"}])
    assert order.state is State.DISPATCHED
    assert [(a.unit, a.lead, a.deadline) for a in order.assignments] == [
        ("housing", True, date(2026, 3, 9)),
        ("water", False, date(2026, 3, 6)),
    ]
    refused("not_assigned", order, "sign", WUHOU)

    order = go(order, "sign", WATER)
    assert order.state is State.DISPATCHED  # only the lead unit moves the ticket
    order = go(order, "sign", HOUSING)
    assert order.state is State.SIGNED
    refused("wrong_state", order, "sign", HOUSING)

    error = refused("co_units_pending", order, "handle", HOUSING, result="已处理")
    assert "water" in str(error)
    refused("missing_text", order, "handle", WATER)
    order = go(order, "handle", WATER, at("2026-03-05"), result="已检修管网")
    assert order.state is State.SIGNED
    assert order.of_unit("water").on_time() is True
    refused("wrong_state", order, "handle", WATER, result="again")

    order = go(order, "handle", HOUSING, at("2026-03-10"), result="已处理")
    assert order.state is State.HANDLED
    assert order.lead().on_time() is False  # one day past Mar 9

    order = go(order, "send_back", AGENT, reason="答复不完整")
    assert order.state is State.SIGNED and order.lead().handled_at is None
    order = go(order, "handle", HOUSING, at("2026-03-09"), result="补充答复")
    assert order.lead().on_time() is True
    order = go(order, "close", AGENT)
    assert order.state is State.CLOSED
    order = go(order, "follow_up", AGENT, score=2)
    assert order.state is State.FOLLOWED_UP


def test_a_unit_must_sign_before_handling():
    refused("wrong_state", dispatched(), "handle", HOUSING, result="x")


def test_add_a_co_unit_later_with_its_own_deadline():
    order = go(signed(), "add_unit", AGENT, unit="wuhou", working_days=2)
    assert order.of_unit("wuhou").deadline == date(2026, 3, 4)
    assert order.state is State.SIGNED
    refused("duplicate_unit", order, "add_unit", AGENT, unit="wuhou")
    refused("duplicate_unit", order, "add_unit", AGENT, unit="housing")
    refused("unknown_unit", order, "add_unit", AGENT, unit="moon")
    refused(
        "deadline_past", order, "add_unit", AGENT, unit="water", deadline="2026-01-01"
    )
    refused("duplicate_unit", accepted(), "dispatch", AGENT, lead="housing",
            co_units=["housing"])  # fmt: skip


def test_extension_approved_moves_the_deadline():
    order = go(
        signed(), "request_extension", HOUSING, to="2026-03-20", reason="需现场勘查"
    )
    assert order.lead().extension_to == date(2026, 3, 20)
    refused("pending", order, "request_extension", HOUSING, to="2026-03-25", reason="x")
    refused("forbidden", order, "approve_extension", AGENT)
    order = go(order, "approve_extension", SUPERVISOR)
    assert order.lead().deadline == date(2026, 3, 20)
    assert order.lead().extension_to is None and order.lead().extensions == 1
    refused("nothing_pending", order, "approve_extension", SUPERVISOR)


def test_extension_in_working_days_and_refused():
    order = go(dispatched(), "request_extension", HOUSING, working_days=3, reason="x")
    assert order.lead().extension_to == date(2026, 3, 12)
    order = go(order, "refuse_extension", SUPERVISOR, reason="期限充足")
    assert order.lead().deadline == date(2026, 3, 9)
    assert order.lead().extension_to is None
    refused("missing_text", order, "request_extension", HOUSING, working_days=2)


def test_extension_must_be_asked_before_the_deadline_and_for_a_later_day():
    order = signed()
    late = at("2026-03-10")
    refused("too_late", order, "request_extension", HOUSING, late, to="2026-03-20",
            reason="x")  # fmt: skip
    refused("bad_deadline", order, "request_extension", HOUSING, to="2026-03-09",
            reason="x")  # fmt: skip
    refused("bad_date", order, "request_extension", HOUSING, to="soon", reason="x")
    # On the deadline day itself it is still in time.
    go(
        order,
        "request_extension",
        HOUSING,
        at("2026-03-09"),
        to="2026-03-11",
        reason="x",
    )


def test_a_return_by_the_lead_unit_upheld_goes_back_to_the_hotline():
    order = returned()
    assert order.state is State.RETURNED
    assert order.lead().step is Step.RETURNED
    refused("missing_text", signed(), "return", HOUSING, reason="")
    order = go(order, "uphold_return", SUPERVISOR)
    assert order.state is State.ACCEPTED and order.lead() is None
    assert order.round == 2
    assert [a.step for a in order.assignments] == [Step.WITHDRAWN]
    order = go(order, "dispatch", AGENT, lead="wuhou")
    assert order.lead().unit == "wuhou" and order.state is State.DISPATCHED


def test_a_return_overruled_goes_back_to_where_it_was():
    order = go(returned(), "overrule_return", SUPERVISOR, note="属于贵单位职责")
    assert order.state is State.SIGNED and order.lead().step is Step.SIGNED
    order = go(dispatched(), "return", HOUSING, reason="x")
    refused("missing_text", order, "overrule_return", SUPERVISOR)
    order = go(order, "overrule_return", SUPERVISOR, note="请办理")
    assert order.state is State.DISPATCHED
    refused("nothing_pending", order, "uphold_return", SUPERVISOR)


def test_a_co_unit_return_upheld_leaves_the_lead_at_work():
    order = go(signed(), "add_unit", AGENT, unit="water")
    order = go(order, "return", WATER, reason="非本单位")
    assert order.state is State.SIGNED
    order = go(order, "uphold_return", SUPERVISOR, unit="water")
    assert order.of_unit("water") is None
    order = go(order, "handle", HOUSING, result="已处理")
    assert order.state is State.HANDLED


def test_reminders_and_supervision_only_when_overdue():
    order = dispatched()
    refused("not_overdue", order, "remind", AGENT)
    refused("not_overdue", order, "remind", AGENT, unit="housing")
    refused("not_overdue", order, "supervise", SUPERVISOR, note="x")
    late = at("2026-03-10")
    order = go(order, "remind", AGENT, late)
    order = go(order, "remind", AGENT, late, unit="housing", note="请尽快")
    assert order.lead().reminders == 2
    refused("not_assigned", order, "remind", AGENT, late, unit="water")
    refused("missing_text", order, "supervise", SUPERVISOR, late)
    order = go(order, "supervise", SUPERVISOR, late, note="督办")
    assert order.supervised is True and order.state is State.DISPATCHED


def test_an_unsatisfied_follow_up_reopens_for_a_new_dispatch():
    order = followed_up(3)
    refused("missing_text", order, "reopen", SYSTEM)
    order = go(order, "reopen", SYSTEM, reason="回访不满意")
    assert order.state is State.ACCEPTED
    assert order.reopens == 1 and order.round == 2 and order.lead() is None
    # The same unit may be given the ticket again in the new round.
    order = go(order, "dispatch", AGENT, lead="housing")
    assert order.lead().round == 2 and len(order.assignments) == 2
    refused("bad_score", closed(), "follow_up", AGENT, score=4)
    refused("bad_score", closed(), "follow_up", AGENT, score=True)


def test_every_rule_has_its_parameters():
    assert set(RULES) == set(PARAMS)


def test_the_configured_catalog_loads():
    from pathlib import Path

    from ivr.catalog import load_catalog

    catalog = load_catalog(Path(__file__).parents[2] / "config" / "workorder.yaml")
    assert "housing" in catalog.units and "enterprise" in catalog.categories


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"units": []}, "units"),
        ({"units": [{"id": "A b", "name": "x"}], "categories": []}, "unit"),
        (
            {"units": [{"id": "a", "name": "x"}, {"id": "a", "name": "y"}]},
            "twice",
        ),
        (
            {"units": [{"id": "a", "name": "x"}], "categories": [], "extra": 1},
            "unknown",
        ),
        ({"units": [{"id": "a", "name": ""}], "categories": []}, "name"),
    ],
)
def test_the_catalog_refuses_bad_entries(raw, message):
    with pytest.raises(ValueError, match=message):
        Catalog.from_dict(raw)


def test_times_must_carry_a_zone():
    with pytest.raises(ValueError, match="timezone"):
        apply(WorkOrder(), "accept", AGENT, datetime(2026, 3, 2), catalog=CATALOG,
              params=INTAKE)  # fmt: skip
    assert T0 + timedelta(0) == T0
