"""The server's AMI account drops events no handler of ours reads."""

from __future__ import annotations

import re
from pathlib import Path

from ivr.pbx import SERVER_UNUSED_EVENTS

IVR = Path(__file__).resolve().parents[2] / "ivr"


def test_no_filtered_event_is_read_by_the_server():
    used = {}
    for path in IVR.rglob("*.py"):
        if path.name == "pbx.py" or "bench" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for name in SERVER_UNUSED_EVENTS:
            if re.search(rf"[\"']{name}[\"']", text):
                used.setdefault(name, []).append(path.name)
    assert not used, f"events filtered out but read by the server: {used}"


def test_the_filter_names_are_event_names():
    assert len(set(SERVER_UNUSED_EVENTS)) == len(SERVER_UNUSED_EVENTS)
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", n) for n in SERVER_UNUSED_EVENTS)
    # Never the events calls, queues, agents, transfers and AGI live on.
    for needed in ("Hangup", "Newchannel", "AsyncAGIExec", "DialEnd", "AgentConnect"):
        assert needed not in SERVER_UNUSED_EVENTS
