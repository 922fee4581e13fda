"""The AMI link cut under calls in menus: reset at once, or silent.

A reset is seen at once; a silent link within the keepalive window (the
server pings after ``AMI_KEEPALIVE`` quiet seconds and drops the link when
the Ping goes unanswered). Either way the server logs in again, finds the
callers it was driving and sends them to the general desk (or the watchdog
already did), and each call keeps its one ticket to the end.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.stack import (
    AMI_KEEPALIVE,
    add_row,
    caller_apps,
    calls_in_menu,
    hang_up_and_collect,
    until_queued,
)
from tests.support.mosquitto import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

SILENCE_LIMIT = 10.0

CALLERS = {
    "reset": ("13900007001", "13900007002"),
    "silent": ("13900007101", "13900007102"),
}


@pytest.mark.parametrize("how", ["reset", "silent"])
async def test_ami_link_cut_with_callers_in_menus(fault_lab, how: str) -> None:
    lab, relay, numbers = fault_lab, fault_lab.ami_relay, CALLERS[how]
    before = {t["linkedid"] for t in lab.tickets()}
    async with Subscriber(lab.ports.mqtt, "ivr/events/#") as events:
        calls = await calls_in_menu(lab, numbers, 2.5)
        apps = await caller_apps(lab, numbers)
        assert set(apps.values()) == {"AGI"}, apps

        links = len(relay.sent)
        cut = time.monotonic()
        if how == "reset":
            await relay.cut()
        else:
            relay.frozen = True
        # Detected: the server opens a new connection to Asterisk.
        while len(relay.sent) == links:
            assert time.monotonic() - cut < 3 * AMI_KEEPALIVE, "link loss unseen"
            await asyncio.sleep(0.05)
        detected = time.monotonic() - cut
        if relay.frozen:
            # The partition heals. What the server wrote into the dead link
            # dies with it, as over a real network (the relay would deliver
            # it late otherwise); the server's new connection is cut too and
            # it simply connects once more.
            await relay.cut()
            relay.frozen = False
        silence = await until_queued(lab, numbers, cut, timeout=15)
        while not await lab.server_logged_in():
            assert time.monotonic() - cut < 30, "the server did not log in again"
            await asyncio.sleep(0.2)
        recovered = time.monotonic() - cut

        mine, got = await hang_up_and_collect(
            lab, dict(zip(numbers, calls, strict=True)), before, events
        )

    answered, lost = add_row(
        f"AMI link cut ({'TCP reset' if how == 'reset' else 'silent link'})",
        numbers,
        mine,
        got,
        silence,
        recovered,
    )

    limit = 1.0 if how == "reset" else 2 * AMI_KEEPALIVE
    assert detected < limit, f"link loss seen after {detected:.1f} s"
    assert set(silence) == set(numbers)
    assert max(silence.values()) <= SILENCE_LIMIT, silence
    assert sorted(t["caller_number"] for t in mine) == sorted(numbers)
    assert answered == list(numbers), [(t["number"], t["outcome"]) for t in mine]
    assert lost == 0
