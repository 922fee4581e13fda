"""``hotline users add|remove|list``: the people who log in to the web pages.

The password is read from standard input when it is not a terminal (one
line), otherwise asked for twice without echo; it never goes on the command
line, where other users could see it in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from ivr.errors import ConfigError
from ivr.web.accounts import UserBook, check_password, role_of, users_file


def add_commands(commands: argparse._SubParsersAction) -> None:
    users = commands.add_parser("users", help="web page accounts (issue 9)")
    actions = users.add_subparsers(dest="users_action", required=True)
    add = actions.add_parser("add", help="add an account or set a new password")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["admin", "supervisor", "agent"])
    add.add_argument("--agent", help="the agent extension of an agent account")
    remove = actions.add_parser("remove", help="remove an account")
    remove.add_argument("name")
    actions.add_parser("list", help="the accounts, without their hashes")
    users.add_argument("--file", help="the users file (default: beside the tokens)")


def run(args: argparse.Namespace, config) -> int:
    from pathlib import Path

    from ivr.web.settings import load_admin_settings

    path = Path(args.file) if args.file else users_file(load_admin_settings(config))
    book = UserBook.load(path)
    if args.users_action == "list":
        for name in book.names():
            account = book.account(name)
            agent = f" agent {account.agent}" if account.agent else ""
            print(f"{name}\t{account.role_name}{agent}")
        return 0
    if args.users_action == "remove":
        if not book.remove(args.name):
            raise ConfigError(f"no user {args.name!r} in {path}")
        print(f"removed {args.name}")
        return 0
    password = _read_password()
    account = book.add(args.name, role_of(args.role), password, args.agent)
    agent = f", agent {account.agent}" if account.agent else ""
    print(f"{account.name}: {account.role_name}{agent} (in {path.name})")
    return 0


def _read_password() -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        return check_password(password)
    first = getpass.getpass("password: ")
    check_password(first)
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first
