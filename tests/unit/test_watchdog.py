"""The menu watchdog: refreshes while a call is driven, never after release."""

from __future__ import annotations

import asyncio

import pytest

from ivr.errors import AmiConnectionLost
from ivr.watchdog import MenuWatchdog


class Session:
    """Records actions; each answer takes ``delay`` seconds."""

    connected = True

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.sent: list[tuple[str, dict]] = []
        self.answered: list[str] = []

    async def action(self, name: str, headers: dict, *, timeout=None):
        self.sent.append((name, dict(headers)))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise AmiConnectionLost("no AMI session")
        self.answered.append(headers["Channel"])


async def test_every_call_in_a_menu_gets_its_timeout_pushed_back():
    session = Session()
    watchdog = MenuWatchdog(session, lambda: ["PJSIP/pstn-1", "PJSIP/pstn-2"])
    await watchdog.refresh()
    assert sorted(h["Channel"] for _, h in session.sent) == [
        "PJSIP/pstn-1",
        "PJSIP/pstn-2",
    ]
    name, headers = session.sent[0]
    assert (name, headers["Variable"], headers["Value"]) == (
        "Setvar",
        "TIMEOUT(absolute)",
        "8",
    )


async def test_release_waits_for_a_refresh_in_flight_and_stops_the_next():
    session = Session(delay=0.2)
    watchdog = MenuWatchdog(session, lambda: ["PJSIP/pstn-1"])
    refreshing = asyncio.create_task(watchdog.refresh())
    await asyncio.sleep(0.05)  # the Setvar is on the wire
    await watchdog.release("PJSIP/pstn-1")
    # Answered before release returned: AMI runs the BREAK after it.
    assert session.answered == ["PJSIP/pstn-1"]
    await refreshing
    await watchdog.refresh()
    assert len(session.sent) == 1


async def test_a_lost_link_is_left_to_the_dialplan_timeout():
    watchdog = MenuWatchdog(Session(fail=True), lambda: ["PJSIP/pstn-1"])
    await watchdog.refresh()  # no error: the dialplan's timeout takes over
    assert watchdog.refreshes == 0


def test_a_period_not_below_the_timeout_is_refused():
    with pytest.raises(ValueError, match="period 8"):
        MenuWatchdog(Session(), list, timeout=8, period=8)
