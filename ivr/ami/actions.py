"""Encode AMI actions safely.

Header values often carry text a caller controls (caller ID name and number,
keys typed, notes an admin typed). A CR or LF in a value would end the header
and let the rest start a second header or a whole second action, so every
control character is replaced before anything reaches the socket.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

HeaderValue = str | int | float | bool | Iterable[str]


def clean_value(value: object) -> str:
    """A header value with every control character replaced by a space."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return _CONTROL.sub(" ", text)


def encode_action(
    name: str, action_id: str, headers: Mapping[str, HeaderValue]
) -> bytes:
    """Serialise one action; repeated headers come from list or tuple values."""
    for key in itertools.chain((name,), headers):
        if not _HEADER_NAME.match(key):
            raise ValueError(f"invalid AMI action or header name: {key!r}")
    lines = [f"Action: {name}", f"ActionID: {clean_value(action_id)}"]
    for key, value in headers.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            lines.extend(f"{key}: {clean_value(item)}" for item in value)
        else:
            lines.append(f"{key}: {clean_value(value)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
