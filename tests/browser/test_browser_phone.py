"""The browser softphone: a real call rings in Chromium and audio flows both
ways.

Agent 6001's desktop connects its phone by itself (JsSIP over Asterisk's
WebSocket, as endpoint web-6001, with the account the server hands the
session; Chromium's fake microphone). Asterisk calls it into the
Echo application: what the browser sends comes back, so audio received by
the browser proves both directions. The SIP softphone on endpoint 6001 stays
registered throughout.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

STATS = """async () => {
  const pc = window.yhtPhone.session && window.yhtPhone.session.connection;
  if (!pc) return null;
  const out = {sent: 0, received: 0, level: 0};
  (await pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "audio") out.sent = r.bytesSent;
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      out.received = r.bytesReceived;
      out.level = Math.max(out.level, r.audioLevel || 0);
    }
  });
  return out;
}"""


async def media_both_ways(page) -> dict:
    """The browser phone's RTP counters (``STATS``) 5 s into its call, once
    they show audio going out and coming in."""
    await asyncio.sleep(3)
    first = await page.evaluate(STATS)
    await asyncio.sleep(2)
    later = await page.evaluate(STATS)
    assert first and later, (first, later)
    assert later["sent"] > first["sent"] > 0, (first, later)
    assert later["received"] > first["received"] > 0, (first, later)
    return later


def sip_phone_status(lab, extension: str = "6001") -> str:
    desk = lab.server.agents
    return desk.state_of(desk.book.agents[extension])["status"]


async def test_a_call_rings_in_the_browser_and_audio_flows_both_ways(web):
    lab = web.lab
    page = await web.login("zhao")
    ringing = asyncio.get_running_loop().create_future()
    try:
        # Nothing typed: the server hands the session's own account over.
        await page.locator("#phone-status", has_text="registered").wait_for(
            timeout=15_000
        )
        assert await page.input_value("#phone-server") == (
            f"ws://127.0.0.1:{lab.ports.websocket}/ws"
        )
        assert await page.locator("#phone-password").is_hidden()

        ringing = asyncio.create_task(
            lab.server.session.originate(
                {
                    "Channel": "PJSIP/web-6001",
                    "Application": "Echo",
                    "CallerID": '"12345" <12345>',
                },
                timeout=30,
            )
        )
        await page.locator("#phone-status", has_text="ringing").wait_for(timeout=15_000)
        await page.click("#phone-answer")
        await page.locator("#phone-status", has_text="in a call").wait_for(
            timeout=15_000
        )
        answered = await ringing
        assert answered.ok, answered.reason
        # Echo only returns what reached Asterisk: both directions work.
        await media_both_ways(page)
        await screenshot(page, "browser-phone")

        # The SIP phone of 6001 is still registered: the desks can ring it.
        assert sip_phone_status(lab) != "unavailable"
        await page.click("#phone-hangup")
        await page.locator("#phone-status", has_text="last call ended").wait_for(
            timeout=10_000
        )
    finally:
        if not ringing.done():
            ringing.cancel()
        await page.evaluate("window.yhtPhone.ua && window.yhtPhone.ua.stop()")
        await page.context.close()
