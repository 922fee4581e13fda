"""The admin API on aiohttp's test server, with a token per role and tmp folders."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr.dialplan_live import LivePlan
from ivr.dialplan_store import DialplanStore
from ivr.prompt_library import PromptLibrary
from ivr.web.app import make_app
from ivr.web.auth import Role, TokenBook
from routing.dialplan import parse_dialplan

PLAN = """\
name: test
version: 1
prompts:
  welcome: {text: {zh: 欢迎}}
  menu: {text: {zh: 请按键}}
desks:
  general: {name: 综合}
  business: {name: 营商环境}
  psych: {name: 心理援助}
start: {greeting: welcome, menu: main}
enterprises: {numbers: ["01065123456"], desk: business, priority: 2}
menus:
  main:
    prompt: menu
    keys:
      1: {queue: business}
"""


@dataclass
class Admin:
    client: TestClient
    live: LivePlan
    library: PromptLibrary
    tokens: dict[Role, str]
    prompts_dir: Path
    install_dir: Path

    def auth(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def admin_api(tmp_path: Path) -> AsyncIterator[Admin]:
    tokens = {role: secrets.token_urlsafe(32) for role in Role}
    book = TokenBook(
        (role, role.name.lower() + "-user", token) for role, token in tokens.items()
    )
    store = DialplanStore(tmp_path / "versions")
    live = LivePlan(store, parse_dialplan(PLAN))
    await live.open(PLAN, "12345.yaml")
    prompts_dir, install_dir = tmp_path / "prompts", tmp_path / "asterisk-sounds"
    library = PromptLibrary(prompts_dir, install_dir)
    app = make_app(live, library, book)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Admin(client, live, library, tokens, prompts_dir, install_dir)


async def pages_app(tmp_path: Path, token: str = "") -> web.Application:
    """The admin app on ``PLAN``, prompts under ``tmp_path``, and one admin
    API token (``token``, or a random one), for the web pages' tests."""
    live = LivePlan(DialplanStore(tmp_path / "versions"), parse_dialplan(PLAN))
    await live.open(PLAN, "12345.yaml")
    tokens = TokenBook([(Role.ADMIN, "api", token or secrets.token_urlsafe(32))])
    return make_app(live, PromptLibrary(tmp_path / "prompts", None), tokens)


def files_under(folder: Path) -> list[str]:
    """Every file and folder below ``folder``, relative, sorted."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
