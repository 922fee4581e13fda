"""The AMI reader on the wire formats of the field cases and on bytes split
anywhere. Recorded streams from our own Asterisk are in tests/fixtures/ami."""

from __future__ import annotations

import pytest

from ivr.ami.actions import encode_action
from ivr.ami.parser import AmiParser, command_output, parse_message


def crlf(text: str) -> bytes:
    """Case samples are written with plain line breaks; the wire uses CRLF."""
    return text.replace("\n", "\r\n").encode()


def parse_all(data: bytes, chunk: int | None = None) -> list:
    parser = AmiParser()
    parser.greeting = ""  # these samples start mid-session
    if chunk is None:
        return list(parser.feed(data))
    messages = []
    for start in range(0, len(data), chunk):
        messages.extend(parser.feed(data[start : start + chunk]))
    return messages


CASE01_A = crlf(
    "Response: Success\n"
    "ActionID: br01-a\n"
    "Message: Command output follows\n"
    "Output: support has 0 calls (max unlimited) in 'rrmemory' strategy "
    "(0s holdtime, 0s talktime), W:0, C:0, A:0, SL:0.0%, SL2:0.0% within 0s\n"
    "Output:    Members: \n"
    "Output:       Agent A (PJSIP/6001) (ringinuse disabled) (dynamic) "
    "(Not in use) has taken no calls yet\n"
    "Output:    No Callers\n"
    "Output: \n"
    "\n"
)
CASE01_B = crlf(
    "Response: Follows\n"
    "Privilege: Command\n"
    "ActionID: br01-b\n"
    "Asterisk 11.11.0 built by root @ build-host on a x86_64 running Linux on "
    "2014-08-06 19:30:37 UTC\n"
    "--END COMMAND--\n"
    "\n"
)
CASE01_C = crlf(
    "Response: Error\n"
    "ActionID: br01-c\n"
    "Message: Command output follows\n"
    "Output: No such command 'queue shwo' (type 'core show help queue shwo' "
    "for other possible commands)\n"
    "\n"
)
NEXT_EVENT = crlf("Event: FullyBooted\nPrivilege: system,all\nStatus: Fully Booted\n\n")


def test_case01_command_output_new_format_keeps_every_line():
    first, following = parse_all(CASE01_A + NEXT_EVENT)
    lines = command_output(first)
    assert len(lines) == 5
    assert lines[1] == "   Members: "
    assert lines[2].startswith("      Agent A (PJSIP/6001)")
    assert lines[4] == ""
    assert following["Event"] == "FullyBooted"


def test_case01_legacy_body_gives_the_same_result_type():
    first, following = parse_all(CASE01_B + NEXT_EVENT)
    lines = command_output(first)
    assert lines == [
        "Asterisk 11.11.0 built by root @ build-host on a x86_64 running Linux on "
        "2014-08-06 19:30:37 UTC"
    ]
    assert following["Event"] == "FullyBooted"


def test_case01_legacy_body_with_blank_lines_waits_for_its_end_marker():
    body = crlf(
        "Response: Follows\nActionID: x\nline one\n\nline three\n--END COMMAND--\n\n"
    )
    first, following = parse_all(body + NEXT_EVENT)
    assert command_output(first) == ["line one", "", "line three"]
    assert following["Event"] == "FullyBooted"


def test_case01_rejected_command_carries_its_output():
    first, following = parse_all(CASE01_C + NEXT_EVENT)
    assert first["Response"] == "Error"
    assert command_output(first)[0].startswith("No such command 'queue shwo'")
    assert following["Event"] == "FullyBooted"


CASE06 = (
    b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-00000011\r\n"
    b"CallerIDNum: 13800000003\r\n"
    b"CallerIDName: \xd0\x9a\xd0\xbb\xd0\xb8\xd0\xb5\xd0\xbd\xd1\x82 Cargo K12\xd0\r\n"
    b"Uniqueid: 1700000000.200\r\n\r\n"
    b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-00000011\r\n"
    b"Uniqueid: 1700000000.200\r\nCause: 16\r\n\r\n"
)


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_case06_name_cut_mid_character_and_split_reads(chunk):
    newchannel, hangup = parse_all(CASE06, chunk)
    assert newchannel["CallerIDName"] == "Клиент Cargo K12\ufffd"
    assert hangup["Event"] == "Hangup"
    assert hangup["Cause"] == "16"


def test_greeting_is_read_before_messages():
    parser = AmiParser()
    data = b"Asterisk Call Manager/9.0.0\r\n" + NEXT_EVENT
    messages = list(parser.feed(data[:10])) + list(parser.feed(data[10:]))
    assert parser.greeting == "Asterisk Call Manager/9.0.0"
    assert [m["Event"] for m in messages] == ["FullyBooted"]


def test_oversized_garbage_is_dropped_and_the_stream_resynchronises():
    parser = AmiParser(max_message_bytes=1024)
    parser.greeting = ""
    assert list(parser.feed(b"x" * 5000)) == []
    assert parser.dropped_bytes >= 5000
    assert [m["Event"] for m in parser.feed(NEXT_EVENT)] == ["FullyBooted"]


def test_a_line_without_a_header_name_is_not_a_header():
    message = parse_message(b"Event: UserEvent\r\nnot a header: really\r\nA: b")
    assert "not a header" not in message
    assert message["A"] == "b"


def test_repeated_headers_keep_their_order():
    message = parse_message(
        b"Response: Success\r\nChanVariable: A=1\r\nChanVariable: B=2"
    )
    assert message["ChanVariable"] == ["A=1", "B=2"]


@pytest.mark.parametrize(
    "evil",
    [
        "13800000001\r\nAction: Originate\r\nChannel: PJSIP/110",
        "name\nAction: Hangup",
        "x\rAction: Hangup",
        "nul\x00byte",
    ],
)
def test_control_characters_never_start_a_second_header_or_action(evil):
    wire = encode_action(
        "Setvar", "id-1", {"Variable": "CALLERID(name)", "Value": evil}
    )
    assert wire.count(b"\r\n\r\n") == 1
    assert wire.endswith(b"\r\n\r\n")
    parsed = parse_all(wire.replace(b"Action: Setvar", b"Response: Setvar"))
    assert len(parsed) == 1
    assert "Channel" not in parsed[0]
    assert parsed[0]["Value"] == "".join(" " if c < " " else c for c in evil)
    assert b"\nAction: Hangup" not in wire and b"\nAction: Originate" not in wire


def test_action_names_are_checked():
    with pytest.raises(ValueError, match="invalid AMI action or header name"):
        encode_action("Ping\r\nAction: Hangup", "id", {})
    with pytest.raises(ValueError):
        encode_action("Setvar", "id", {"Bad Header": "x"})
