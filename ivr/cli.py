"""The ``hotline`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from ivr import log
from ivr.errors import ConfigError, DialplanError, HotlineError

DEFAULT_CONFIG = "config/hotline.toml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hotline", description="12345 hotline call routing on Asterisk"
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("YHT_CONFIG", DEFAULT_CONFIG),
        help="server configuration (TOML); default %(default)s",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--ami-debug", action="store_true", help="log raw AMI traffic (DEBUG)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("serve", help="run the call-routing server")

    check = commands.add_parser("check-dialplan", help="validate a dial plan")
    check.add_argument("file")

    simulate = commands.add_parser(
        "simulate", help="dry-run a dial plan: the path a call would take"
    )
    simulate.add_argument("file")
    simulate.add_argument(
        "--keys", default="", help="keys pressed in order; '-' for no input, e.g. 2,-,1"
    )
    simulate.add_argument("--language", default="zh")

    tickets = commands.add_parser("tickets", help="read the ticket store")
    tickets_commands = tickets.add_subparsers(dest="tickets_command", required=True)
    tickets_commands.add_parser("export", help="every ticket, one JSON object a line")

    demo = commands.add_parser("demo", help="real calls through a real Asterisk")
    demo.add_argument("--calls", type=int, default=12)
    demo.add_argument("--keep", action="store_true", help="leave services running")

    args = parser.parse_args(argv)
    log.setup(args.log_level, ami_debug=args.ami_debug)
    try:
        return _run(args)
    except DialplanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except HotlineError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "check-dialplan":
        from ivr.dialplans import main_check

        return main_check(Path(args.file))
    if args.command == "simulate":
        from ivr.dialplans import load_dialplan_file
        from routing.menu import simulate

        plan = load_dialplan_file(Path(args.file))
        keys = [None if k in ("-", "") else k for k in args.keys.split(",")]
        if args.keys == "":
            keys = []
        for line in simulate(plan, keys, language=args.language):
            print(line)
        return 0
    if args.command == "demo":
        from ivr.demo import run_demo

        return asyncio.run(run_demo(calls=args.calls, keep=args.keep))

    from ivr import config as config_module

    config = config_module.load(args.config)
    if args.command == "serve":
        from ivr.server import serve

        return asyncio.run(serve(config))
    if args.command == "tickets":
        return asyncio.run(_export(config))
    raise AssertionError(args.command)


async def _export(config) -> int:
    from ivr.tickets import TicketStore, to_json_lines

    store = await TicketStore.open(config.store_path)
    try:
        sys.stdout.write(to_json_lines(await store.export()))
    finally:
        await store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
