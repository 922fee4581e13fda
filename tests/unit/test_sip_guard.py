"""Repeated SIP authentication failures per address: one alarm an attack."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from panoramisk.message import Message

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
