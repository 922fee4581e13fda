"""The web pages in real headless Chromium, on the real hotline.

Chromium is Debian's (``chromium``; ``make test`` installs it), driven by
Playwright without its own browser downloads. The pages are served by the
same admin app the server builds (``make_app`` plus the server's own
``_attach_pages``), bound to a free port beside the session's lab, so these
tests share the lab of the end-to-end tests whether or not it was started
with an admin.toml.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from ivr.catalog import catalog_path, load_catalog
from ivr.prompt_library import PromptLibrary
from ivr.web.accounts import UserBook
from ivr.web.app import AdminServer, make_app
from ivr.web.auth import Role, TokenBook
from ivr.web.status_routes import STATUS_OPERATIONS, attach
from ivr.web.tickets_api import TICKET_OPERATIONS, WORKORDERS
from ivr.workorders import WorkOrders

REPO = Path(__file__).resolve().parents[2]
# Screenshots of each page go to var/ (ignored by git); `make screenshots`
# points YHT_SCREENSHOTS at docs/screenshots to renew the README's pictures.
SCREENSHOTS = Path(os.environ.get("YHT_SCREENSHOTS") or REPO / "var" / "screenshots")
PASSWORD = "browser-test-password"
ACCOUNTS = {
    "wang": (Role.ADMIN, None),
    "li": (Role.SUPERVISOR, None),
    "zhao": (Role.AGENT, "6001"),
}


def chromium_path() -> str:
    """Debian's Chromium binary; the tests fail (never skip) without it."""
    found = os.environ.get("YHT_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise AssertionError("Chromium is missing: apt-get install chromium")
    return found


@dataclasses.dataclass
class Web:
    url: str
    lab: object
    browser: object

    async def login(self, name: str, password: str = PASSWORD):
        """A new browser context (its own cookies) logged in as ``name``."""
        context = await self.browser.new_context(
            viewport={"width": 1400, "height": 900}
        )
        page = await context.new_page()
        await page.goto(f"{self.url}/login")
        await page.fill("#name", name)
        await page.fill("#password", password)
        await page.click("#login")
        await page.wait_for_load_state()
        return page


@pytest.fixture(scope="session")
async def web_server(lab, tmp_path_factory):
    """The admin app with the pages, on the lab's running server."""
    server = lab.server
    folder = tmp_path_factory.mktemp("web")
    users = UserBook(folder / "web-users.json")
    for name, (role, agent) in ACCOUNTS.items():
        users.add(name, role, PASSWORD, agent)
    settings = dataclasses.replace(
        server.admin_settings, tokens_file=folder / "admin-tokens"
    )
    token = secrets.token_urlsafe(32)
    library = PromptLibrary(folder / "prompts", None)
    # As HotlineServer._start_admin builds it: tickets, desks, transfers, pages.
    app = make_app(
        server.plans,
        library,
        TokenBook([(Role.ADMIN, "api", token)]),
        extra=TICKET_OPERATIONS + STATUS_OPERATIONS + server._transfer_routes(),
    )
    attach(app, server.desks, server.agents)
    server._attach_transfers(app)
    catalog = load_catalog(catalog_path(server.config.source))
    app[WORKORDERS] = server.workorders or WorkOrders(server.store, catalog)
    os.environ.pop("YHT_WEB_USERS", None)
    server._attach_pages(app, settings)  # the server's own wiring (issue 9)
    admin = AdminServer(app, "127.0.0.1", 0)
    await admin.start()
    yield f"http://127.0.0.1:{admin.port}"
    await admin.stop()


@pytest.fixture(scope="session")
async def browser():
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path(),
            args=[
                # A beeping fake microphone, allowed without asking.
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                # Asterisk offers 127.0.0.1 only: let WebRTC use loopback and
                # plain addresses (not mDNS names Asterisk cannot resolve).
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
            ],
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def web(lab, web_server, browser) -> Web:
    return Web(web_server, lab, browser)


async def screenshot(page, name: str) -> None:
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
