"""The menu walk over the default plan and small plans made for one behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.dialplans import load_dialplan_file
from routing.dialplan import parse_dialplan
from routing.menu import Collect, Hangup, MenuWalk, Play, Queue, Transfer, simulate

DEFAULT_PLAN = Path(__file__).parents[2] / "dialplans" / "12345.yaml"

WELCOME = "您好，欢迎致电12345政务服务便民热线。为保证服务质量，您的通话将被录音。"


@pytest.fixture(scope="module")
def plan():
    return load_dialplan_file(DEFAULT_PLAN)


def at_menu(plan, language="zh") -> tuple[MenuWalk, Collect]:
    """A walk past the greeting, waiting for the first key."""
    walk = MenuWalk(plan, language)
    assert isinstance(walk.start(), Play)
    step = walk.after_play()
    assert isinstance(step, Collect)
    return walk, step


SMALL = """\
name: small
version: 1
languages: [zh, bo]
zero_for_person: general
prompts:
  hello: {text: {zh: 你好, bo: བཀྲ་ཤིས་བདེ་ལེགས།}}
  main: {text: {zh: 主菜单}}
  sub: {text: {zh: 子菜单}}
  oops: {text: {zh: 按键有误}}
  quiet: {text: {zh: 没有按键}}
  bye: {text: {zh: 再见}}
  ticket: {text: {zh: 请输入工单号}}
desks:
  general: {name: 综合}
  business: {name: 营商环境, queue: q-business}
targets:
  fire: {name: 119 火警, number: "119"}
start: {greeting: hello, menu: main}
menus:
  main:
    prompt: main
    invalid: oops
    no_input: quiet
    keys:
      1: {menu: sub}
      2: {transfer: fire}
      3:
        collect:
          prompt: ticket
          digits: {min: 4, max: 6}
          save_as: ticket_number
          then: {queue: business, priority: 3}
      "*": {hangup: bye}
  sub:
    prompt: sub
    retries: 1
    timeout: 8
    keys:
      1: {queue: business}
      9: {menu: sub}
    on_failure: {hangup: bye}
"""


@pytest.fixture(scope="module")
def small():
    return parse_dialplan(SMALL)


# --- the default plan ---------------------------------------------------------


def test_start_greets_then_asks(plan):
    walk = MenuWalk(plan)
    step = walk.start()
    assert step == Play("welcome", menu="main", text=WELCOME, language="zh")
    step = walk.after_play()
    assert isinstance(step, Collect)
    assert (step.prompt, step.timeout, step.max_digits) == ("main-menu", 5, 1)
    assert step.interruptible
    assert step.text.startswith("企业诉求请按1")


@pytest.mark.parametrize(
    ("key", "desk", "priority", "reason"),
    [
        ("1", "business", 0, "key 1"),
        ("2", "psych", 5, "key 2"),
        ("3", "tibetan", 0, "key 3"),
        ("4", "yi", 0, "key 4"),
        ("0", "general", 0, "zero for a person"),
    ],
)
def test_every_key_of_the_default_plan(plan, key, desk, priority, reason):
    walk, _ = at_menu(plan)
    step = walk.on_key(key)
    assert step == Queue(desk, priority, reason, queue=desk, menu="main")
    assert walk.finished
    assert walk.path == [("main", key)]


def test_nine_repeats_the_menu_and_forgives_failures(plan):
    walk, first = at_menu(plan)
    assert isinstance(walk.on_timeout(), Play)
    assert walk.after_play() == first
    assert walk.on_key("9") == first
    # The count starts again: one more silence is not the second failure.
    assert isinstance(walk.on_timeout(), Play)
    assert walk.after_play() == first
    assert walk.path == [("main", "timeout"), ("main", "9"), ("main", "timeout")]


def test_no_input_twice_goes_to_general(plan):
    walk, ask = at_menu(plan)
    step = walk.on_timeout()
    assert step.prompt == "no-input"
    assert step.text == "对不起，没有收到您的按键。"
    assert walk.after_play() == ask
    assert walk.on_timeout().prompt == "no-input"
    step = walk.after_play()
    assert step == Play("to-agent", "main", "正在为您转接人工服务，请稍候。", "zh")
    step = walk.after_play()
    assert step == Queue("general", 0, "no input twice", queue="general", menu="main")
    assert walk.path == [("main", "timeout"), ("main", "timeout")]


def test_invalid_twice_goes_to_general(plan):
    walk, ask = at_menu(plan)
    assert walk.on_key("7").prompt == "invalid"
    assert walk.after_play() == ask
    assert walk.on_key("#").prompt == "invalid"
    assert walk.after_play().prompt == "to-agent"
    step = walk.after_play()
    assert (step.desk, step.reason) == ("general", "invalid key twice")
    assert walk.path == [("main", "invalid"), ("main", "invalid")]


def test_invalid_then_valid(plan):
    walk, ask = at_menu(plan)
    assert walk.on_key("8") == Play("invalid", "main", "对不起，您的按键有误。", "zh")
    assert walk.after_play() == ask
    assert walk.on_key("2").desk == "psych"
    assert walk.path == [("main", "invalid"), ("main", "2")]


def test_mixed_failures_are_named(plan):
    walk, _ = at_menu(plan)
    walk.on_key("5")
    walk.after_play()
    walk.on_timeout()
    walk.after_play()
    assert walk.after_play().reason == "invalid key and no input"


def test_language_fallback(plan, small):
    # The default plan has no Tibetan text yet: Mandarin, and says so.
    walk, ask = at_menu(plan, language="bo")
    assert ask.language == "zh"
    assert ask.text.startswith("企业诉求")
    # A prompt that has Tibetan text is played in Tibetan.
    walk = MenuWalk(small, language="bo")
    assert walk.start() == Play("hello", "main", "བཀྲ་ཤིས་བདེ་ལེགས།", "bo")
    assert walk.after_play().language == "zh"


def test_unknown_language_refused(plan):
    with pytest.raises(ValueError, match="'en' is not one of zh, bo, ii"):
        MenuWalk(plan, language="en")


def test_steps_out_of_order_are_refused(plan):
    walk = MenuWalk(plan)
    with pytest.raises(RuntimeError, match="not started"):
        walk.on_key("1")
    walk.start()
    with pytest.raises(RuntimeError, match="expected a Collect step"):
        walk.on_key("1")
    walk.after_play()
    with pytest.raises(RuntimeError, match="expected a Play step"):
        walk.after_play()
    walk.on_key("1")
    with pytest.raises(RuntimeError, match="at Queue"):
        walk.on_timeout()
    with pytest.raises(RuntimeError, match="already started"):
        walk.start()


# --- a plan with a submenu, a transfer, a collect, a hangup -------------------


def to_sub(small) -> MenuWalk:
    walk, _ = at_menu(small)
    step = walk.on_key("1")
    assert step == Collect("sub", 8, menu="sub", text="子菜单", language="zh")
    return walk


def test_zero_in_a_submenu(small):
    walk = to_sub(small)
    step = walk.on_key("0")
    assert step == Queue("general", 0, "zero for a person", "general", menu="sub")
    assert walk.path == [("main", "1"), ("sub", "0")]


def test_submenu_key_and_queue_name(small):
    walk = to_sub(small)
    step = walk.on_key("1")
    assert step == Queue("business", 0, "key 1", queue="q-business", menu="sub")


def test_submenu_hangs_up_after_its_one_retry(small):
    walk = to_sub(small)
    # No invalid prompt in this menu: straight to on_failure (retries: 1).
    assert walk.on_key("5") == Hangup("bye", "sub", "再见", "zh")
    assert walk.finished


def test_transfer(small):
    walk, _ = at_menu(small)
    assert walk.on_key("2") == Transfer("fire", "119", "key 2", menu="main")


def test_star_hangs_up(small):
    walk, _ = at_menu(small)
    assert isinstance(walk.on_key("*"), Hangup)


def test_collect_digits(small):
    walk, _ = at_menu(small)
    step = walk.on_key("3")
    assert step == Collect(
        "ticket", 10, max_digits=6, menu="main", text="请输入工单号", language="zh"
    )
    assert walk.on_key("12") == Play("oops", "main", "按键有误", "zh")  # too short
    assert walk.after_play() == step  # the same question again
    step = walk.on_key("123456")
    assert step == Queue("business", 3, "digits entered", "q-business", menu="main")
    assert walk.collected == {"ticket_number": "123456"}
    # The digits may be personal: the path says only that some were entered.
    assert walk.path == [("main", "3"), ("main", "invalid"), ("main", "digits")]


def test_collect_failures_count_for_the_menu(small):
    walk, _ = at_menu(small)
    walk.on_key("3")
    walk.on_timeout()
    assert walk.after_play().prompt == "ticket"
    walk.on_timeout()
    assert walk.after_play() == Queue(
        "general", 0, "no input twice", "general", menu="main"
    )


# --- simulate -----------------------------------------------------------------


def test_simulate_a_call(plan):
    assert simulate(plan, [None, "2"]) == [
        f"[main] play welcome: {WELCOME}",
        "[main] ask main-menu: 企业诉求请按1，心理援助请按2，藏语服务请按3，"
        "彝语服务请按4，人工服务请按0，重听请按9。 (wait 5 s for a key)",
        "  ... no key for 5 s",
        "[main] play no-input: 对不起，没有收到您的按键。",
        "[main] ask main-menu: 企业诉求请按1，心理援助请按2，藏语服务请按3，"
        "彝语服务请按4，人工服务请按0，重听请按9。 (wait 5 s for a key)",
        "  caller presses 2",
        "[main] -> desk psych (queue psych, priority 5): key 2",
    ]


def test_simulate_marks_fallback_and_leftovers(plan):
    lines = simulate(plan, ["4", "1"], language="ii")
    assert lines[0].startswith("[main] play welcome [zh]: ")
    assert lines[-2] == "[main] -> desk yi (queue yi, priority 0): key 4"
    assert lines[-1] == "(keys left over after the call left the menus: 1)"


def test_simulate_runs_out_of_keys(plan):
    assert simulate(plan, [])[-1] == "(no more keys: the call waits in menu main)"


def test_simulate_collect_and_hangup(small):
    lines = simulate(small, ["3", "4321"])
    assert "(wait 10 s for up to 6 digits)" in lines[-3]
    assert lines[-1] == (
        "[main] -> desk business (queue q-business, priority 3): digits entered"
    )
    assert simulate(small, ["*"])[-1] == "[main] hang up after bye: 再见"
