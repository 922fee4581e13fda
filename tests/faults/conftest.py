"""The fault suite (``make faults``): its own lab, and the table at the end.

The lab here is not the end-to-end tests' one: its ports are the test port
base plus 100 (SIP, AMI) and its RTP range above theirs, so killing its
Asterisk disturbs no other test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ivr.lab import REPO, LabPorts
from tests.conftest import PORT_BASE, lab_ports
from tests.faults.results import ROWS, table, write
from tests.faults.stack import FaultLab

RESULTS = REPO / "var" / "faults" / "results.txt"


def fault_ports(base: int = PORT_BASE) -> LabPorts:
    return dataclasses.replace(
        lab_ports(base + 100), rtp_start=base + 2000, rtp_end=base + 2499
    )


@pytest.fixture(scope="session")
async def fault_lab(tmp_path_factory) -> FaultLab:
    data_dir: Path = tmp_path_factory.mktemp("faults")
    stack = FaultLab(
        f"faults-{PORT_BASE}",
        fault_ports(),
        data_dir=data_dir,
        # Long enough that calls are still in talk when a fault strikes.
        agent_talk_seconds=8.0,
    )
    async with stack:
        yield stack


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not ROWS:
        return
    terminalreporter.section("faults")
    terminalreporter.write_line(table(ROWS))
    write(ROWS, RESULTS)
    terminalreporter.write_line(f"(also in {RESULTS.relative_to(REPO)})")
