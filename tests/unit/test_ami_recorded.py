"""The AMI reader on bytes recorded from our own Asterisk 22 (see
tests/fixtures/ami/README.md), whole and split at every possible point."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.ami.agi import parse_env, parse_result
from ivr.ami.parser import AmiParser, command_output

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
RECORDED = sorted(FIXTURES.glob("*.bin"))


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(data: bytes, splits: list[int] = ()) -> tuple[AmiParser, list]:
    parser = AmiParser()
    if not data.startswith(b"Asterisk Call Manager/"):
        parser.greeting = ""  # recorded on a connection already logged in
    messages, start = [], 0
    for cut in [*splits, len(data)]:
        messages.extend(parser.feed(data[start:cut]))
        start = cut
    return parser, messages


def flat(messages) -> list[dict]:
    return [dict(m.items()) for m in messages]


def test_every_recording_is_there():
    assert len(RECORDED) >= 10


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_any_split_gives_the_same_messages(path):
    data = path.read_bytes()
    parser, whole = parse(data)
    assert parser.greeting == "" or parser.greeting.startswith("Asterisk")
    assert whole, "no message parsed"
    step = max(1, len(data) // 300)  # every byte for small files
    for cut in range(1, len(data), step):
        _, split = parse(data, [cut])
        assert flat(split) == flat(whole), f"split at byte {cut}"


def test_login_ok_and_bad():
    parser, (response, *rest) = parse(read("login_ok.bin"))
    assert parser.greeting == "Asterisk Call Manager/11.0.0"
    assert response["Response"] == "Success"
    assert any(m.get("Event") == "FullyBooted" for m in rest)
    _, (refused,) = parse(read("login_bad.bin"))
    assert refused["Response"] == "Error"
    assert refused["Message"] == "Authentication failed"


def test_case01_command_output_from_asterisk_22():
    _, messages = parse(read("command_queue_show.bin"))
    (response,) = [m for m in messages if "Response" in m]
    lines = command_output(response)
    assert lines[0].startswith("general has 0 calls")
    assert lines[-1] == ""
    assert any(line.startswith("   ") for line in lines)
    _, (error,) = parse(read("command_error.bin"))
    assert error["Response"] == "Error"
    assert command_output(error)[0].startswith("No such command")


def test_case04_queueadd_reply_and_event_and_already_there():
    _, messages = parse(read("queueadd_ok_and_event.bin"))
    response = next(m for m in messages if "Response" in m)
    event = next(m for m in messages if m.get("Event") == "QueueMemberAdded")
    assert response["Response"] == "Success"
    assert event["Interface"] == "PJSIP/6001"
    assert event["PausedReason"] == ""
    _, (again,) = parse(read("queueadd_already_there.bin"))
    assert "Already there" in again["Message"]


def test_asyncagi_exec_results_and_env_decode():
    _, messages = parse(read("asyncagi_local_call.bin"))
    start = next(m for m in messages if m.get("Event") == "AsyncAGIStart")
    env = parse_env(start["Env"])
    assert env["agi_request"] == "async"
    assert env["agi_channel"] == start["Channel"]
    execs = [m for m in messages if m.get("Event") == "AsyncAGIExec"]
    assert [m["CommandId"] for m in execs] == [
        "rec-beep-1",
        "rec-desk-1",
        "rec-break-1",
    ]
    assert all(parse_result(m["Result"]).code == 200 for m in execs)
    assert any(m.get("Event") == "QueueCallerJoin" for m in messages)


def test_list_actions_end_with_a_complete_event():
    _, messages = parse(read("coreshowchannels_empty.bin"))
    assert messages[-1]["Event"] == "CoreShowChannelsComplete"
    assert messages[-1]["ListItems"] == "0"


async def test_get_data_reads_an_empty_answer_without_timeout_as_hash():
    """GET DATA ends input on #: '200 result=' (no timeout) is a # press."""
    from ivr.ami.agi import AgiChannel

    class Channel(AgiChannel):
        def __init__(self, answer: str):
            self.answer = answer

        async def command(self, text: str, *, timeout=None):
            return parse_result(self.answer)

    assert await Channel("200 result=").get_data("menu", 5) == "#"
    assert await Channel("200 result= (timeout)").get_data("menu", 5) == ""
    assert await Channel("200 result=3").get_data("menu", 5) == "3"
