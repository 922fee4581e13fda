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
    # Issue 3: --caller, --at, notes on placeholders, `hotline dialplan schema`.
    from ivr.dialplan_cli import add_arguments as add_dialplan_arguments

    add_dialplan_arguments(commands, check, simulate)

    _add_ticket_commands(commands)
    _add_agent_commands(commands)
    from ivr.users_cli import add_commands as add_user_commands  # issue 9

    add_user_commands(commands)

    demo = commands.add_parser("demo", help="real calls through a real Asterisk")
    demo.add_argument("--calls", type=int, default=12)
    demo.add_argument("--keep", action="store_true", help="leave services running")

    bench = commands.add_parser(
        "bench", help="load bench: our server beside native Asterisk (issue 7)"
    )
    bench.add_argument("--preset", choices=["full", "quick", "smoke"], default="full")
    bench.add_argument("--out", default="bench", help="folder for results.json/png")
    bench.add_argument(
        "--docs", default="docs/performance.md", help="'' to leave the docs alone"
    )
    bench.add_argument("--arms", default="A,B", help="A (server), B (native) or both")
    bench.add_argument(
        "--silent-callers",
        action="store_true",
        help="callers send no audio (AsyncAGI then polls at 100 ms)",
    )
    bench.add_argument(
        "--server-nice", type=int, default=0, help="run the server at this nice value"
    )
    bench.add_argument(
        "--proposals",
        default="",
        help="arm A with fixes of ivr/bench/proposals.py patched in: 'all' or names",
    )
    bench.add_argument("--no-micro", action="store_true")
    bench.add_argument("--strict", action="store_true", help="exit 1: a target missed")

    pbx = commands.add_parser(
        "pbx", help="Asterisk: render its configuration, or run it in the foreground"
    )
    pbx.add_argument("action", choices=["render", "run"])
    pbx.add_argument(
        "--name", default="demo", help="instance name; default %(default)s"
    )

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
    if args.command in ("check-dialplan", "simulate", "dialplan"):
        from ivr import dialplan_cli

        return dialplan_cli.run(args)
    if args.command == "demo":
        from ivr.demo import run_demo

        return asyncio.run(run_demo(calls=args.calls, keep=args.keep))

    if args.command == "pbx":
        return _pbx(args)

    if args.command == "bench":
        from ivr.bench.run import main_bench

        return asyncio.run(main_bench(args))

    if args.command in ("tickets", "report"):
        return _run_ticket_command(args)

    from ivr import config as config_module

    # Only the commands that log in to Asterisk need its secret.
    offline = args.command == "users"
    config = config_module.load(args.config, need_ami_secret=not offline)
    if args.command == "users":  # issue 9: web page accounts
        from ivr.users_cli import run as run_users_command

        return run_users_command(args, config)
    if args.command in ("agent", "status"):
        from ivr.agent_cli import run as run_agent_command

        return run_agent_command(args, config.mqtt)
    if args.command == "serve":
        from ivr.server import serve

        return asyncio.run(serve(config))
    raise AssertionError(args.command)


def _pbx(args: argparse.Namespace) -> int:
    """Render the instance's configuration (and, for ``run``, exec Asterisk).

    Secrets are made on first use and kept under var/<name>/secrets, mode 0600.
    ``run`` replaces this process with Asterisk: the way a container runs it.
    """
    from ivr.lab import Lab

    lab = Lab(args.name, config_path=Path(args.config).resolve())
    lab.prepare_pbx()
    lab.pbx.render()
    lab.install_prompts()
    print(f"configuration of Asterisk {args.name!r} in {lab.pbx.instance_dir}")
    if args.action == "run":
        command = lab.pbx._command("-f", "-n")
        os.execvp(command[0], command)
    return 0


# -- agents and live desk statistics (issue 4): the commands live in ivr/agent_cli.py


def _add_agent_commands(commands: argparse._SubParsersAction) -> None:
    """``hotline agent login|logout|pause|unpause EXT`` and ``hotline status``."""
    from ivr.agent_cli import add_commands

    add_commands(commands)


# -- work orders after the call (issue 6): the commands live in ivr/ticket_cli.py


def _add_ticket_commands(commands: argparse._SubParsersAction) -> None:
    """``hotline tickets ...`` (search, show, act, survey, export) and ``report``."""
    from ivr.ticket_cli import add_commands

    add_commands(commands)


def _run_ticket_command(args: argparse.Namespace) -> int:
    from ivr.ticket_cli import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
