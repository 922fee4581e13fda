"""Shared fixtures: the real hotline stack for end-to-end tests.

The stack (Asterisk, Mosquitto, the server, agents on softphones) starts once
per test session on its own ports: ``YHT_TEST_PORT_BASE`` (default 35000)
picks them, so runs in different trees do not collide. If Asterisk cannot be
provisioned the fixture fails the tests that need it: they never skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivr.broker import free_port
from ivr.lab import Lab, LabPorts

PORT_BASE = int(os.environ.get("YHT_TEST_PORT_BASE", "35000"))


def lab_ports(base: int = PORT_BASE) -> LabPorts:
    return LabPorts(
        sip=base + 60,
        ami=base + 38,
        rtp_start=base + 1000,
        rtp_end=base + 1999,
        mqtt=free_port(),
    )


@pytest.fixture(scope="session")
async def lab(tmp_path_factory) -> Lab:
    """The whole hotline, shared by the end-to-end tests of a session."""
    data_dir: Path = tmp_path_factory.mktemp("lab")
    stack = Lab(
        f"e2e-{PORT_BASE}",
        lab_ports(),
        data_dir=data_dir,
        agent_talk_seconds=2.0,
    )
    async with stack:
        yield stack
