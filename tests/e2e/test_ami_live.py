"""The AMI session against the real Asterisk: login, the cases of the field
(01, 04, 08), header injection, and what the operator sees on bad set-up."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ivr.ami.session import AmiSession, AmiSettings
from ivr.errors import (
    AmiActionError,
    AmiCommandError,
    AmiConnectionLost,
    AmiLoginError,
)
from tests.support.tcp import Relay

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]


def settings(lab, **overrides) -> AmiSettings:
    values = {
        "port": lab.ports.ami,
        "username": "yihaotong",
        "secret": lab._secrets["ami"],
        **overrides,
    }
    return AmiSettings(**values)


async def running(session: AmiSession):
    task = asyncio.create_task(session.run())
    await session.wait_connected(10)
    return task


async def stop(session: AmiSession, task: asyncio.Task) -> None:
    await session.close()
    await asyncio.wait_for(task, 5)


async def test_wrong_secret_is_one_clear_error_naming_host_and_user(lab):
    session = AmiSession(settings(lab, secret="not-the-secret"))
    with pytest.raises(AmiLoginError) as refused:
        await asyncio.wait_for(session.run(), 10)
    message = str(refused.value)
    assert f"127.0.0.1:{lab.ports.ami}" in message and "'yihaotong'" in message


def test_serve_with_a_wrong_secret_exits_non_zero_with_that_error(lab, tmp_path):
    config = tmp_path / "hotline.toml"
    config.write_text(
        f'[ami]\nport = {lab.ports.ami}\n[store]\npath = "{tmp_path}/t.db"\n'
        f'[mqtt]\nport = {lab.ports.mqtt}\nclient_id = "wrong-secret"\n'
        f'[dialplan]\npath = "{REPO}/dialplans/12345.yaml"\n'
    )
    env = {**os.environ, "YHT_AMI_SECRET": "not-the-secret"}
    done = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "--config", str(config), "serve"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "refused user 'yihaotong'" in done.stderr
    assert done.stderr.count("refused user") == 1


async def test_asterisk_not_running_is_retried_with_one_log_line_per_attempt(
    lab, caplog
):
    closed_port = Relay(lab.ports.ami).port  # nothing listens there
    session = AmiSession(settings(lab, port=closed_port, backoff_max=0.5))
    with caplog.at_level(logging.WARNING, logger="yihaotong.ami"):
        task = asyncio.create_task(session.run())
        await asyncio.sleep(2.2)
        assert not task.done()  # still trying, never crashed
        await stop(session, task)
    attempts = [r for r in caplog.records if "cannot reach Asterisk" in r.message]
    assert len(attempts) >= 3
    assert "(attempt 1)" in attempts[0].message and "(attempt 2)" in attempts[1].message


async def test_case01_cli_output_lines_and_a_failed_command(lab):
    session = AmiSession(settings(lab))
    task = await running(session)
    try:
        lines = await session.command("queue show business")
        assert lines[0].startswith("business has")
        assert any(line.startswith("   ") for line in lines)
        with pytest.raises(AmiCommandError) as failed:
            await session.command("queue shwo business")
        assert "No such command" in str(failed.value)
        # The link is still in step: the next action gets its own answer.
        assert (await session.action("Ping"))["Ping"] == "Pong"
    finally:
        await stop(session, task)


async def test_case04_queue_add_is_idempotent_and_leaves_nothing_pending(lab):
    session = AmiSession(settings(lab))
    task = await running(session)
    member = {"Queue": "business", "Interface": "PJSIP/6999", "MemberName": "probe"}
    try:
        await session.action("QueueAdd", {**member, "Penalty": 2})
        with pytest.raises(AmiActionError, match="Already there"):
            await session.action("QueueAdd", member)
        await session.action("QueueRemove", member)
        for _ in range(1000):
            await session.action("QueueAdd", member)
            await session.action("QueueRemove", member)
        assert session.pending == 0
    finally:
        await stop(session, task)


async def test_case08_link_cut_fails_pending_at_once_and_login_comes_first(lab):
    relay = Relay(lab.ports.ami)
    await relay.start()
    session = AmiSession(settings(lab, port=relay.port, keepalive=1.0))
    task = await running(session)
    try:
        # WaitEvent holds its reply until an event comes: a pending action.
        waiting = asyncio.create_task(
            session.action("WaitEvent", {"Timeout": 30}, timeout=60)
        )
        await asyncio.sleep(0.3)
        cut_at = time.monotonic()
        await relay.cut()
        with pytest.raises(AmiConnectionLost):
            await waiting
        assert time.monotonic() - cut_at < 1.0
        assert session.pending == 0

        await session.wait_connected(10)
        await asyncio.sleep(2.5)  # keepalive windows pass on the new link
        assert (await session.action("Ping"))["Ping"] == "Pong"
        for connection in range(len(relay.sent)):
            assert relay.actions(connection)[0] == "Login"
        assert "Ping" in relay.actions(len(relay.sent) - 1)
    finally:
        await stop(session, task)
        await relay.close()


async def test_case08_a_silent_link_is_declared_dead_and_replaced(lab):
    relay = Relay(lab.ports.ami)
    await relay.start()
    session = AmiSession(settings(lab, port=relay.port, keepalive=1.0))
    task = await running(session)
    dropped = asyncio.Event()
    session.on_disconnected(lambda why: dropped.set())
    try:
        relay.frozen = True
        frozen_at = time.monotonic()
        await asyncio.wait_for(dropped.wait(), 10)
        assert time.monotonic() - frozen_at < 3.0  # within the keepalive window
        relay.frozen = False
        await session.wait_connected(10)
        assert session.connections == 2
    finally:
        await stop(session, task)
        await relay.close()


async def test_crlf_in_a_value_never_starts_a_second_action(lab):
    session = AmiSession(settings(lab))
    task = await running(session)
    evil = "13800000001\r\nAction: Originate\r\nChannel: Local/12345@from-pstn\r\n"
    try:
        await session.action("Setvar", {"Variable": "YHT_PROBE", "Value": evil})
        value = (await session.action("Getvar", {"Variable": "YHT_PROBE"}))["Value"]
        assert "\r" not in value and "\n" not in value
        assert value.startswith("13800000001  Action: Originate")
        channels = await session.action("CoreShowChannels", collect_events=True)
        assert not [e for e in channels.events if "from-pstn" in e.get("Context", "")]
    finally:
        await stop(session, task)
