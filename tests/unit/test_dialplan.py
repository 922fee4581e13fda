"""The dial plan language: the default plan, and each broken plan's problems."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ivr.dialplans import load_dialplan_file, main_check
from ivr.errors import DialplanError
from routing.dialplan import (
    DialPlan,
    PlayAction,
    QueueAction,
    json_schema,
    missing_recordings,
    parse_dialplan,
    required_recordings,
)

DEFAULT_PLAN = Path(__file__).parents[2] / "dialplans" / "12345.yaml"

# Lines 1-9 of most plans below; their own text starts at line 10.
HEADER = """\
name: test
version: 1
prompts:
  menu: {text: {zh: 请按键}}
  bye: {text: {zh: 再见}}
desks:
  general: {name: 综合}
  business: {name: 营商环境}
start: {menu: main}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(DialplanError) as caught:
        parse_dialplan(text, "t.yaml")
    return caught.value.problems


def only(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --- the default plan -------------------------------------------------------


def test_default_plan_is_clean():
    plan = load_dialplan_file(DEFAULT_PLAN)
    assert set(plan.desks) == {"general", "business", "psych", "tibetan", "yi"}
    assert plan.languages == ["zh", "bo", "ii"]
    assert plan.zero_for_person == "general"
    main = plan.menus[plan.start.menu]
    assert set(main.keys) == {"1", "2", "3", "4", "9"}
    assert (main.timeout, main.retries) == (5, 2)
    assert main.on_failure == PlayAction(
        play="to-agent", then=QueueAction(queue="general")
    )


def test_main_check_ok(capsys):
    assert main_check(DEFAULT_PLAN) == 0
    assert capsys.readouterr().out == f"{DEFAULT_PLAN}: ok (1 menus, 5 desks)\n"


def test_main_check_prints_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        HEADER + "menus:\n  main:\n    prompt: nope\n"
        "    keys: {1: {x: y}, 2: {queue: business}}\n"
    )
    # The broken key does not hide the undefined prompt of the same menu.
    assert main_check(bad) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{bad}:12:13: undefined prompt 'nope' (defined: bye, menu)",
        f"{bad}:13:15: menus.main.keys.1: an action needs exactly one of: "
        "menu, queue, hangup, play, transfer, collect",
    ]


def test_recordings_needed_and_missing():
    plan = load_dialplan_file(DEFAULT_PLAN)
    needed = required_recordings(plan)
    assert ("zh", "welcome") in needed
    assert all(lang == "zh" for lang, _ in needed)  # no bo/ii text yet
    have = needed - {("zh", "invalid")}
    assert missing_recordings(plan, have) == [("zh", "invalid")]
    assert missing_recordings(plan, needed) == []


def test_json_schema():
    schema = json_schema()
    assert schema["title"] == "yihaotong dial plan"
    assert schema["additionalProperties"] is False
    menu = schema["$defs"]["Menu"]["properties"]
    assert menu["timeout"]["maximum"] == 30
    assert menu["keys"]["additionalProperties"] is False
    assert "^[0-9*#]$" in menu["keys"]["patternProperties"]


def test_minimal_plan_defaults():
    text = HEADER + "menus:\n  main:\n    prompt: menu\n"
    plan = parse_dialplan(text + "    keys: {1: {queue: business}}\n")
    assert isinstance(plan, DialPlan)
    main = plan.menus["main"]
    assert (main.timeout, main.retries) == (5, 2)
    assert main.invalid is main.no_input is None
    assert main.on_failure == QueueAction(queue="general")
    assert plan.languages == ["zh"]
    assert plan.queue_name("business") == "business"


# --- YAML level -----------------------------------------------------------------


def test_syntax_error():
    text = HEADER + "menus:\n  main:\n    prompt: [menu\n    keys: 1\n"
    problem = only(text)
    assert problem.startswith("t.yaml:13:9: YAML syntax error")


def test_tab_indentation_hint():
    problem = only("name: x\n\tversion: 1\n")
    assert problem.startswith("t.yaml:2:")
    assert "tabs" in problem


def test_duplicate_key():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    timeout: 5\n"
        "    keys: {1: {queue: business}}\n"
        "    timeout: 6\n"
    )
    assert only(text) == "t.yaml:15:5: duplicate key 'timeout' (first at line 13)"


def test_duplicate_dtmf_key_quoted_and_not():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys:\n"
        "      1: {queue: business}\n"
        "      '1': {queue: general}\n"
    )
    assert only(text) == "t.yaml:15:7: duplicate key '1' (first at line 14)"


def test_alias_bomb_is_refused_quickly():
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    began = time.monotonic()
    found = problems("\n".join(lines) + "\n")
    assert time.monotonic() - began < 1
    assert found[0].startswith("t.yaml:1:5: anchors and aliases (&a0) are not allowed")
    assert "never needs them" in found[0]
    assert found[1].startswith("t.yaml:2:5: anchors and aliases (&a1)")
    assert "too many anchors and aliases" in found[-1]


def test_single_alias_names_its_line():
    text = HEADER.replace("{name: 综合}", "&g {name: 综合}") + (
        "menus:\n  main:\n    prompt: menu\n    keys: {1: *g}\n"
    )
    assert problems(text) == [
        "t.yaml:7:12: anchors and aliases (&g) are not allowed: a dial plan never "
        "needs them, write the value out",
        "t.yaml:13:15: anchors and aliases (*g) are not allowed: a dial plan never "
        "needs them, write the value out",
    ]


def test_oversize_text_refused():
    assert only("#" * 1_000_001) == "t.yaml:1: larger than 1 MB; refused"


def test_oversize_file_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# padding\n" * 100_001)
    with pytest.raises(DialplanError) as caught:
        load_dialplan_file(big)
    assert caught.value.problems == [f"{big}:1: larger than 1 MB; refused"]


def test_unreadable_and_not_utf8(tmp_path):
    with pytest.raises(DialplanError, match=r"nope.yaml:1: cannot read"):
        load_dialplan_file(tmp_path / "nope.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: x\nversion: 1\n# caf\xe9\n")
    with pytest.raises(DialplanError, match=r"latin.yaml:3: not UTF-8"):
        load_dialplan_file(latin)


def test_tags_documents_empty_and_non_mapping():
    assert only("name: !!str x\n").startswith("t.yaml:1:7: YAML tags")
    assert "only one YAML document" in only("name: x\n---\nname: y\n")
    assert only("") == "t.yaml:1:1: the dial plan is empty"
    assert "is a mapping" in only("- a\n- b\n")


def test_deep_nesting_and_complex_keys_refused():
    assert only("a: " + "[" * 5000) == "t.yaml:1:23: nested deeper than 20 levels"
    assert only("? [a, b]\n: c\n") == (
        "t.yaml:1:3: a key must be a plain word, not a list or map"
    )


def test_duplicate_key_does_not_hide_other_problems():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    prompt: menu\n"
        "    keys: {1: {queue: nobody}}\n"
    )
    assert problems(text) == [
        "t.yaml:13:5: duplicate key 'prompt' (first at line 12)",
        "t.yaml:14:23: undefined desk 'nobody' (defined: business, general)",
    ]


def test_hash_key_read_as_comment():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys:\n"
        "      1: {queue: business}\n"
        "      #: {queue: general}\n"
    )
    problem = only(text)
    assert problem.startswith("t.yaml:15:7: '#:' is read as a comment")


def test_star_and_hash_keys_when_quoted():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys:\n"
        '      "*": {queue: business}\n'
        '      "#": {menu: main}\n'
    )
    assert set(parse_dialplan(text).menus["main"].keys) == {"*", "#"}


def test_bare_star_key_gets_a_hint():
    text = HEADER + "menus:\n  main:\n    prompt: menu\n    keys:\n      *: {}\n"
    problem = only(text)
    assert problem.startswith("t.yaml:14:")
    assert 'quotes: "*"' in problem


# --- values -------------------------------------------------------------------


def test_unknown_field_with_suggestion():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    tiemout: 5\n"
        "    keys: {1: {queue: business, priorty: 3}}\n"
    )
    assert problems(text) == [
        "t.yaml:13:5: unknown field 'tiemout' (did you mean 'timeout'?)",
        "t.yaml:14:33: unknown field 'priorty' (did you mean 'priority'?)",
    ]


def test_unknown_field_without_close_match():
    text = (
        HEADER
        + "colour: red\nmenus:\n  main:\n    prompt: menu\n"
        + ("    keys: {1: {queue: business}}\n")
    )
    assert only(text) == "t.yaml:10:1: unknown field 'colour'"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("timeout: 0", "timeout: must be at least 1, not 0"),
        ("timeout: 45", "timeout: must be at most 30, not 45"),
        ("retries: 9", "retries: must be at most 5, not 9"),
        ("retries: 0", "retries: must be at least 1, not 0"),
        ('timeout: "5"', "timeout: must be a whole number, not '5'"),
    ],
)
def test_out_of_range(line, expected):
    text = HEADER + "menus:\n  main:\n    prompt: menu\n"
    text += f"    {line}\n    keys: {{1: {{queue: business}}}}\n"
    assert only(text) == f"t.yaml:13:14: menus.main.{expected}"


def test_bad_dtmf_keys():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys:\n"
        "      1: {queue: business}\n"
        "      12: {queue: business}\n"
        "      a: {queue: business}\n"
    )
    assert problems(text) == [
        "t.yaml:15:7: menus.main.keys.12: '12' is not a DTMF key: "
        'use one of 0-9, "*" or "#"',
        "t.yaml:16:7: menus.main.keys.a: 'a' is not a DTMF key: "
        'use one of 0-9, "*" or "#"',
    ]


def test_priority_range_in_nested_action():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys:\n"
        "      1:\n"
        "        play: bye\n"
        "        then: {queue: business, priority: 11}\n"
    )
    assert only(text) == (
        "t.yaml:16:43: menus.main.keys.1.then.priority: must be at most 10, not 11"
    )


def test_action_needs_exactly_one_word():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys:\n"
        "      1: {queue: business, menu: main}\n"
        "      2: {}\n"
        "      3: business\n"
    )
    found = problems(text)
    assert [p.split(": ")[0] for p in found] == [
        "t.yaml:14:10",
        "t.yaml:15:10",
        "t.yaml:16:10",
    ]
    assert all("exactly one of: menu, queue, hangup" in p for p in found)


def test_misspelt_action_word_gets_a_suggestion():
    text = HEADER + "menus:\n  main:\n    prompt: menu\n    keys: {1: {qeueu: x}}\n"
    assert only(text) == (
        "t.yaml:13:15: menus.main.keys.1: an action needs exactly one of: menu, "
        "queue, hangup, play, transfer, collect (did you mean 'queue'?)"
    )


def test_missing_field_and_bad_name():
    text = HEADER + "menus:\n  Main Menu:\n    keys: {1: {queue: business}}\n"
    found = problems(text)
    assert "t.yaml:11:3: menus.Main Menu: 'Main Menu' is not a valid name" in found[0]
    assert found[1] == "t.yaml:11:3: menus.Main Menu: missing field 'prompt'"
    assert len(found) == 2


def test_version_and_number_types():
    text = HEADER.replace("version: 1", "version: 2") + (
        "targets:\n  police: {name: 报警, number: 110}\n"
        "menus:\n  main:\n    prompt: menu\n    keys: {1: {transfer: police}}\n"
    )
    assert problems(text) == [
        "t.yaml:2:10: version: must be 1, not 2",
        "t.yaml:11:30: targets.police.number: must be text "
        '(put numbers in quotes: "110"), not 110',
    ]


def test_digits_min_above_max():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys:\n"
        "      1:\n"
        "        collect:\n"
        "          prompt: menu\n"
        "          digits: {min: 8, max: 4}\n"
        "          save_as: ticket\n"
        "          then: {queue: general}\n"
    )
    assert only(text) == (
        "t.yaml:17:19: menus.main.keys.1.collect.digits: min (8) is larger than max (4)"
    )


# --- references and the menu graph ------------------------------------------


def test_undefined_desk_menu_prompt_target():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menuu\n"
        "    invalid: oops\n"
        "    keys:\n"
        "      1: {queue: bussiness}\n"
        "      2: {menu: mian}\n"
        "      3: {hangup: goodbye}\n"
        "      4: {transfer: police}\n"
    )
    assert problems(text) == [
        "t.yaml:12:13: undefined prompt 'menuu' (did you mean 'menu'?)",
        "t.yaml:13:14: undefined prompt 'oops' (defined: bye, menu)",
        "t.yaml:15:18: undefined desk 'bussiness' (did you mean 'business'?)",
        "t.yaml:16:17: undefined menu 'mian' (did you mean 'main'?)",
        "t.yaml:17:19: undefined prompt 'goodbye' (defined: bye, menu)",
        "t.yaml:18:21: undefined target 'police'",
    ]


def test_undefined_greeting_start_menu_and_zero_desk():
    text = HEADER.replace("start: {menu: main}", "start: {greeting: hi, menu: mainn}")
    text += "zero_for_person: people\nmenus:\n  main:\n    prompt: menu\n"
    text += "    keys: {1: {queue: business}}\n"
    assert problems(text) == [
        "t.yaml:9:19: undefined prompt 'hi' (defined: bye, menu)",
        "t.yaml:9:29: undefined menu 'mainn' (did you mean 'main'?)",
        "t.yaml:10:18: undefined desk 'people' (defined: business, general)",
    ]


def test_general_desk_missing():
    text = HEADER.replace("  general: {name: 综合}\n", "") + (
        "menus:\n  main:\n    prompt: menu\n    keys: {1: {queue: business}}\n"
    )
    assert only(text) == (
        "t.yaml:6:1: desk 'general' is missing: it is the last resort for every call"
    )


def test_unreachable_menu():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys: {1: {queue: business}}\n"
        "  orphan:\n"
        "    prompt: menu\n"
        "    keys: {1: {queue: business}}\n"
    )
    assert only(text) == (
        "t.yaml:14:3: menu 'orphan' is unreachable: no path from start leads to it"
    )


def test_menu_with_no_way_out():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys: {1: {queue: business}, 2: {menu: a}}\n"
        "  a:\n"
        "    prompt: menu\n"
        "    keys: {1: {menu: b}}\n"
        "    on_failure: {menu: b}\n"
        "  b:\n"
        "    prompt: menu\n"
        "    keys: {1: {menu: a}, 2: {play: bye, then: {menu: a}}}\n"
        "    on_failure: {menu: a}\n"
    )
    found = problems(text)
    assert [p.split(": ")[0] for p in found] == ["t.yaml:14:3", "t.yaml:18:3"]
    assert "menu 'a' has no way out" in found[0]
    assert "(a, b)" in found[0]
    assert "menu 'b' has no way out" in found[1]


def test_zero_for_person_is_a_way_out():
    text = HEADER + (
        "zero_for_person: general\n"
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys: {1: {menu: main}}\n"
        "    on_failure: {menu: main}\n"
    )
    # No trap: 0 leaves. But a silent caller would still loop.
    assert only(text) == (
        "t.yaml:15:17: a caller who says nothing would loop forever (main -> main): "
        "on_failure must end at a desk"
    )


def test_silent_caller_never_hung_up_on():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys: {1: {queue: business}}\n"
        "    on_failure: {play: bye, then: {hangup: bye}}\n"
    )
    assert only(text) == (
        "t.yaml:14:35: a caller who says nothing would be hung up on "
        "(on_failure of menu 'main'): queue to a desk instead"
    )


def test_hangup_on_failure_allowed_in_submenu():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys: {1: {menu: sub}}\n"
        "  sub:\n"
        "    prompt: menu\n"
        "    keys: {1: {queue: business}}\n"
        "    on_failure: {hangup: bye}\n"
    )
    assert parse_dialplan(text).menus["sub"].on_failure.hangup == "bye"


def test_collect_not_allowed_in_on_failure():
    text = HEADER + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    keys: {1: {queue: business}}\n"
        "    on_failure:\n"
        "      collect: {prompt: menu, digits: {max: 4}, save_as: n,"
        " then: {queue: general}}\n"
    )
    assert only(text) == "t.yaml:15:7: on_failure cannot collect digits"


def test_languages():
    text = HEADER.replace("version: 1", "version: 1\nlanguages: [bo, bo]")
    text = text.replace("{text: {zh: 再见}}", "{text: {bo: x, en: bye}}")
    text += "menus:\n  main:\n    prompt: menu\n    keys: {1: {queue: business}}\n"
    assert problems(text) == [
        "t.yaml:3:12: languages must include zh (Mandarin): "
        "every prompt falls back to it",
        "t.yaml:3:17: language 'bo' is listed twice",
        "t.yaml:6:9: prompt 'bye' has no zh text: Mandarin is the fallback "
        "for every language",
        "t.yaml:6:23: language 'en' is not listed in languages",
    ]


def test_every_problem_at_once():
    text = HEADER.replace("  general: {name: 综合}\n", "  general: {nmae: 综合}\n") + (
        "menus:\n"
        "  main:\n"
        "    prompt: menu\n"
        "    retries: 7\n"
        "    keys: {1: {queue: nowhere}}\n"
        "  ok:\n"
        "    prompt: menu\n"
        "    keys: {1: {queue: nowhere}}\n"
    )
    # Broken values hide neither the references around them nor the other
    # menu's; with parts of menus left out, reachability is not judged (the
    # unreachable menu 'ok' is not reported).
    assert problems(text) == [
        "t.yaml:7:3: desks.general: missing field 'name'",
        "t.yaml:7:13: unknown field 'nmae' (did you mean 'name'?)",
        "t.yaml:13:14: menus.main.retries: must be at most 5, not 7",
        "t.yaml:14:23: undefined desk 'nowhere' (defined: business, general)",
        "t.yaml:17:23: undefined desk 'nowhere' (defined: business, general)",
    ]
