"""The dial plan compiled to native Asterisk dialplan, checked against MenuWalk."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.dialplans import load_dialplan_file
from routing.dialplan import parse_dialplan
from routing.menu import Collect, Hangup, MenuWalk, Play, Queue, Transfer
from routing.native import compile_dialplan
from tests.support.dialplan_sim import parse, run

DEFAULT_PLAN = Path(__file__).parents[2] / "dialplans" / "12345.yaml"
SOUNDS = "/srv/yihaotong/x/sounds"

# Every action word, nested actions, collects after collects, retries 1 and
# 3, a menu without failure prompts and one that uses 0 itself.
RICH = """\
name: rich
version: 1
languages: [zh, bo]
zero_for_person: general
prompts:
  hello: {text: {zh: 你好, bo: བཀྲ་ཤིས་བདེ་ལེགས།}}
  main: {text: {zh: 主菜单}}
  sub: {text: {zh: 子菜单}}
  third: {text: {zh: 第三}}
  oops: {text: {zh: 按键有误}}
  quiet: {text: {zh: 没有按键}}
  bye: {text: {zh: 再见}}
  ticket: {text: {zh: 请输入工单号}}
  id: {text: {zh: 请输入身份证后四位}}
  wait: {text: {zh: 请稍候}}
desks:
  general: {name: 综合}
  business: {name: 营商环境, queue: q-business}
  psych: {name: 心理援助}
targets:
  fire: {name: 119 火警, number: "119"}
start: {greeting: hello, menu: main}
menus:
  main:
    prompt: main
    invalid: oops
    no_input: quiet
    retries: 3
    keys:
      1: {menu: sub}
      2: {transfer: fire}
      3:
        collect:
          prompt: ticket
          digits: {min: 4, max: 6}
          save_as: ticket_number
          timeout: 7
          then:
            collect:
              prompt: id
              digits: {max: 4}
              save_as: id-tail
              then: {play: wait, then: {queue: business, priority: 3}}
      "*": {hangup: bye}
      9: {menu: main}
    on_failure: {play: wait, then: {queue: general}}
  sub:
    prompt: sub
    retries: 1
    timeout: 8
    keys:
      0: {queue: psych, priority: 7}
      1: {queue: business}
      5: {menu: third}
      9: {menu: sub}
    on_failure: {hangup: bye}
  third:
    prompt: third
    invalid: oops
    keys:
      1: {menu: main}
      2:
        collect:
          prompt: ticket
          digits: {min: 2, max: 2}
          save_as: last_chance
          then: {queue: psych}
    on_failure: {play: wait, then: {menu: main}}
"""


@pytest.fixture(scope="module")
def default_plan():
    return load_dialplan_file(DEFAULT_PLAN)


@pytest.fixture(scope="module")
def rich():
    return parse_dialplan(RICH)


def walk_trace(plan, inputs, language="zh"):
    """What MenuWalk does with the same tokens, in the simulator's terms."""
    walk = MenuWalk(plan, language)
    pending = list(inputs)
    trace = []
    step = walk.start()
    while True:
        if isinstance(step, Play):
            trace.append(("play", step.prompt))
            step = walk.after_play()
        elif isinstance(step, Collect):
            trace.append(("ask", step.prompt))
            if not pending:
                trace.append(("waiting",))
                return trace
            value = (pending.pop(0) or "")[: step.max_digits]
            step = walk.on_key(value) if value else walk.on_timeout()
        elif isinstance(step, Queue):
            trace.append(("queue", step.queue, step.priority))
            return trace
        elif isinstance(step, Hangup):
            trace += [("play", step.prompt), ("hangup",)]
            return trace
        elif isinstance(step, Transfer):
            # The IVR engine cannot transfer yet: it sends the call to general.
            trace.append(("queue", plan.queue_name("general"), 0))
            return trace


def native_trace(plan, inputs, language="zh"):
    text = compile_dialplan(plan, sounds_dir=SOUNDS, language=language)
    return run(text, inputs, "yht-native")


# --- the default plan -------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "end"),
    [
        (["1"], ("queue", "business", 0)),
        (["2"], ("queue", "psych", 5)),
        (["3"], ("queue", "tibetan", 0)),
        (["4"], ("queue", "yi", 0)),
        (["0"], ("queue", "general", 0)),
        (["9", "1"], ("queue", "business", 0)),
        ([None, None], ("queue", "general", 0)),
        (["7", "8"], ("queue", "general", 0)),
        (["7", "9", "7", "3"], ("queue", "tibetan", 0)),
    ],
)
def test_default_plan_routes_like_the_menu_walk(default_plan, inputs, end):
    trace = native_trace(default_plan, inputs)
    assert trace == walk_trace(default_plan, inputs)
    assert trace[-1] == end


def test_default_plan_text(default_plan):
    text = compile_dialplan(default_plan, sounds_dir=SOUNDS + "/")
    lines = text.splitlines()
    assert "[yht-native]" in lines
    assert "[yht-native-main]" in lines
    assert "exten => s,1,Answer()" in lines
    assert f" same => n,Playback({SOUNDS}/zh/welcome)" in lines
    assert f" same => n(ask),BackGround({SOUNDS}/zh/main-menu)" in lines
    assert " same => n,WaitExten(5)" in lines
    assert " same => n,GotoIf($[${YHT_FAILS} < 2]?s,ask)" in lines
    assert " same => n,Queue(${YHT_DESK})" in lines
    # The menu's context holds single keys, i and t only: no key waits for a
    # second digit, and nothing else can be dialled from it.
    menu = parse(text).contexts["yht-native-main"]
    assert sorted(menu) == ["0", "1", "2", "3", "4", "9", "i", "s", "t"]
    assert text.endswith("\n")
    assert "@@" not in text


def test_a_menu_that_uses_zero_keeps_it(rich):
    trace = native_trace(rich, ["1", "0"])
    assert trace[-1] == ("queue", "psych", 7)


def test_languages_fall_back_to_mandarin(rich):
    text = compile_dialplan(rich, sounds_dir=SOUNDS, language="bo")
    assert f"Playback({SOUNDS}/bo/hello)" in text
    assert f"BackGround({SOUNDS}/zh/main)" in text


def test_collects_check_their_digits(rich):
    text = compile_dialplan(rich, sounds_dir=SOUNDS)
    assert '${REGEX("^[0-9]{4,6}$" ${YHT_DIGITS})}' in text
    assert f"Read(YHT_DIGITS,{SOUNDS}/zh/ticket,6,,1,7)" in text
    assert "Set(YHT_ID_TAIL=${YHT_DIGITS})" in text
    assert native_trace(rich, ["3", "12345", "12"])[-1] == (
        "queue",
        "q-business",
        3,
    )


def test_a_direct_plan_queues_after_the_greeting():
    plan = parse_dialplan(
        """\
name: direct
version: 1
mode: direct
prompts:
  hello: {text: {zh: 你好}}
desks:
  general: {name: 综合}
  business: {name: 营商环境, queue: q-business}
start: {greeting: hello, desk: business}
"""
    )
    assert native_trace(plan, []) == [("play", "hello"), ("queue", "q-business", 0)]
    assert native_trace(plan, []) == walk_trace(plan, [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sounds_dir": "sounds"}, "absolute path"),
        ({"sounds_dir": "/a b"}, "absolute path"),
        ({"sounds_dir": "/a,b"}, "absolute path"),
        ({"sounds_dir": SOUNDS, "prefix": "Bad_Prefix"}, "prefix"),
        ({"sounds_dir": SOUNDS, "language": "en"}, "language"),
    ],
)
def test_refuses_what_would_break_the_dialplan(default_plan, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compile_dialplan(default_plan, **kwargs)


# --- any caller, any plan ---------------------------------------------------

TOKENS = st.one_of(
    st.none(),
    st.sampled_from(list("0123456789*")),
    st.text(alphabet="0123456789*", min_size=2, max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(inputs=st.lists(TOKENS, max_size=10))
def test_rich_plan_matches_the_menu_walk(rich, inputs):
    assert native_trace(rich, inputs) == walk_trace(rich, inputs)


@settings(max_examples=100, deadline=None)
@given(inputs=st.lists(TOKENS, max_size=8))
def test_default_plan_matches_the_menu_walk(default_plan, inputs):
    assert native_trace(default_plan, inputs) == walk_trace(default_plan, inputs)
