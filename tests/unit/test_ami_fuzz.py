"""Property tests of the AMI reader: no input crashes or hangs it, any split
of a recorded stream reads the same, and it finds its feet after junk."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.ami.parser import AmiParser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
STREAM = b"".join(
    p.read_bytes()
    for p in sorted(FIXTURES.glob("*.bin"))
    if not p.read_bytes().startswith(b"Asterisk Call Manager/")
)
BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"


def fresh(max_bytes: int = 1 << 20) -> AmiParser:
    parser = AmiParser(max_message_bytes=max_bytes)
    parser.greeting = ""
    return parser


def read_all(parser: AmiParser, chunks) -> list[dict]:
    return [dict(m.items()) for chunk in chunks for m in parser.feed(chunk)]


WHOLE = read_all(fresh(), [STREAM])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_crash_and_a_message_after_them_is_read(junk):
    parser = fresh(max_bytes=4096)
    read_all(parser, [junk])
    # After a message boundary the reader is in step again.
    messages = read_all(parser, [b"\r\n\r\n" + BOOTED])
    assert messages and messages[-1].get("Event") == "FullyBooted"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_any_splits_of_a_recorded_stream_read_the_same(cuts):
    points = sorted(set(cuts))
    chunks, start = [], 0
    for point in [*points, len(STREAM)]:
        chunks.append(STREAM[start:point])
        start = point
    assert read_all(fresh(), chunks) == WHOLE


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=len(STREAM) - 1))
def test_a_truncated_stream_loses_only_its_last_message(cut):
    parser = fresh()
    partial = read_all(parser, [STREAM[:cut]])
    assert partial == WHOLE[: len(partial)]
    assert len(partial) >= len(WHOLE) - 1 - STREAM[cut:].count(b"\r\n\r\n")


def test_an_oversized_message_is_dropped_and_the_next_one_read():
    parser = fresh(max_bytes=10_000)
    huge = b"Event: Huge\r\nData: " + b"x" * 50_000
    assert read_all(parser, [huge]) == []
    assert read_all(parser, [b"\r\n\r\n" + BOOTED])[-1]["Event"] == "FullyBooted"


def test_a_legacy_follows_without_its_end_never_swallows_the_next_message():
    parser = fresh()
    messages = read_all(
        parser, [b"Response: Follows\r\nActionID: 1\r\nsome text\r\n\r\n" + BOOTED]
    )
    assert [m.get("Event") for m in messages] == [None, "FullyBooted"]
