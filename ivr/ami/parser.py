"""Turn the AMI byte stream into messages.

Asterisk ends every line with CRLF and every message with an empty line. The
parser works on bytes and decodes a whole message at once, so a UTF-8
character split across two TCP reads survives, and a name that Asterisk cut
in the middle of a character becomes U+FFFD instead of an exception that would
kill the reader (case 06).

Messages are panoramisk ``Message`` objects: a case-insensitive mapping where a
header that repeats (``Output:`` since Asterisk 14, ``ChanVariable:``) holds a
list of its values in order.
"""

from __future__ import annotations

from collections.abc import Iterator

from panoramisk.message import Message

MESSAGE_END = b"\r\n\r\n"
LEGACY_COMMAND_END = "--END COMMAND--"
_MESSAGE_STARTS = (b"Event:", b"Response:")
# A message larger than this without its terminating blank line is garbage or
# an attack; drop it rather than buffer without bound.
MAX_MESSAGE_BYTES = 1 << 20


class AmiParser:
    """Incremental parser: ``feed`` bytes, iterate the messages completed."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_message_bytes
        self.greeting: str | None = None
        self.dropped_bytes = 0

    def feed(self, data: bytes) -> Iterator[Message]:
        self._buffer += data
        if self.greeting is None:
            # "Asterisk Call Manager/9.0.0\r\n" is one line, not a message.
            end = self._buffer.find(b"\r\n")
            if end < 0:
                self._guard_size()
                return
            self.greeting = self._buffer[:end].decode("utf-8", "replace")
            del self._buffer[: end + 2]
        yield from self._drain()

    def _drain(self) -> Iterator[Message]:
        start = 0
        while True:
            end = self._buffer.find(MESSAGE_END, start)
            if end < 0:
                break
            block = self._buffer[start:end]
            if _is_unterminated_legacy_command(block):
                # Asterisk 13 and older: "Response: Follows" carries free text
                # that may hold blank lines, up to "--END COMMAND--". A block
                # that starts like a message ends the wait: never swallow one.
                start_of_search = end + len(MESSAGE_END)
                while LEGACY_COMMAND_END.encode() not in block:
                    if self._buffer.startswith(_MESSAGE_STARTS, start_of_search):
                        break
                    nxt = self._buffer.find(MESSAGE_END, start_of_search)
                    if nxt < 0:
                        del self._buffer[:start]
                        self._guard_size()
                        return
                    block = self._buffer[start:nxt]
                    end = nxt
                    start_of_search = nxt + len(MESSAGE_END)
            start = end + len(MESSAGE_END)
            message = parse_message(bytes(block))
            if message is not None:
                yield message
        del self._buffer[:start]
        self._guard_size()

    def _guard_size(self) -> None:
        if len(self._buffer) > self._max:
            # Resynchronise at the next message boundary after the junk.
            self.dropped_bytes += len(self._buffer)
            self._buffer.clear()


def _is_unterminated_legacy_command(block: bytes) -> bool:
    return block.lstrip().startswith(b"Response: Follows") and (
        LEGACY_COMMAND_END.encode() not in block
    )


def parse_message(block: bytes) -> Message | None:
    """Parse one message (without its blank line); None when it is not one."""
    text = block.decode("utf-8", "replace")
    headers: dict[str, str | list[str]] = {}
    body: list[str] = []
    for line in text.split("\r\n"):
        # A stray LF inside a line (never sent by a healthy Asterisk) must not
        # create a header from caller-controlled text: keep it in the value.
        key, sep, value = line.partition(":")
        if not sep or not _is_header_name(key):
            if line.strip() or body:
                body.append(line)
            continue
        if value.startswith(" "):
            value = value[1:]  # only the separator: leading spaces are data
        previous = headers.get(key)
        if previous is None:
            headers[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            headers[key] = [previous, value]
    if not headers:
        return None
    content = "\n".join(body)
    return Message(headers, content)


_KNOWN_NAMES: set[str] = set()
# Asterisk uses a few hundred header names; the bound keeps junk from growing it.
_KNOWN_NAMES_MAX = 4096


def _is_header_name(key: str) -> bool:
    # Hot path: every line of every event. Names seen before skip the check.
    if key in _KNOWN_NAMES:
        return True
    if not (0 < len(key) <= 64 and all(c.isalnum() or c in "-_" for c in key)):
        return False
    if len(_KNOWN_NAMES) < _KNOWN_NAMES_MAX:
        _KNOWN_NAMES.add(key)
    return True


def command_output(message: Message) -> list[str]:
    """The CLI output of a ``Command`` reply, one string a line, in order.

    Asterisk 14 and later send one ``Output:`` header a line (blank lines and
    leading spaces included); older versions send a free-text body ending in
    ``--END COMMAND--``. Both give the same result (case 01).
    """
    if "Output" in message:
        output = message["Output"]
        return list(output) if isinstance(output, list) else [output]
    lines = message.content.split("\n") if message.content else []
    if lines and lines[-1].strip() == LEGACY_COMMAND_END:
        lines.pop()
    return [line.rstrip("\r") for line in lines]
