"""Logging in and out in the browser, and the admin's prompts page.

A page asked for without a session leads to the login form and back to the
page after it; a wrong password is said so; logging out ends the session. An
admin uploads a recording, plays it back and deletes it.
"""

from __future__ import annotations

import asyncio
import math
import struct
import wave

import pytest

from tests.browser.conftest import PASSWORD, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_login_redirects_back_and_logout_ends_the_session(web):
    context = await web.browser.new_context(viewport={"width": 1000, "height": 640})
    page = await context.new_page()
    try:
        await page.goto(f"{web.url}/ui/wallboard")
        assert "/login?next=/ui/wallboard" in page.url
        await page.fill("#name", "li")
        await page.fill("#password", "not the password")
        await page.click("#login")
        await page.locator("#login-error", has_text="wrong name or password").wait_for()
        await screenshot(page, "login")
        await page.fill("#password", PASSWORD)
        await page.click("#login")
        await page.wait_for_url("**/ui/wallboard")
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["yht_session"]["httpOnly"]
        assert cookies["yht_session"]["sameSite"] == "Strict"

        await page.click("#logout")
        await page.wait_for_url("**/login")
        await page.goto(f"{web.url}/ui/wallboard")
        assert "/login" in page.url
    finally:
        await context.close()


def tone_wav(path, seconds: float = 1.5, rate: int = 16000) -> None:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate)))
        for n in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(frames)


async def test_admin_uploads_plays_and_deletes_a_prompt(web, tmp_path):
    source = tmp_path / "notice.wav"
    tone_wav(source)
    page = await web.login("wang")
    try:
        await page.goto(f"{web.url}/ui/prompts")
        await page.locator("#placeholders li").first.wait_for()
        await page.set_input_files("#file", str(source))
        await page.fill("#prompt-name", "browser-notice")
        await page.click("#upload button[type=submit]")
        row = page.locator("#prompt-rows tr", has_text="browser-notice")
        await row.wait_for(timeout=30_000)
        src = await row.locator("audio").get_attribute("src")
        played = await page.request.get(f"{web.url}{src}")
        assert played.status == 200
        body = await played.body()
        assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
        await screenshot(page, "prompts")

        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await row.locator("button", has_text="Delete").click()
        await page.locator("#prompt-result.ok", has_text="deleted").wait_for()
        await row.wait_for(state="detached")
    finally:
        await page.context.close()
