"""The server SIGKILLed with callers in its menus, then started again.

Nobody is left in silence: the dialplan's watchdog (TIMEOUT(absolute), pushed
back by the server while it lives) ends AsyncAGI and the ``T`` extension
queues the caller at the general desk. The restarted server adopts the calls
and carries on each one's ticket: one ticket a call, closed as answered.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.stack import (
    add_row,
    caller_apps,
    calls_in_menu,
    hang_up_and_collect,
    until_queued,
)
from tests.support.mosquitto import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CALLERS = ("13900008001", "13900008002", "13900008003")
SILENCE_LIMIT = 10.0


async def test_server_killed_with_callers_in_menus(fault_lab) -> None:
    lab = fault_lab
    before = {t["linkedid"] for t in lab.tickets()}
    async with Subscriber(lab.ports.mqtt, "ivr/events/#") as events:
        # Past the greeting, in the menu, well past one watchdog refresh.
        calls = await calls_in_menu(lab, CALLERS, 2.5)
        in_menu = await caller_apps(lab, CALLERS)
        assert set(in_menu.values()) == {"AGI"}, in_menu

        killed = time.monotonic()
        lab.kill_server()
        silence = await until_queued(lab, CALLERS, killed, SILENCE_LIMIT + 5)
        restart = await lab.start_server()
        recovered = time.monotonic() - killed

        mine, got = await hang_up_and_collect(
            lab, dict(zip(CALLERS, calls, strict=True)), before, events
        )

    answered, lost = add_row(
        "server SIGKILL, calls in menus", CALLERS, mine, got, silence, recovered
    )

    # Everyone reached a queue within 10 s (the watchdog's 8 s, plus the
    # delay of the CLI polls that measure it).
    assert set(silence) == set(CALLERS)
    assert max(silence.values()) <= SILENCE_LIMIT, silence
    assert restart < 30
    # One ticket a call (none duplicated, none lost), each closed as answered.
    assert sorted(t["caller_number"] for t in mine) == sorted(CALLERS)
    assert answered == list(CALLERS), [(t["number"], t["outcome"]) for t in mine]
    assert lost == 0
