"""A dial plan published while a real call is in the menu, on the real Asterisk.

The call already in the menu finishes on the version it began with; the next
call follows the new key. A plan with problems is refused and the live one
keeps serving; a rollback brings the old key back for the call after it. The
plan is restored at the end, so the rest of the session sees the default one.
"""

from __future__ import annotations

import asyncio

import pytest

from ivr.errors import DialplanError
from tests.support.calls import closed_ticket

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

IN_MENU = "13912340001"  # in the menu when the new plan is published
AFTER = "13912340002"  # calls once it is live
AFTER_ROLLBACK = "13912340003"
OLD_KEY = "1: {queue: business}"
NEW_KEY = "1: {queue: psych}"


async def in_menu(lab, number: str, timeout: float = 30) -> None:
    """Wait until ``number``'s call has met the menu (its walk is bound)."""
    for _ in range(int(timeout / 0.1)):
        if any(
            call.caller_number == number and call.phase == "menu"
            for call in lab.server.tracker.calls.values()
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the call from {number} never reached the menu")


async def ticket_of(lab, number: str) -> dict:
    """The one ticket of ``number``'s call, with its timeline."""
    return await closed_ticket(lab, caller=number)


async def test_reload_while_a_call_is_in_the_menu(lab):
    server = lab.server
    original = lab.config.dialplan_path.read_text(encoding="utf-8")
    assert OLD_KEY in original
    before = server.plans.version.number
    try:
        # Silent for one round, then key 1: the call is in the menu meanwhile.
        waiting = asyncio.create_task(lab.run_caller(IN_MENU, ("-", "1")))
        await in_menu(lab, IN_MENU)
        version = await server.publish_plan(original.replace(OLD_KEY, NEW_KEY), "e2e")
        assert version.number == before + 1 and version.author == "e2e"
        assert "+      1: {queue: psych}" in server.plans.store.diff(version.number)

        await lab.run_caller(AFTER, ("1",))
        await waiting

        old, new = await ticket_of(lab, IN_MENU), await ticket_of(lab, AFTER)
        assert (old["desk"], old["route_reason"]) == ("business", "key 1"), old
        assert (new["desk"], new["route_reason"]) == ("psych", "key 1"), new
        assert old["outcome"] == new["outcome"] == "answered"

        # A broken plan is refused: nothing stored, v(before + 1) serves on.
        live = server.plan
        with pytest.raises(DialplanError) as refused:
            await server.publish_plan(
                original.replace(OLD_KEY, "1: {queue: psy}"), "e2e"
            )
        assert (
            "undefined desk 'psy' (did you mean 'psych'?)" in refused.value.problems[0]
        )
        assert server.plan is live and server.plans.version.number == before + 1

        rolled = await server.rollback("e2e")
        assert rolled.restores == before and rolled.source == "rollback"
        assert server.plans.store.text(rolled.number) == original
        await lab.run_caller(AFTER_ROLLBACK, ("1",))
        back = await ticket_of(lab, AFTER_ROLLBACK)
        assert back["desk"] == "business", back
    finally:
        if server.plans.store.text(server.plans.version.number) != original:
            await server.publish_plan(original, "e2e cleanup")
