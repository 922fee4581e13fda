"""The watchdog never cuts a menu the server is driving, however long.

A caller who hesitates stays in the menu well past the watchdog's timeout,
because the server pushes it back, then presses 0; the IVR itself routes the
call (not the dialplan's fallback for a lost server).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr.tickets import parse_iso
from ivr.watchdog import TIMEOUT
from tests.faults.stack import caller_apps, closed_tickets, hang_up_once_answered

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CALLER = "13900002001"


async def test_a_long_menu_is_not_cut_by_the_watchdog(fault_lab) -> None:
    lab = fault_lab
    before = {t["linkedid"] for t in lab.tickets()}
    call = await (await lab.caller(CALLER)).call(lab.hotline_uri())
    await call.wait_state("CONFIRMED", timeout=15)
    answered = time.monotonic()
    in_menu = 0.0
    while time.monotonic() - answered < 60:
        apps = await caller_apps(lab, {CALLER})
        if apps.get(CALLER) == "Queue":
            break
        if apps.get(CALLER) == "AGI":
            in_menu = time.monotonic() - answered
        if in_menu > TIMEOUT + 4:
            # Keys during a prompt that takes none are lost: press again.
            await call.send_dtmf("0")
        await asyncio.sleep(0.5)
    await hang_up_once_answered(lab, {CALLER: call})
    [ticket] = await closed_tickets(lab, before, {CALLER})

    assert in_menu > TIMEOUT + 2, f"left the menu after {in_menu:.1f} s"
    # Routed by the IVR (its reason), not by the fallback of a lost server.
    assert ticket["desk"] == "general"
    assert "offline" not in (ticket["route_reason"] or ""), ticket["route_reason"]
    menu = parse_iso(ticket["menu_entered_at"])
    queued = parse_iso(ticket["queue_entered_at"])
    assert (queued - menu).total_seconds() > TIMEOUT
