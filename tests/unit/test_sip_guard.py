"""Repeated SIP authentication failures per address: one alarm an attack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from panoramisk.message import Message

from ivr.config import from_dict
from ivr.errors import ConfigError
from ivr.sip_guard import SipBlocker, SipGuard, remote_ip


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict]] = []

    def publish(self, type: str, topic: str, data: dict) -> None:
        self.published.append((type, topic, data))


def failure(address: str, event: str = "ChallengeResponseFailed", account="6001"):
    return Message(
        {
            "Event": event,
            "Service": "PJSIP",
            "AccountID": account,
            "RemoteAddress": f"IPV4/UDP/{address}/5060",
        }
    )


def test_remote_addresses_are_read_for_ipv4_and_ipv6():
    assert remote_ip("IPV4/UDP/203.0.113.9/5060") == "203.0.113.9"
    assert remote_ip("IPV6/UDP/2001:db8::1/5060") == "2001:db8::1"
    assert remote_ip("garbage") == ""


def test_the_limit_raises_one_alarm_naming_address_and_accounts(caplog):
    events, clock = Events(), Clock()
    guard = SipGuard(events, limit=3, window=60, clock=clock)
    guard.handle(failure("203.0.113.9", "InvalidAccountID", "admin"))
    guard.handle(failure("198.51.100.1"))  # another address counts apart
    guard.handle(failure("203.0.113.9"))
    assert events.published == []
    with caplog.at_level(logging.WARNING):
        guard.handle(failure("203.0.113.9", "InvalidPassword"))
    [(kind, topic, data)] = events.published
    assert (kind, topic) == ("alarm.sip_auth", "alarms/sip")
    assert data["address"] == "203.0.113.9" and data["failures"] == 3
    assert data["accounts"] == ["6001", "admin"]
    assert "203.0.113.9" in caplog.text and "block this address" in caplog.text
    for _ in range(5):  # the same attack goes on: no flood of alarms
        guard.handle(failure("203.0.113.9"))
    assert len(events.published) == 1
    clock.now += 61
    for _ in range(3):
        guard.handle(failure("203.0.113.9"))
    assert len(events.published) == 2


def test_slow_failures_outside_the_window_raise_nothing():
    events, clock = Events(), Clock()
    guard = SipGuard(events, limit=3, window=60, clock=clock)
    for _ in range(10):
        guard.handle(failure("203.0.113.9"))
        clock.now += 31
    assert events.published == []


def test_other_events_and_unreadable_addresses_are_ignored():
    events = Events()
    guard = SipGuard(events, limit=1)
    guard.handle(Message({"Event": "ChallengeSent", "RemoteAddress": "IPV4/UDP/a/1"}))
    guard.handle(Message({"Event": "InvalidPassword", "RemoteAddress": "nonsense"}))
    assert events.published == []


def test_control_characters_in_an_account_never_reach_the_log(caplog):
    guard = SipGuard(Events(), limit=1)
    with caplog.at_level(logging.WARNING):
        guard.handle(failure("203.0.113.9", account="x\r\nALARM forged"))
    assert "\r" not in caplog.text and "x\nALARM" not in caplog.text


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="limit 0"):
        SipGuard(limit=0)


class Session:
    def __init__(self) -> None:
        self.commands: list[str] = []
        self._sent = asyncio.Event()

    async def command(self, cli: str) -> list[str]:
        self.commands.append(cli)
        self._sent.set()
        return []

    async def sent(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.commands) < count:
                self._sent.clear()
                await self._sent.wait()

    async def wait_connected(self, timeout=None) -> None:
        return None


async def test_the_blocker_denies_the_address_in_the_acl_file_and_reloads(tmp_path):
    session, clock = Session(), Clock()
    path = tmp_path / "pjsip_blocked.conf"
    blocker = SipBlocker(session, path, block_for=100, clock=clock)
    guard = SipGuard(Events(), blocker=blocker, limit=1)
    runner = asyncio.create_task(blocker.run())
    try:
        guard.handle(failure("203.0.113.9"))
        guard.handle(failure("2001:db8::1"))
        guard.handle(failure("127.0.0.1"))  # this host: never
        await session.sent(2)
        text = path.read_text()
        assert "[yht-blocked]\ntype = acl\n" in text
        assert "deny = 203.0.113.9/32\n" in text and "deny = 2001:db8::1/128" in text
        assert "127.0.0.1" not in text
        assert session.commands == ["module reload res_pjsip.so"] * 2
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_blocks_left_by_a_previous_run_are_lifted_at_start(tmp_path):
    path = tmp_path / "pjsip_blocked.conf"
    path.write_text("[yht-blocked]\ntype = acl\ndeny = 203.0.113.9/32\n")
    session = Session()
    runner = asyncio.create_task(SipBlocker(session, path).run())
    try:
        await session.sent(1)
        assert "deny" not in path.read_text()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def test_only_real_addresses_may_be_blocked(tmp_path):
    blocker = SipBlocker(Session(), tmp_path / "b.conf")
    assert blocker.may_block("203.0.113.9")
    assert not blocker.may_block("203.0.113.9\n[evil]")
    assert not blocker.may_block("::1") and not blocker.may_block("127.0.0.1")


def test_the_hosts_own_address_in_any_form_is_never_blocked(tmp_path):
    blocker = SipBlocker(Session(), tmp_path / "b.conf")
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "::1"):
        assert not blocker.may_block(address), address
    # Other loopback addresses belong to no service of this host (the fault
    # suite's attacker speaks from 127.0.0.2).
    for address in ("127.0.0.2", "::ffff:203.0.113.9"):
        assert blocker.may_block(address), address


def test_the_never_block_networks_are_never_blocked(tmp_path):
    blocker = SipBlocker(
        Session(),
        tmp_path / "b.conf",
        never_block=["10.0.0.0/8", "203.0.113.10", "2001:db8:5::/48"],
    )
    for address in ("10.1.2.3", "::ffff:10.9.9.9", "203.0.113.10", "2001:db8:5::7"):
        assert not blocker.may_block(address), address
    for address in ("11.0.0.1", "203.0.113.11", "2001:db8:6::7"):
        assert blocker.may_block(address), address


async def test_spoofed_failures_from_the_sbc_raise_the_alarm_but_block_nothing(
    tmp_path, caplog
):
    session, events = Session(), Events()
    path = tmp_path / "pjsip_blocked.conf"
    blocker = SipBlocker(session, path, never_block=["198.51.100.0/24"])
    guard = SipGuard(events, blocker=blocker, limit=5)
    runner = asyncio.create_task(blocker.run())
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(5):
                guard.handle(failure("198.51.100.7"))
            guard.handle(failure("203.0.113.9", account="x"))
            for _ in range(4):
                guard.handle(failure("203.0.113.9"))
        await session.sent(1)  # the one block, of the other address
        text = path.read_text()
        assert "deny = 203.0.113.9/32" in text and "198.51.100" not in text
        assert [d["blocked"] for _, _, d in events.published] == [False, True]
        assert "not blocking '198.51.100.7'" in caplog.text
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["10.0.0.0/33"], "'10.0.0.0/33' is not a network"),
        (["10.1.0.0/8"], "'10.1.0.0/8' is not a network .*host bits"),
        (["sbc.example.net"], "'sbc.example.net' is not a network"),
        ([10], "10 is not a CIDR string"),
        ("10.0.0.0/8", "must be a list"),
    ],
)
def test_a_bad_never_block_entry_stops_the_start_naming_key_and_value(
    value, message, monkeypatch
):
    monkeypatch.setenv("YHT_AMI_SECRET", "s3cret-for-tests")
    raw = {"asterisk": {"sip_never_block": value}}
    with pytest.raises(ConfigError, match=r"\[asterisk\] sip_never_block.*" + message):
        from_dict(raw, base=Path("."))
    with pytest.raises(ValueError, match=message):
        SipBlocker(Session(), "b.conf", never_block=value)


def test_the_never_block_list_reaches_the_config(monkeypatch):
    monkeypatch.setenv("YHT_AMI_SECRET", "s3cret-for-tests")
    raw = {"asterisk": {"sip_never_block": ["10.0.0.0/8", "203.0.113.10"]}}
    config = from_dict(raw, base=Path("."))
    assert config.sip_never_block == ("10.0.0.0/8", "203.0.113.10/32")
    assert from_dict({}, base=Path(".")).sip_never_block == ()
