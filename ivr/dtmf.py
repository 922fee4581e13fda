"""Count key presses from AMI DTMF events, once each (case 10).

One press can be reported two to four times: ``DTMFBegin`` and ``DTMFEnd``
(Asterisk 12+), ``DTMF`` with ``Begin: Yes`` then ``End: Yes`` (Asterisk 11),
the same digit again on the bridged peer with ``Direction: Sent``, and a
second ``End`` from senders that break RFC 4733. Only ends received on the
watched channel count, and a repeated end of the same digit counts only when
a begin came first or it is more than ``REPEAT_GAP`` after the previous end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

REPEAT_GAP = 0.040  # seconds


@dataclass
class _ChannelState:
    digit: str = ""
    ended_at: float = float("-inf")
    begun: bool = False


class DtmfDetector:
    def __init__(self) -> None:
        self._channels: dict[str, _ChannelState] = {}

    def feed(self, event: Mapping[str, str], at: float) -> str | None:
        """Return the digit when ``event`` completes a new press, else None."""
        kind = event.get("Event", "")
        if kind not in ("DTMFBegin", "DTMFEnd", "DTMF"):
            return None
        if event.get("Direction", "Received") != "Received":
            return None
        digit = event.get("Digit", "")
        channel = event.get("Channel", "")
        if not digit or not channel:
            return None
        state = self._channels.setdefault(channel, _ChannelState())
        begin, end = _phase(event)
        if begin:
            state.begun = True
        if not end:
            return None
        repeat = (
            digit == state.digit
            and not state.begun
            and at - state.ended_at <= REPEAT_GAP
        )
        state.digit, state.ended_at, state.begun = digit, at, False
        return None if repeat else digit

    def forget(self, channel: str) -> None:
        self._channels.pop(channel, None)


def _phase(event: Mapping[str, str]) -> tuple[bool, bool]:
    kind = event.get("Event", "")
    if kind == "DTMFBegin":
        return True, False
    if kind == "DTMFEnd":
        return False, True
    # Asterisk 11: one "DTMF" event name, the phase in Begin/End headers.
    return (
        event.get("Begin", "").lower() == "yes",
        event.get("End", "").lower() == "yes",
    )
