"""The dial plan commands of ``hotline``: check, simulate, schema.

    hotline check-dialplan FILE [--recordings DIR] [--strict]
    hotline simulate FILE --keys 2,1 [--caller N] [--recent-desk D] [--at TIME]
    hotline dialplan schema > docs/dialplan.schema.json

``check-dialplan`` also notes what is valid but worth a look: prompts with only
a spoken placeholder, an expired notice, a holiday calendar about to run out
(``--strict`` makes notes fail the check too).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from ivr.dialplan_notes import plan_notes
from ivr.dialplans import load_dialplan_file, main_check
from ivr.log import mask_number
from routing.callers import CallerFacts, facts_for
from routing.dialplan import json_schema
from routing.hours import BEIJING, WEEKDAYS, day_on_calendar
from routing.menu import simulate

DEFAULT_RECORDINGS = "recordings/prompts"


def add_arguments(
    commands: argparse._SubParsersAction,
    check: argparse.ArgumentParser,
    simulate_parser: argparse.ArgumentParser,
) -> None:
    """Add this module's options to ``check-dialplan`` and ``simulate``, and
    the ``dialplan`` command."""
    check.add_argument(
        "--recordings",
        default=DEFAULT_RECORDINGS,
        help="folder of recorded prompts (<lang>/<name>.wav); default %(default)s",
    )
    check.add_argument(
        "--strict", action="store_true", help="exit 1 on notes too (placeholders...)"
    )
    simulate_parser.add_argument(
        "--caller", default="", help="the caller's number (registered enterprise?)"
    )
    simulate_parser.add_argument(
        "--recent-desk",
        default=None,
        help="the desk of the caller's ticket in the last returning_callers.days",
    )
    simulate_parser.add_argument(
        "--at",
        default=None,
        help="when the call arrives, ISO, Beijing time unless a zone is given "
        "(default: now), e.g. 2026-10-01T10:00",
    )
    dialplan = commands.add_parser("dialplan", help="dial plan language tools")
    tools = dialplan.add_subparsers(dest="dialplan_command", required=True)
    tools.add_parser("schema", help="print the JSON Schema of a dial plan")


def run(args: argparse.Namespace) -> int:
    if args.command == "check-dialplan":
        return check(Path(args.file), Path(args.recordings), strict=args.strict)
    if args.command == "simulate":
        return simulate_command(args)
    if args.command == "dialplan" and args.dialplan_command == "schema":
        sys.stdout.write(schema_text())
        return 0
    raise AssertionError(args.command)


def schema_text() -> str:
    """The JSON Schema as committed in docs/dialplan.schema.json."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def recorded_prompts(folder: Path) -> set[tuple[str, str]]:
    if not folder.is_dir():
        return set()
    return {(wav.parent.name, wav.stem) for wav in folder.glob("*/*.wav")}


def check(path: Path, recordings: Path, *, strict: bool = False) -> int:
    status = main_check(path)
    if status != 0:
        return status
    plan = load_dialplan_file(path)
    notes = plan_notes(plan, recorded_prompts(recordings), datetime.now(BEIJING))
    for note in notes:
        print(f"{path}: note: {note}")
    return 1 if strict and notes else 0


def simulate_command(args: argparse.Namespace) -> int:
    plan = load_dialplan_file(Path(args.file))
    keys = [None if k in ("-", "") else k for k in args.keys.split(",")]
    if args.keys == "":
        keys = []
    try:
        at = _moment(args.at)
    except ValueError:
        print(f"--at {args.at!r}: use a date and time such as 2026-10-01T10:00")
        return 2
    facts = facts_for(plan, args.caller, [], at)
    try:
        facts = CallerFacts(facts.is_enterprise, args.recent_desk)
    except ValueError as exc:
        print(f"--recent-desk: {exc}")
        return 2
    print(f"({describe_moment(at)}; {describe_caller(args.caller, facts)})")
    for line in simulate(plan, keys, language=args.language, caller=facts, now=at):
        print(line)
    return 0


def _moment(text: str | None) -> datetime:
    if not text:
        return datetime.now(BEIJING)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=BEIJING)


def describe_moment(at: datetime) -> str:
    local = at.astimezone(BEIJING)
    day = day_on_calendar(local.date())
    if day.holiday:
        kind = f"{day.holiday}, a statutory holiday"
    elif day.make_up:
        kind = "a make-up working day"
    else:
        kind = "a working day" if day.workday else "a rest day"
    if not day.known:
        kind += ", calendar unknown: weekdays assumed"
    weekday = WEEKDAYS[local.weekday()]
    return f"at {local:%Y-%m-%d %H:%M} Beijing time, {weekday}, {kind}"


def describe_caller(number: str, facts: CallerFacts) -> str:
    who = f"caller {mask_number(number)}" if number else "an unknown caller"
    if facts.is_enterprise:
        who += ", a registered enterprise"
    if facts.recent_desk:
        who += f", recent ticket at desk {facts.recent_desk}"
    return who
