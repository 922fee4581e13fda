"""``hotline tickets ...`` and ``hotline report``: work orders from the command line.

The command line is the operator's on the server, so it shows callers'
numbers whole (``--mask`` hides them for an export to be passed on). Moves
name who makes them with ``--as ROLE:NAME`` or ``--as unit:NAME@UNIT``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

from ivr.errors import ConfigError

FILTERS = (
    ("number", "ticket number, or its first part (12345-20261203)"),
    ("caller", "caller's number"),
    ("desk", "desk the call was routed to"),
    ("status", "the call: open or closed"),
    ("state", "the work order: accepted, dispatched, ... or none"),
    ("category", "request category id"),
    ("unit", "unit id the ticket was dispatched to"),
    ("area", "area id"),
    ("from", "first day, YYYY-MM-DD (Beijing)"),
    ("to", "last day, YYYY-MM-DD (Beijing)"),
    ("repeat", "true: only repeated complaints; false: none of them"),
    ("enterprise", "true: only enterprises' requests"),
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    tickets = commands.add_parser("tickets", help="work orders: search, moves, export")
    _store_options(tickets)
    sub = tickets.add_subparsers(dest="tickets_command", required=True)

    export = sub.add_parser("export", help="tickets as JSON lines (default) or CSV")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--mask", action="store_true", help="mask callers' numbers")
    _filters(export)

    search = sub.add_parser("search", help="find tickets; one line each")
    _filters(search)
    search.add_argument("--limit", default="100")
    search.add_argument("--offset", default="0")

    show = sub.add_parser("show", help="one ticket with its timeline")
    show.add_argument("number")

    act = sub.add_parser("act", help="make a move on a ticket")
    act.add_argument("number")
    act.add_argument("action", help="accept, dispatch, sign, handle, close, ...")
    act.add_argument(
        "--as", dest="actor", required=True, help="ROLE:NAME, or unit:NAME@UNIT"
    )
    act.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter, again for each; a VALUE that is JSON is read as JSON "
        '(-p co_units=["water"])',
    )

    survey = sub.add_parser("survey", help="record a satisfaction survey")
    survey.add_argument("number")
    survey.add_argument("score", type=int, choices=(1, 2, 3))
    survey.add_argument(
        "--source", choices=("in_call", "follow_up"), default="follow_up"
    )
    survey.add_argument("--as", dest="actor", default="system:follow-up")

    sub.add_parser("overdue", help="units' parts past their deadline")
    sub.add_parser("units", help="check and list the catalog: units, categories")

    report = commands.add_parser("report", help="the HTML report with charts")
    _store_options(report)
    report.add_argument("--from", dest="date_from", required=True, type=_day)
    report.add_argument("--to", dest="date_to", required=True, type=_day)
    report.add_argument("--out", default="var/reports", help="folder for the report")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="ticket store: a SQLite file or a postgresql:// address; default: "
        "the file in the configuration",
    )
    parser.add_argument(
        "--catalog",
        help="units and categories (YAML); default: workorder.yaml beside the "
        "configuration, or YHT_WORKORDER",
    )


def _filters(parser: argparse.ArgumentParser) -> None:
    for name, text in FILTERS:
        parser.add_argument(f"--{name}", dest=f"f_{name}", help=text)


def run(args: argparse.Namespace) -> int:
    if args.command == "report":
        return asyncio.run(_report(args))
    return asyncio.run(_tickets(args))


@asynccontextmanager
async def _opened(args: argparse.Namespace) -> AsyncIterator[Any]:
    from ivr.catalog import catalog_path, load_catalog
    from ivr.tickets_pg import open_store
    from ivr.workorders import WorkOrders

    catalog = load_catalog(args.catalog or catalog_path(args.config))
    if args.store and args.store.startswith(("postgresql://", "postgres://")):
        location = args.store
    else:
        if args.store:
            path = Path(args.store)
        else:
            from ivr import config as config_module

            path = config_module.load(args.config, need_ami_secret=False).store_path
        if not path.exists():
            raise ConfigError(f"{path}: no ticket store there")
        location = str(path)
    store = await open_store(location)
    try:
        yield WorkOrders(store, catalog)
    finally:
        await store.close()


def _query(args: argparse.Namespace, catalog) -> Any:
    from ivr.ticket_search import TicketQuery

    params = {
        name: getattr(args, f"f_{name}")
        for name, _ in FILTERS
        if getattr(args, f"f_{name}", None) is not None
    }
    for name in ("limit", "offset"):
        if getattr(args, name, None) is not None:
            params[name] = getattr(args, name)
    return TicketQuery.from_params(params, catalog)


async def _tickets(args: argparse.Namespace) -> int:
    from ivr import ticket_search
    from ivr.tickets import to_json_lines

    command = args.tickets_command
    if command == "units":
        return _units(args)
    async with _opened(args) as orders:
        if command == "export":
            query = _query(args, orders.catalog)
            found = await ticket_search.export(
                orders.store, query, timeline=args.format == "jsonl"
            )
            role = "agent" if args.mask else "admin"
            shown = [ticket_search.present(t, role) for t in found]
            sys.stdout.write(
                ticket_search.to_csv(shown)
                if args.format == "csv"
                else to_json_lines(shown)
            )
        elif command == "search":
            query = _query(args, orders.catalog)
            for ticket in await ticket_search.search(orders.store, query):
                print(_line(ticket))
        elif command == "show":
            _print_json(await orders.view(args.number))
        elif command == "act":
            params = _params(args.params)
            _print_json(
                await orders.act(args.number, args.action, _actor(args.actor), params)
            )
        elif command == "survey":
            _print_json(
                await orders.record_survey(
                    args.number, args.score, args.source, actor=_actor(args.actor)
                )
            )
        elif command == "overdue":
            for part in await orders.overdue():
                print(
                    f"{part['number']}  {part['unit']:<16} due {part['deadline']}  "
                    f"{part['step']:<10} reminders {part['reminders']}"
                    + ("  supervised" if part["supervised"] else "")
                )
    return 0


def _units(args: argparse.Namespace) -> int:
    from ivr.catalog import catalog_path, load_catalog

    path = args.catalog or catalog_path(args.config)
    catalog = load_catalog(path)
    print(f"{path}: ok")
    for title, entries in (
        ("units", catalog.units),
        ("categories", catalog.categories),
        ("areas", catalog.areas),
    ):
        print(f"{title}:")
        for entry in entries.values():
            days = (
                f"  ({entry.working_days} working days)" if entry.working_days else ""
            )
            print(f"  {entry.id:<18} {entry.name}{days}")
    return 0


def _line(ticket: dict[str, Any]) -> str:
    return "  ".join(
        str(value)
        for value in (
            ticket["number"],
            ticket["arrived_at"][:16],
            ticket["caller_number"] or "-",
            ticket["desk"] or "-",
            ticket["status"],
            ticket["state"] or "-",
            ticket["category"] or "-",
            ticket["lead_unit"] or "-",
            ticket["deadline"] or "-",
        )
    )


def _params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"parameter {item!r}: write KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _actor(text: str):
    from ivr.workorders import TicketRefused
    from routing.workorder import Actor, TransitionError

    role, sep, rest = text.partition(":")
    name, _, unit = rest.partition("@")
    try:
        if not sep:
            raise TransitionError("bad_actor", "write --as ROLE:NAME")
        return Actor(role, name, unit or None)
    except TransitionError as exc:
        raise TicketRefused(exc.code, f"--as {text!r}: {exc}") from None


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


async def _report(args: argparse.Namespace) -> int:
    from ivr.report import write_report

    if args.date_from > args.date_to:
        raise ConfigError(f"--from {args.date_from} is after --to {args.date_to}")
    async with _opened(args) as orders:
        written = await write_report(
            orders.store, orders.catalog, args.date_from, args.date_to, Path(args.out)
        )
    print(f"report written: {written}")
    return 0
