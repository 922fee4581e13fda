"""The bench harness in its smallest configuration, on the real Asterisk.

A handful of calls per arm proves that the harness still works (callers,
agents, the server process, the native dial plan, tickets, the outputs); it
measures nothing and asserts no timing: the targets live in ``make bench``.
"""

from __future__ import annotations

import json

import pytest

from ivr.bench.report import BEGIN, END
from ivr.bench.run import run_bench
from ivr.bench.settings import SMOKE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


async def test_the_bench_runs_both_arms_with_no_failed_call(tmp_path):
    out = tmp_path / "bench"
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\nAnalysis written by hand.\n")

    results = await run_bench(
        SMOKE, out_dir=out, docs=docs, data_dir=tmp_path / "data", command="pytest"
    )

    for arm in ("A", "B"):
        fixed = results["arms"][arm]["fixed"]
        assert fixed["failures"] == {}, arm
        assert fixed["completed"] == SMOKE.fixed.calls, arm
        assert fixed["latency_ms"]["key_to_prompt"]["n"] == SMOKE.fixed.calls
        assert fixed["cpu_ms_per_call"]["asterisk"] > 0
    server_arm = results["arms"]["A"]["fixed"]
    assert server_arm["tickets"] == {
        "checked": SMOKE.fixed.calls,
        "problems": 0,
        "lost": 0,
    }
    assert server_arm["server"]["ami_events"] > 0
    assert server_arm["server"]["ticket_writes"] >= SMOKE.fixed.calls
    assert results["micro"]["ami_parser"]["messages"] > 0

    saved = json.loads((out / "results.json").read_text())
    assert saved["comparison"]["targets"]
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG")
    text = docs.read_text()
    assert text.startswith("# Performance\n\nAnalysis written by hand.\n")
    assert BEGIN in text and END in text
    assert "arm A (server)" in text
