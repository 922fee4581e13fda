"""An admin changes a menu key in the browser; a real call then follows it.

The first try has a typo: the page shows the problem at its line and nothing
is published. The fix is checked against the live plan (diff, dry run),
published, and a real call pressing the key reaches the new desk. A rollback
from the versions table brings the old key back. The plan is restored at the
end whatever happens.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.conftest import screenshot
from tests.support.calls import closed_ticket

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

OLD_KEY = "1: {queue: business}"
TYPO_KEY = "1: {queue: psy}"
NEW_KEY = "1: {queue: psych}"
CALLER = "13912349001"


async def ticket_of(lab, number: str) -> dict:
    """The caller's ticket once closed (after the unanswered survey)."""
    return await closed_ticket(lab, caller=number)


async def test_admin_edits_publishes_and_a_call_follows(web):
    server = web.lab.server
    original = server.plans.store.text(server.plans.version.number)
    line = original.splitlines().index(f"      {OLD_KEY}") + 1
    before = server.plans.version.number
    page = await web.login("wang")
    try:
        assert page.url.endswith("/ui/dialplan")
        await page.fill("#plan", original.replace(OLD_KEY, TYPO_KEY))
        await page.click("#publish")
        problem = page.locator("#problems li").first
        await problem.wait_for()
        text = await problem.text_content()
        assert text.startswith(f"line {line}, column "), text
        assert "undefined desk 'psy' (did you mean 'psych'?)" in text
        assert await page.get_attribute(f"#gutter [data-line='{line}']", "class") == (
            "bad"
        )
        assert server.plans.version.number == before  # nothing published
        await screenshot(page, "dialplan-error")

        await page.fill("#plan", original.replace(OLD_KEY, NEW_KEY))
        await page.click("#diff")
        await page.wait_for_selector("#diff-out:not([hidden])")
        assert f"+      {NEW_KEY}" in await page.text_content("#diff-out")
        assert await page.locator("#problems li").count() == 0

        await page.fill("#keys", "1")
        await page.click("#simulate button")
        await page.wait_for_selector("#sim-out li")
        path = await page.locator("#sim-out li").all_text_contents()
        assert any("psych" in step for step in path), path
        assert server.plans.version.number == before  # a dry run changes nothing

        await page.click("#publish")
        await page.locator("#result.ok", has_text="is live").wait_for()
        assert server.plans.version.number == before + 1
        assert server.plans.version.author == "wang"

        await web.lab.run_caller(CALLER, ("1",))
        ticket = await ticket_of(web.lab, CALLER)
        assert (ticket["desk"], ticket["route_reason"]) == ("psych", "key 1"), ticket
        assert ticket["outcome"] == "answered", ticket

        # Roll back from the versions table (after the page reloaded itself).
        await page.wait_for_selector(f"button.rollback[data-to='{before}']")
        await screenshot(page, "dialplan")
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.click(f"button.rollback[data-to='{before}']")
        await page.locator("#result.ok", has_text="rolled back").wait_for()
        assert server.plans.version.restores == before
        assert server.plans.store.text(server.plans.version.number) == original
    finally:
        await page.context.close()
        if server.plans.store.text(server.plans.version.number) != original:
            await server.publish_plan(original, "browser test cleanup")


async def test_a_supervisor_checks_plans_and_pauses_agents(web):
    page = await web.login("li")
    try:
        await page.goto(f"{web.url}/ui/dialplan")
        assert await page.locator("#publish").count() == 0
        await page.click("#check")
        await page.wait_for_selector("#result.ok")
        assert "valid" in await page.text_content("#result")
        await page.goto(f"{web.url}/ui/prompts")
        assert "needs the admin role" in await page.text_content("main")

        # The agents page: skills from the configuration, a pause and back.
        agents = web.lab.server.agents
        await page.goto(f"{web.url}/ui/agents")
        row = page.locator("tr[data-agent='6003']")
        assert "tibetan: 1" in await row.text_content()
        await row.locator("select.reason").select_option("meeting")
        await row.locator("button[data-action='pause']").click()
        await row.locator(".status", has_text="paused (meeting)").wait_for()
        assert agents.state_of(agents.book.agents["6003"])["pause_reason"] == "meeting"
        await screenshot(page, "agents")
        await row.locator("button[data-action='unpause']").click()
        await row.locator(".status", has_text="available").wait_for()
        assert agents.state_of(agents.book.agents["6003"])["status"] == "available"
    finally:
        await page.context.close()
