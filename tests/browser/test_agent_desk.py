"""The agent desktop on real calls: pause and unpause, the call pop-up with
the caller's history, the ticket form, and the warm transfer to 110.

Agent 6001's softphone answers by itself and never hangs up here
(``agents_in_hand``); the caller hangs up. A first call from a number gets
its ticket filled in the browser; the second call from the same number pops
up with that ticket in its history, marked a repeat, and is handed to the
110 operator (a phone on ``trunk-110``) with the desktop's buttons.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.browser.conftest import screenshot
from tests.support.calls import until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CALLER = "13912349201"
CONTENT = "路灯不亮 <i>three nights</i>"


def agent_state(lab, extension: str = "6001") -> dict:
    desk = lab.server.agents
    return desk.state_of(desk.book.agents[extension])


async def call_to_6001(lab, number: str):
    """``number`` presses 1 and talks with agent 6001: (phone call, tracked)."""
    phone = await lab.caller(number)
    call = await phone.call(lab.hotline_uri())
    await call.wait_state("CONFIRMED", timeout=15)
    await asyncio.sleep(lab.timing().greeting + 1.0)
    await call.send_dtmf("1")

    def answered():
        for tracked in lab.server.tracker.calls.values():
            if tracked.caller_number == number and tracked.phase == "answered":
                return tracked
        return None

    tracked = await until(answered, 30, f"an agent to answer {number}")
    assert tracked.agent == "6001", tracked
    return call, tracked


async def test_agent_desktop_on_real_calls(web):
    lab = web.lab
    await until(
        lambda: agent_state(lab)["status"] == "available", 30, "6001 to be free"
    )
    page = await web.login("zhao")
    calls = []
    try:
        assert page.url.endswith("/ui/desk")
        await page.locator("#agent-status", has_text="available").wait_for()
        await page.select_option("#pause-reason", "lunch")
        await page.click("#move-pause")
        await page.locator("#agent-status", has_text="paused").wait_for()
        assert agent_state(lab)["pause_reason"] == "lunch"
        assert "reason: lunch" in await page.text_content("#agent-detail")
        await page.click("#move-unpause")
        await page.locator("#agent-status", has_text="available").wait_for()
        assert agent_state(lab)["status"] == "available"

        async with lab.agents_in_hand():
            # The first call: the ticket form, filled while the caller talks.
            call, first = await call_to_6001(lab, CALLER)
            calls.append(call)
            await page.locator("#call-ticket", has_text=first.ticket_number).wait_for()
            await page.locator("#history-summary", has_text="no earlier").wait_for()
            await page.locator("#category option").first.wait_for(state="attached")
            await page.fill("#content", CONTENT)
            await page.fill("#address", "人民路 1 号")
            await page.click("#ticket-form button[type=submit]")
            await page.locator("#ticket-result.ok", has_text="accepted").wait_for()
            await call.hangup()
            await page.locator("#call-live", has_text="ended").wait_for()
            await lab.server.tracker.drain()
            stored = await lab.server.store.get(first.ticket_number)
            assert stored["state"] == "accepted" and stored["content"] == CONTENT

            # The second call from the number: its history pops up, a repeat.
            await until(
                lambda: agent_state(lab)["status"] == "available", 30, "wrap-up end"
            )
            call, second = await call_to_6001(lab, CALLER)
            calls.append(call)
            await page.locator("#call-ticket", has_text=second.ticket_number).wait_for()
            row = page.locator(f"#history tr[data-ticket='{first.ticket_number}']")
            await row.wait_for()
            assert CONTENT in await row.text_content()  # as text, not markup
            assert await row.locator("i").count() == 0
            assert "repeat caller" in await page.text_content("#history-summary")
            await page.locator("#call-repeat").wait_for(state="visible")
            assert second.repeat_of == first.ticket_number
            await screenshot(page, "agent-desk")

            # One button hands the caller to 110; the operator answers.
            platform = await lab.trunk_phone("trunk-110")
            await page.click("button.transfer-start[data-target='police']")
            operator = await platform.wait_incoming(timeout=15)
            await operator.answer()
            await operator.wait_state("CONFIRMED", timeout=10)
            running = lab.server.transfers.running[second.linkedid]
            await until(
                lambda: running.transfer.state == "consulting", 10, "consulting"
            )
            await page.click("button.transfer-step[data-action='complete']")
            await until(
                lambda: running.transfer.outcome == "completed", 10, "completed"
            )
            await page.locator("#transfer-result.ok").wait_for()
            assert not call.disconnected and not operator.disconnected
            await call.hangup()
            await operator.wait_disconnected(timeout=10)
        ticket = await lab.server.store.get(second.linkedid)
        segments = [e for e in ticket["timeline"] if e["kind"] == "transfer"]
        assert [s["outcome"] for s in segments] == ["completed"]
        assert segments[0]["target"] == "police"
    finally:
        for call in calls:
            with contextlib.suppress(Exception):
                await call.hangup()
        await page.context.close()
