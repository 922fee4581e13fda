"""The wallboard follows real calls live, without a reload, and shows a caller
ID with HTML in it as text.

A citizen whose display name is markup calls and presses 1: while agent 6001
talks to them the business desk shows a busy agent, and once the call is
over the desk's calls of the last 24 hours have grown by one and the latest
calls list the name character for character, with no element made of it.
The same page object is checked throughout: a reload would lose the marker
the test leaves on ``window``.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CALLER = "13912349101"
HTML_NAME = (
    "<b>bold</b><img src=x onerror=window.owned=1><script>window.owned=2</script>"
)


def figure(desk: str, name: str) -> str:
    return f".desk[data-desk='{desk}'] dd[data-figure='{name}']"


async def test_wallboard_numbers_follow_calls_without_a_reload(web):
    page = await web.login("li")
    try:
        assert page.url.endswith("/ui/wallboard")
        await page.locator("#live-state", has_text="live").wait_for()
        await page.evaluate("window.sameDocument = 'yes'")
        offered = int(await page.text_content(figure("business", "offered_24h")))

        call = asyncio.create_task(web.lab.run_caller(CALLER, ("1",), name=HTML_NAME))
        # Agent 6001 answers and talks for a while: one busy agent at the desk.
        await page.locator(figure("business", "agents.busy"), has_text="1").wait_for(
            timeout=30_000
        )
        await call
        await page.locator(
            figure("business", "offered_24h"), has_text=str(offered + 1)
        ).wait_for(timeout=20_000)
        await page.locator(figure("business", "agents.busy"), has_text="0").wait_for(
            timeout=20_000
        )
        name_cell = page.locator("#recent tr", has_text="139****9101").locator(
            ".caller-name"
        )
        await name_cell.wait_for(timeout=20_000)

        assert await page.evaluate("window.sameDocument") == "yes"  # no reload
        assert await page.evaluate("window.yhtWallboardUpdates") > 1
        assert await name_cell.text_content() == HTML_NAME
        assert await name_cell.locator("b, img, script").count() == 0
        assert await page.evaluate("window.owned") is None
        assert CALLER not in await page.text_content("#recent")  # masked
        await screenshot(page, "wallboard")

        # The ticket list: a supervisor may search by caller and see it whole.
        await page.goto(f"{web.url}/ui/tickets")
        await page.fill("input[name=caller]", CALLER)
        await page.click("#search button[type=submit]")
        await page.locator("#search-result", has_text="1 ticket(s)").wait_for()
        cells = await page.locator("#ticket-rows tr td").all_text_contents()
        assert cells[2] == CALLER and cells[3] == "business", cells
        await screenshot(page, "tickets")
    finally:
        await page.context.close()
