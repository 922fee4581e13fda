"""Notices, opening hours, routing by caller and direct mode: language and walk."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.errors import DialplanError
from routing.callers import CallerFacts, facts_for, normalise_number
from routing.dialplan import parse_dialplan
from routing.hours import BEIJING, calendar_covers, opening
from routing.menu import Collect, MenuWalk, Play, Queue, simulate

# 2025-10-01 (Wed) is National Day; 2025-09-28 (Sun) and 2025-10-11 (Sat) are
# make-up working days; 2025-10-09 (Thu) is an ordinary working day.
HOLIDAY = datetime(2025, 10, 1, 10, 0)
MAKE_UP = datetime(2025, 9, 28, 10, 0)
WORKDAY = datetime(2025, 10, 9, 10, 0)
WORKDAY_NIGHT = datetime(2025, 10, 9, 20, 0)
SATURDAY = datetime(2025, 10, 18, 10, 0)

PLAN = """\
name: features
version: 1
zero_for_person: general
prompts:
  hello: {text: {zh: 你好}}
  main: {text: {zh: 主菜单}}
  flood: {text: {zh: 防汛通知}}
  again: {text: {zh: 按1转接上次的服务台}}
  closed: {text: {zh: 营商环境专席已下班}}
desks:
  general: {name: 综合}
  business:
    name: 营商环境
    hours: "08:30-17:30"
    days: workdays
    when_closed: {play: closed, then: {queue: general}}
  psych: {name: 心理援助}
start: {greeting: hello, menu: main}
notice: {prompt: flood, until: 2025-10-09T12:00:00+08:00}
enterprises:
  numbers: ["01065123456", "+86 138 0000 0001"]
  desk: business
  priority: 3
returning_callers: {days: 7, prompt: again, key: "1"}
menus:
  main:
    prompt: main
    keys:
      1: {queue: business}
      2: {queue: psych, priority: 5}
"""


@pytest.fixture(scope="module")
def plan():
    return parse_dialplan(PLAN, "features.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(DialplanError) as caught:
        parse_dialplan(text, "t.yaml")
    return caught.value.problems


def run(walk: MenuWalk, keys=()) -> list:
    """Every step until the walk needs a key it was not given, or ends."""
    pending = list(keys)
    steps = [walk.start()]
    while not isinstance(steps[-1], Queue):
        step = steps[-1]
        if isinstance(step, Play):
            steps.append(walk.after_play())
        elif pending:
            key = pending.pop(0)
            steps.append(walk.on_key(key) if key else walk.on_timeout())
        else:
            break
    return steps


def prompts(steps) -> list[str]:
    return [s.prompt for s in steps if isinstance(s, Play | Collect)]


# --- notice -----------------------------------------------------------------------


def test_notice_plays_after_greeting_until_it_expires(plan):
    before = run(MenuWalk(plan, now=datetime(2025, 10, 9, 11, 59)))
    assert prompts(before) == ["hello", "flood", "main"]
    after = run(MenuWalk(plan, now=datetime(2025, 10, 9, 12, 0)))
    assert prompts(after) == ["hello", "main"]


def test_notice_compares_in_beijing_time(plan):
    # 03:59 UTC is 11:59 in Beijing: still on.
    utc = datetime(2025, 10, 9, 3, 59, tzinfo=UTC)
    assert prompts(run(MenuWalk(plan, now=utc))) == ["hello", "flood", "main"]


def test_without_a_time_no_notice_and_every_desk_open(plan):
    # The engine's MenuWalk(plan, language="zh") keeps working as before.
    steps = run(MenuWalk(plan, language="zh"), ["1"])
    assert prompts(steps) == ["hello", "main"]
    assert steps[-1] == Queue("business", 0, "key 1", "business", "main")


def test_notice_until_without_zone_is_beijing_time():
    text = PLAN.replace("2025-10-09T12:00:00+08:00", '"2025-10-09T12:00"')
    notice = parse_dialplan(text).notice
    assert notice.until == datetime(2025, 10, 9, 12, 0, tzinfo=BEIJING)


def test_notice_problems_name_their_line():
    text = PLAN.replace("until: 2025-10-09T12:00:00+08:00", "until: 2025-10-09")
    assert problems(text) == [
        "t.yaml:19:32: notice.until: 2025-10-09 has no time of day: write "
        "2025-10-09T00:00 (or the hour the notice ends)"
    ]
    text = PLAN.replace("{prompt: flood,", "{prompt: flod,")
    assert problems(text) == [
        "t.yaml:19:18: undefined prompt 'flod' (did you mean 'flood'?)"
    ]
    text = PLAN.replace("2025-10-09T12:00:00+08:00", "soon")
    assert problems(text) == [
        "t.yaml:19:32: notice.until: 'soon' is not a date and time such as "
        "2026-07-31T18:00"
    ]


# --- opening hours ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        (WORKDAY, True),
        (datetime(2025, 10, 9, 8, 29), False),
        (datetime(2025, 10, 9, 8, 30), True),
        (datetime(2025, 10, 9, 17, 29), True),
        (datetime(2025, 10, 9, 17, 30), False),
        (HOLIDAY, False),
        (MAKE_UP, True),
        (SATURDAY, False),
    ],
)
def test_workdays_follow_the_official_calendar(now, is_open):
    assert opening(["08:30-17:30"], "workdays", now).open is is_open


def test_why_a_desk_is_closed():
    assert opening(["08:30-17:30"], "workdays", HOLIDAY).why == (
        "closed on National Day (statutory holiday)"
    )
    assert opening(["08:30-17:30"], "workdays", MAKE_UP).why == (
        "open 08:30-17:30 on sun, a make-up working day"
    )
    assert opening(["08:30-17:30"], "workdays", WORKDAY_NIGHT).why == (
        "closed at 20:00 (hours 08:30-17:30)"
    )


def test_weekday_lists_close_on_holidays_and_every_day_does_not():
    week = ["mon", "tue", "wed", "thu", "fri", "sat"]
    assert opening(None, week, SATURDAY).open
    assert not opening(None, week, HOLIDAY).open
    assert not opening(None, week, MAKE_UP).open  # Sunday is not listed
    assert opening(None, "every_day", HOLIDAY).open
    assert opening(["00:00-12:00", "13:00-24:00"], "every_day", WORKDAY).open
    assert not opening(
        ["00:00-12:00", "13:00-24:00"], "every_day", WORKDAY.replace(hour=12)
    ).open


def test_no_hours_no_days_is_7x24():
    assert opening(None, None, HOLIDAY).open


def test_a_year_the_calendar_does_not_know_falls_back_to_weekdays():
    later = datetime(2099, 10, 1, 10, 0)  # a Thursday
    assert not calendar_covers(later.date())
    result = opening(["08:30-17:30"], "workdays", later)
    assert result.open and not result.calendar_known
    assert result.why.endswith("(no official calendar for 2099)")


def test_a_closed_desk_does_when_closed(plan):
    steps = run(MenuWalk(plan, now=HOLIDAY), ["1"])
    assert prompts(steps) == ["hello", "flood", "main", "closed"]
    assert steps[-1].desk == "general"
    assert steps[-1].reason == (
        "key 1; desk business closed on National Day (statutory holiday)"
    )


def test_an_open_desk_is_queued_directly(plan):
    steps = run(MenuWalk(plan, now=MAKE_UP), ["1"])
    assert steps[-1] == Queue("business", 0, "key 1", "business", "main")


def test_default_when_closed_is_the_general_desk():
    text = PLAN.replace("    when_closed: {play: closed, then: {queue: general}}\n", "")
    steps = run(MenuWalk(parse_dialplan(text), now=WORKDAY_NIGHT), ["1"])
    assert prompts(steps) == ["hello", "main"]
    assert (steps[-1].desk, steps[-1].queue) == ("general", "general")


def test_a_closed_desk_can_hand_over_to_another_desk_with_hours():
    text = PLAN.replace(
        "  psych: {name: 心理援助}\n",
        "  psych: {name: 心理援助, hours: '09:00-21:00', days: every_day,"
        " when_closed: {queue: business}}\n",
    )
    plan = parse_dialplan(text)
    # psych closed at 22:00 hands over to business, closed too: general.
    steps = run(MenuWalk(plan, now=WORKDAY.replace(hour=22)), ["2"])
    assert steps[-1].desk == "general"
    assert steps[-1].priority == 5  # the caller keeps their priority
    steps = run(MenuWalk(plan, now=WORKDAY_NIGHT), ["2"])
    assert steps[-1].desk == "psych"


# --- routing by caller ------------------------------------------------------------


def test_registered_enterprise_goes_straight_to_its_desk(plan):
    walk = MenuWalk(plan, caller=CallerFacts(is_enterprise=True), now=WORKDAY)
    steps = run(walk)
    assert prompts(steps) == ["hello", "flood"]  # greeting and notice, no menu
    assert steps[-1] == Queue(
        "business", 3, "registered enterprise", "business", "main"
    )
    assert walk.path == [("enterprises", "registered")]


def test_enterprise_desk_closed_keeps_priority(plan):
    steps = run(MenuWalk(plan, caller=CallerFacts(is_enterprise=True), now=HOLIDAY))
    assert prompts(steps) == ["hello", "flood", "closed"]
    assert (steps[-1].desk, steps[-1].priority) == ("general", 3)


def test_returning_caller_reaches_the_same_desk_with_one_key(plan):
    walk = MenuWalk(plan, caller=CallerFacts(recent_desk="psych"), now=WORKDAY_NIGHT)
    steps = run(walk, ["1"])
    assert prompts(steps) == ["hello", "again"]
    offer = steps[-2]
    assert isinstance(offer, Collect) and (offer.timeout, offer.menu) == (3, "")
    assert steps[-1] == Queue("psych", 0, "returning caller", "psych", "main")
    assert walk.path == [("returning_callers", "1")]


def test_returning_caller_who_waits_meets_the_menu(plan):
    walk = MenuWalk(plan, caller=CallerFacts(recent_desk="psych"), now=WORKDAY_NIGHT)
    steps = run(walk, [None])
    assert prompts(steps) == ["hello", "again", "main"]
    assert walk.path == [("returning_callers", "timeout")]


def test_returning_caller_pressing_a_menu_key_gets_it(plan):
    walk = MenuWalk(plan, caller=CallerFacts(recent_desk="business"), now=WORKDAY)
    # The offer's key is 1; 2 is the first menu's psych key.
    steps = run(walk, ["2"])
    assert steps[-1] == Queue("psych", 5, "key 2", "psych", "main")
    assert walk.path == [("returning_callers", "2"), ("main", "2")]
    # A key the menu does not know just starts the menu, with no failure.
    walk = MenuWalk(plan, caller=CallerFacts(recent_desk="business"), now=WORKDAY)
    steps = run(walk, ["7"])
    assert isinstance(steps[-1], Collect) and steps[-1].prompt == "main"


def test_a_recent_desk_the_plan_lost_or_no_offer_configured_means_no_offer(plan):
    steps = run(MenuWalk(plan, caller=CallerFacts(recent_desk="gone"), now=WORKDAY))
    assert prompts(steps) == ["hello", "flood", "main"]
    bare = parse_dialplan(
        PLAN.replace('returning_callers: {days: 7, prompt: again, key: "1"}\n', "")
    )
    steps = run(
        MenuWalk(bare, caller=CallerFacts(recent_desk="psych"), now=WORKDAY_NIGHT)
    )
    assert prompts(steps) == ["hello", "main"]


# --- direct mode ------------------------------------------------------------------

DIRECT = PLAN.replace("version: 1\n", "version: 1\nmode: direct\n").replace(
    "start: {greeting: hello, menu: main}", "start: {greeting: hello, desk: psych}"
)


def test_direct_mode_sends_every_caller_to_a_person():
    plan = parse_dialplan(DIRECT)
    steps = run(MenuWalk(plan, now=WORKDAY_NIGHT))
    assert prompts(steps) == ["hello"]
    assert steps[-1] == Queue("psych", 0, "direct", "psych", "")
    facts = CallerFacts(recent_desk="business")
    steps = run(MenuWalk(plan, caller=facts, now=WORKDAY.replace(hour=14)))
    assert (
        steps[-1].desk == "business" and steps[-1].reason == "direct: returning caller"
    )
    steps = run(MenuWalk(plan, caller=CallerFacts(is_enterprise=True), now=HOLIDAY))
    assert (steps[-1].desk, steps[-1].priority) == ("general", 3)


def test_direct_mode_needs_no_menus_and_defaults_to_general():
    text = DIRECT.split("menus:\n")[0].replace(", desk: psych", "")
    plan = parse_dialplan(text)
    assert plan.menus == {} and plan.start.menu is None
    assert run(MenuWalk(plan))[-1].desk == "general"


def test_menu_mode_needs_a_start_menu_and_menus():
    text = PLAN.replace(
        "start: {greeting: hello, menu: main}", "start: {greeting: hello}"
    )
    assert problems(text) == [
        "t.yaml:18:1: start: missing field 'menu' (the first menu; or set mode: "
        "direct to send every caller straight to a person)",
    ]
    text = PLAN.split("menus:\n")[0].replace("menu: main}", "menu: main}\nmenus: {}")
    assert "t.yaml:19:1: menus: a plan in menu mode needs at least one menu " in (
        " ".join(problems(text))
    )


# --- validation with line numbers -------------------------------------------------


def test_hours_problems_name_their_line():
    bad = PLAN.replace('hours: "08:30-17:30"', 'hours: "8:30-17:30"')
    assert problems(bad) == [
        "t.yaml:14:12: desks.business.hours: '8:30-17:30' is not a time range such "
        'as "08:30-17:30" (24-hour clock, two digits each)'
    ]
    bad = PLAN.replace('hours: "08:30-17:30"', 'hours: ["08:00-12:00", "11:00-17:30"]')
    assert problems(bad) == [
        "t.yaml:14:12: desks.business.hours: 08:00-12:00 and 11:00-17:30 overlap"
    ]
    bad = PLAN.replace('hours: "08:30-17:30"', 'hours: "22:00-06:00"')
    assert problems(bad)[0].startswith(
        "t.yaml:14:12: desks.business.hours: '22:00-06:00' ends before it starts"
    )
    bad = PLAN.replace("days: workdays", "days: weekdays")
    assert problems(bad) == [
        "t.yaml:15:11: desks.business.days: days 'weekdays': write workdays, "
        "every_day or a list of weekdays such as [mon, tue, wed, thu, fri, sat]"
    ]
    bad = PLAN.replace("days: workdays", "days: [mon, tuesday]")
    assert problems(bad) == [
        "t.yaml:15:11: desks.business.days: 'tuesday' is not a weekday: use mon, "
        "tue, wed, thu, fri, sat, sun"
    ]


def test_general_desk_answers_7x24():
    bad = PLAN.replace(
        "  general: {name: 综合}", "  general: {name: 综合, days: workdays}"
    )
    assert problems(bad) == [
        "t.yaml:11:23: desk 'general' must answer 7x24: it is the last resort of "
        "every call, so it cannot have days"
    ]


def test_when_closed_problems():
    loop = PLAN.replace(
        "  psych: {name: 心理援助}\n",
        "  psych: {name: 心理援助, hours: '09:00-21:00',"
        " when_closed: {queue: business}}\n",
    ).replace("then: {queue: general}}", "then: {queue: psych}}")
    assert problems(loop) == [
        "t.yaml:16:18: when_closed of desk 'business' loops (business -> psych -> "
        "business) when they are all closed: end at a desk open 7x24 such as general"
    ]
    bad = PLAN.replace("then: {queue: general}}", "then: {queue: generla}}")
    assert problems(bad) == [
        "t.yaml:16:47: undefined desk 'generla' (did you mean 'general'?)"
    ]
    bad = PLAN.replace(
        "when_closed: {play: closed, then: {queue: general}}",
        "when_closed: {collect: {prompt: closed, digits: {max: 4}, save_as: n,"
        " then: {queue: general}}}",
    )
    assert problems(bad) == [
        "t.yaml:16:18: when_closed cannot collect digits: send the call to a menu"
    ]


def test_when_closed_may_open_a_menu_that_is_then_reachable():
    text = (
        PLAN.replace(
            "when_closed: {play: closed, then: {queue: general}}",
            "when_closed: {menu: after-hours}",
        )
        + "  after-hours:\n    prompt: closed\n    keys: {1: {queue: general}}\n"
    )
    plan = parse_dialplan(text)
    steps = run(MenuWalk(plan, now=HOLIDAY), ["1"])
    assert isinstance(steps[-1], Collect) and steps[-1].menu == "after-hours"


def test_enterprise_and_returning_caller_problems():
    bad = PLAN.replace('"+86 138 0000 0001"', '"+86 138 0000 0001", "010-65123456"')
    assert problems(bad) == [
        "t.yaml:21:49: number '010-65123456' is listed twice (also item 1)"
    ]
    bad = PLAN.replace('["01065123456",', "[01065123456,")
    assert problems(bad) == [
        "t.yaml:21:13: enterprises.numbers.0: must be text (put numbers in quotes: "
        '"110"), not 1065123456'
    ]
    bad = PLAN.replace("desk: business\n  priority: 3", "desk: busines\n  priority: 3")
    assert problems(bad) == [
        "t.yaml:22:9: undefined desk 'busines' (did you mean 'business'?)"
    ]
    bad = PLAN.replace('key: "1"}', 'key: "0"}')
    assert problems(bad) == [
        "t.yaml:24:50: key 0 reaches a person (zero_for_person): offer another key"
    ]
    # A broken optional section does not hide the problems elsewhere.
    bad = PLAN.replace("days: 7,", "days: 365,").replace(
        "{queue: psych,", "{queue: psyche,"
    )
    assert problems(bad) == [
        "t.yaml:24:27: returning_callers.days: must be at most 90, not 365",
        "t.yaml:30:18: undefined desk 'psyche' (did you mean 'psych'?)",
    ]


# --- caller facts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "national"),
    [
        ("13800000001", "13800000001"),
        ("+86 138 0000 0001", "13800000001"),
        ("008613800000001", "13800000001"),
        ("8613800000001", "13800000001"),
        ("010-6512-3456", "01065123456"),
        ("+86 10 6512 3456", "01065123456"),
        ("12345", "12345"),
    ],
)
def test_numbers_are_compared_in_national_form(raw, national):
    assert normalise_number(raw) == national


def test_facts_for_a_caller(plan):
    now = datetime(2025, 10, 9, 10, 0, tzinfo=BEIJING)
    tickets = [
        (datetime(2025, 9, 1, tzinfo=UTC), "business"),  # too old
        (datetime(2025, 10, 5, tzinfo=UTC), "psych"),
        (datetime(2025, 10, 6, tzinfo=UTC), None),  # hung up in the menu
        (datetime(2025, 10, 7, tzinfo=UTC), "gone"),  # a desk since removed
    ]
    facts = facts_for(plan, "+8613800000001", tickets, now)
    assert facts == CallerFacts(is_enterprise=True, recent_desk="psych")
    assert facts_for(plan, "13900000000", [], now) == CallerFacts()


def test_caller_facts_check_themselves():
    with pytest.raises(ValueError, match="not a desk name"):
        CallerFacts(recent_desk="Business Desk")
    with pytest.raises(TypeError):
        CallerFacts(is_enterprise="yes")


def test_simulate_takes_caller_and_time(plan):
    lines = simulate(plan, ["1"], caller=CallerFacts(recent_desk="psych"), now=HOLIDAY)
    assert lines == [
        "[main] play hello: 你好",
        "[main] play flood: 防汛通知",
        "ask again: 按1转接上次的服务台 (wait 3 s for a key)",
        "  caller presses 1",
        "[main] -> desk psych (queue psych, priority 0): returning caller",
    ]
