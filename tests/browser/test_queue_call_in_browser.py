"""A desk's queue call rings in the browser softphone (issue 9).

Agent 6001's desktop connects its browser phone by itself (the server hands
over the session's own account) and the agent chooses to take queue calls in
the browser: Asterisk's members of 6001 move to ``PJSIP/web-6001``. A caller
on a SIP softphone calls 12345 and presses 1 (the business desk, where 6001
is the most skilled); the call rings in Chromium, is answered there, and
audio flows both ways: the caller's tone reaches the browser and Chromium's
fake microphone reaches the caller's recording. The ticket names agent 6001.
Back on the SIP phone, the members are ``PJSIP/6001`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import wave

import pytest

from ivr.softphone.audio import loudness
from tests.browser.conftest import screenshot
from tests.browser.test_agent_desk import agent_state
from tests.browser.test_browser_phone import media_both_ways
from tests.support.calls import until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CALLER = "13912349301"


async def member_interfaces(lab, extension: str = "6001") -> set[str]:
    """Asterisk's own view: the interfaces of ``extension`` in every queue."""
    response = await lab.server.session.action("QueueStatus", {}, collect_events=True)
    return {
        e["Location"]
        for e in response.events
        if e.get("Event") == "QueueMember"
        and e.get("Location", "").rsplit("/", 1)[-1].endswith(extension)
    }


def tail(path, seconds: float, out) -> None:
    """The last ``seconds`` of a WAV file into ``out``: what was heard after
    the agent answered (the menu's prompts come before)."""
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        frames = int(params.framerate * seconds)
        wav.setpos(max(0, params.nframes - frames))
        data = wav.readframes(frames)
    with wave.open(str(out), "wb") as clip:
        clip.setparams(params)
        clip.writeframes(data)


async def test_a_queue_call_rings_and_is_answered_in_the_browser(web, tmp_path):
    lab = web.lab
    desk = lab.server.agents
    await until(
        lambda: agent_state(lab)["status"] == "available", 30, "6001 to be free"
    )
    page = await web.login("zhao")
    call = None
    try:
        await page.locator("#phone-status", has_text="registered").wait_for(
            timeout=15_000
        )
        await page.click("#phone-queue-web")
        await page.locator("#phone-queue", has_text="this browser").wait_for()
        assert agent_state(lab)["phone"] == "web"
        assert await member_interfaces(lab) == {"PJSIP/web-6001"}
        await until(
            lambda: agent_state(lab)["status"] == "available",
            15,
            "the browser phone to be available",
        )

        phone = await lab.caller(CALLER)
        call = await phone.call(lab.hotline_uri())
        await call.wait_state("CONFIRMED", timeout=15)
        await asyncio.sleep(lab.timing().greeting + 1.0)
        await call.send_dtmf("1")

        await page.locator("#phone-status", has_text="ringing").wait_for(timeout=30_000)
        assert agent_state(lab)["status"] == "busy"  # ringing: one call at a time
        await page.click("#phone-answer")
        await page.locator("#phone-status", has_text="in a call").wait_for(
            timeout=15_000
        )

        def answered():
            for tracked in lab.server.tracker.calls.values():
                if tracked.caller_number == CALLER and tracked.phase == "answered":
                    return tracked
            return None

        tracked = await until(answered, 15, "the router to see the answer")
        # The router knows web-6001 is agent 6001.
        assert tracked.agent == "6001", tracked
        assert agent_state(lab)["status"] == "busy"
        await page.locator("#call-ticket", has_text=tracked.ticket_number).wait_for()

        await call.play_tone(440)
        later = await media_both_ways(page)
        assert later["level"] > 0, later  # the caller's tone, not silence
        await screenshot(page, "browser-phone-queue")
        # The browser's fake microphone reached the caller.
        clip = tmp_path / "heard.wav"
        tail(await call.recording(), 4.0, clip)
        heard = loudness(clip)
        assert heard.sounding_seconds > 0, heard

        await call.hangup()
        await page.locator("#phone-status", has_text="last call ended").wait_for(
            timeout=10_000
        )
        await lab.server.tracker.drain()
        stored = await lab.server.store.get(tracked.ticket_number)
        assert stored["agent"] == "6001", stored
        assert stored["desk"] == "business", stored
        await until(
            lambda: agent_state(lab)["status"] in ("wrap_up", "available"),
            10,
            "the call to end for 6001",
        )

        # Back to the SIP phone: same penalties, members on PJSIP/6001 again.
        await page.click("#phone-queue-sip")
        await page.locator("#phone-queue", has_text="SIP phone").wait_for()
        assert agent_state(lab)["phone"] == "sip"
        assert await member_interfaces(lab) == {"PJSIP/6001"}
    finally:
        if call is not None:
            with contextlib.suppress(Exception):
                await call.hangup()
        with contextlib.suppress(Exception):
            await until(lambda: not agent_state(lab)["status"] == "busy", 10, "")
            await desk.use_phone("6001", "sip", source="test")
        await page.evaluate("window.yhtPhone.ua && window.yhtPhone.ua.stop()")
        await page.context.close()
