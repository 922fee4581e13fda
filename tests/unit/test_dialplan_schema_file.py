"""docs/dialplan.schema.json is the schema the models generate, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

from ivr.dialplan_cli import schema_text
from ivr.dialplans import load_dialplan_file
from routing.dialplan import parse_dialplan

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "dialplan.schema.json"
DEFAULT_PLAN = Path(__file__).parents[2] / "dialplans" / "12345.yaml"


def test_committed_schema_is_the_generated_one():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "the dial plan models changed: run "
        "`hotline dialplan schema > docs/dialplan.schema.json` (make dialplan-schema)"
    )


def test_schema_describes_the_new_sections():
    schema = json.loads(schema_text())
    top = schema["properties"]
    assert top["mode"]["enum"] == ["menu", "direct"]
    for section in ("notice", "enterprises", "returning_callers"):
        assert section in top
    desk = schema["$defs"]["Desk"]["properties"]
    assert {"hours", "days", "when_closed"} <= set(desk)
    assert schema["$defs"]["Notice"]["properties"]["until"]["format"] == "date-time"


def test_the_schema_command_prints_it(capsys):
    from ivr.cli import main

    assert main(["dialplan", "schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(encoding="utf-8")


def test_default_plan_loads():
    assert load_dialplan_file(DEFAULT_PLAN).mode == "menu"


def test_the_whole_plan_in_the_docs_is_valid():
    text = (SCHEMA_FILE.parent / "dialplans.md").read_text(encoding="utf-8")
    example = text.split("## A whole plan", 1)[1].split("```yaml\n", 1)[1]
    plan = parse_dialplan(example.split("```", 1)[0], "docs/dialplans.md")
    assert plan.enterprises.priority == 3 and plan.desks["business"].hours
