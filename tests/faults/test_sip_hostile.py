"""Hostile SIP on real calls: no way out to 110 or any outside number;
repeated failed authentications from one address raise an alarm, and an
address other than this host's own is then denied by a PJSIP ACL."""

from __future__ import annotations

import asyncio

import pytest

from ivr.softphone.errors import CallDisconnected
from tests.faults.sip_raw import RawSip
from tests.support.mosquitto import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# The police trunk by number and by name, an international number, an agent.
OUTSIDE = ("110", "0086110", "008613800000000", "trunk-110", "6001", "900")


async def refused(phone, uri: str) -> int:
    """Call ``uri``; the final SIP code, which must not be an answer."""
    call = await phone.call(uri)
    with pytest.raises(CallDisconnected):
        await call.wait_state("CONFIRMED", timeout=15)
    return call.last_code


async def test_the_public_network_cannot_dial_out(fault_lab) -> None:
    caller = await fault_lab.caller("13900004001")
    for number in OUTSIDE:
        code = await refused(caller, fault_lab.hotline_uri(number))
        assert code in (403, 404, 603), (number, code)
    assert not [c for c in await fault_lab.channels() if c.application == "Dial"]


async def test_unknown_or_wrongly_authenticated_peers_reach_nothing_and_alarm(
    fault_lab,
) -> None:
    lab, port = fault_lab, fault_lab.ports.sip
    async with Subscriber(lab.ports.mqtt, "ivr/alarms/sip") as alarms:
        nobody = await lab.farm.add_account(
            "nobody",
            user="nobody",
            password="not-the-password",
            port=port,
            register=False,
        )
        wrong = await lab.farm.add_account(
            "wrong-6002",
            user="6002",
            password="not-the-password",
            port=port,
            register=False,
        )
        for phone in (nobody, wrong):
            for number in ("110", "12345", "trunk-110"):
                code = await refused(phone, lab.hotline_uri(number))
                assert code in (401, 403), (phone, number, code)
        got = await alarms.wait_for(
            lambda got: any(e["type"] == "alarm.sip_auth" for e in got), timeout=10
        )
    alarm = next(e for e in got if e["type"] == "alarm.sip_auth")
    assert alarm["address"] == "127.0.0.1" and alarm["failures"] >= 5
    assert "nobody" in alarm["accounts"], alarm
    await asyncio.sleep(0.5)  # the server's log line is flushed by then
    text = lab.server_log.read_text(encoding="utf-8", errors="replace")
    assert "ALARM SIP" in text and "from 127.0.0.1" in text
    assert "not-the-password" not in text


async def test_an_address_that_keeps_failing_is_blocked_and_no_other(fault_lab):
    lab = fault_lab
    attacker = RawSip("127.0.0.2", lab.ports.sip)
    try:
        async with Subscriber(lab.ports.mqtt, "ivr/alarms/sip") as alarms:
            # Before: challenged like anyone (401), then refused.
            assert await asyncio.to_thread(attacker.register, "6003", "guess") == [
                401,
                401,
            ]
            for _ in range(5):
                await asyncio.to_thread(attacker.register, "6003", "guess")
            got = await alarms.wait_for(
                lambda got: any(e.get("address") == "127.0.0.2" for e in got),
                timeout=10,
            )
        alarm = next(e for e in got if e.get("address") == "127.0.0.2")
        assert alarm["blocked"] is True
        # After: refused at once, before any challenge.
        codes: list[int] = []
        for _ in range(50):
            codes = await asyncio.to_thread(attacker.register, "6003", "guess")
            if codes == [403]:
                break
            await asyncio.sleep(0.2)
        assert codes == [403], codes
    finally:
        attacker.close()
    assert "deny = 127.0.0.2/32" in lab.sip_blocklist.read_text(encoding="utf-8")
    # Everyone else goes on: a citizen's call is answered.
    call = await (await lab.caller("13900004009")).call(lab.hotline_uri())
    await call.wait_state("CONFIRMED", timeout=15)
    await call.hangup()
