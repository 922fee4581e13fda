"""Asyncio handles on the phones and calls that live in a worker process.

State here is a mirror: it changes only when the worker reports an event, and
each ``wait_*`` method returns as soon as the mirror shows what it waits for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from ivr import log
from ivr.softphone.errors import (
    CallDisconnected,
    RegistrationFailed,
    SoftphoneError,
)

if TYPE_CHECKING:
    from ivr.softphone.link import WorkerLink

STATES = ("CALLING", "INCOMING", "EARLY", "CONNECTING", "CONFIRMED", "DISCONNECTED")
MEDIA_STATUSES = ("NONE", "ACTIVE", "LOCAL_HOLD", "REMOTE_HOLD", "ERROR")
DTMF_DIGITS = frozenset("0123456789*#ABCD")
# PJSUA's default digit length (160 ms) plus its three end packets, 20 ms apart.
DTMF_SECONDS = 0.25


class Call:
    """One SIP call, incoming or outgoing, as seen by one phone."""

    def __init__(self, phone: Phone, call_id: str, direction: str):
        self.phone = phone
        self.id = call_id
        self.direction = direction  # "in" or "out"
        self.state = "CALLING" if direction == "out" else "INCOMING"
        self.states_seen: list[str] = []
        self.last_code: int | None = None
        self.last_reason = ""
        self.remote_uri = ""
        self.sip_call_id = ""
        self.headers: dict[str, str] = {}  # of the INVITE, for incoming calls
        self.dtmf_received: list[str] = []
        self.media_status = "NONE"
        self._recording: str | None = None
        self._recording_reported = False

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.direction} {self.phone.name} {self.state}>"

    @property
    def _link(self) -> WorkerLink:
        return self.phone._link

    @property
    def media_active(self) -> bool:
        return self.media_status == "ACTIVE"

    @property
    def disconnected(self) -> bool:
        return self.state == "DISCONNECTED"

    # -- waiting --------------------------------------------------------------

    async def wait_state(self, state: str, timeout: float = 10.0) -> None:
        """Wait until the call has reached ``state`` (now or earlier).

        Raises :class:`CallDisconnected` if the call ends first.
        """
        if state not in STATES:
            raise ValueError(f"unknown call state {state!r}")

        def reached() -> bool:
            if state in self.states_seen:
                return True
            if self.disconnected:
                raise self._ended(f"reaching {state}")
            return False

        await self._link.wait_for(
            reached, timeout=timeout, what=lambda: self._describe(f"reach {state}")
        )

    async def wait_disconnected(self, timeout: float = 10.0) -> None:
        await self.wait_state("DISCONNECTED", timeout)

    async def wait_media(self, status: str = "ACTIVE", timeout: float = 10.0) -> None:
        """Wait for the audio to be in ``status`` (ACTIVE, LOCAL_HOLD, ...)."""
        if status not in MEDIA_STATUSES:
            raise ValueError(f"unknown media status {status!r}")

        def reached() -> bool:
            if self.media_status == status:
                return True
            if self.disconnected:
                raise self._ended(f"media {status}")
            return False

        await self._link.wait_for(
            reached,
            timeout=timeout,
            what=lambda: self._describe(
                f"have media {status}, it is {self.media_status}"
            ),
        )

    async def wait_dtmf(self, count: int, timeout: float = 10.0) -> str:
        """Wait until ``count`` digits arrived in all; return them all."""

        def enough() -> bool:
            if len(self.dtmf_received) >= count:
                return True
            if self.disconnected:
                raise self._ended(f"{count} DTMF digits")
            return False

        await self._link.wait_for(
            enough,
            timeout=timeout,
            what=lambda: self._describe(
                f"receive {count} DTMF digits, got {''.join(self.dtmf_received)!r}"
            ),
        )
        return "".join(self.dtmf_received)

    # -- acting ---------------------------------------------------------------

    async def answer(self, code: int = 200) -> None:
        await self._link.request("answer", call=self.id, code=code)

    async def hangup(self, code: int | None = None) -> None:
        """Hang up (or reject with ``code``); a call already over is fine."""
        await self._link.request("hangup", call=self.id, code=code)

    async def send_dtmf(self, digits: str, *, gap: float = 0.25) -> None:
        """Send RFC 4733 digits one by one, ``gap`` seconds apart.

        Returns once the last digit has been sent: PJSUA drops digits still
        queued when a re-INVITE (hold, transfer) restarts the RTP stream.
        """
        if bad := set(digits) - DTMF_DIGITS:
            raise ValueError(f"not DTMF digits: {''.join(sorted(bad))!r}")
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(gap)
            await self._link.request("dtmf", call=self.id, digit=digit)
        await asyncio.sleep(DTMF_SECONDS)

    async def hold(self, timeout: float = 10.0) -> None:
        """Re-INVITE with sendonly; returns once the local audio is on hold."""
        await self._link.request("hold", call=self.id)
        await self.wait_media("LOCAL_HOLD", timeout)

    async def unhold(self, timeout: float = 10.0) -> None:
        """Re-INVITE with sendrecv; returns once the audio is active again."""
        await self._link.request("unhold", call=self.id)
        await self.wait_media("ACTIVE", timeout)

    async def play_tone(self, hz: int = 440) -> None:
        """Send a continuous sine tone into the call (replaces what was playing)."""
        await self._link.request("play_tone", call=self.id, hz=hz)

    async def play_wav(self, path: str | Path, *, loop: bool = False) -> None:
        """Send a 16-bit PCM WAV file into the call."""
        await self._link.request("play_wav", call=self.id, path=str(path), loop=loop)

    async def stop_playing(self) -> None:
        await self._link.request("stop_playing", call=self.id)

    async def recording(self, timeout: float = 10.0) -> Path:
        """The WAV of what this phone heard; stops recording a call still up.

        Measure it with :func:`ivr.softphone.audio.loudness`.
        """
        if not self.disconnected:
            try:
                result = await self._link.request(
                    "stop_recording", call=self.id, timeout=timeout
                )
                self._recording = result.get("path")
                self._recording_reported = True
            except SoftphoneError:
                if not self.disconnected:
                    raise
                # It ended meanwhile: the worker reports the file by event.
        await self._link.wait_for(
            lambda: self._recording_reported,
            timeout=timeout,
            what=lambda: self._describe("report its recording"),
        )
        if not self._recording:
            raise SoftphoneError(f"call {self.id} had no audio to record")
        return Path(self._recording)

    # -- events from the worker -------------------------------------------------

    def _on_event(self, msg: dict) -> None:
        kind = msg["event"]
        if kind in ("state", "incoming"):
            self.state = msg["state"]
            if self.state not in self.states_seen:
                self.states_seen.append(self.state)
            self.last_code = msg.get("code", self.last_code)
            self.last_reason = msg.get("reason", self.last_reason)
            self.remote_uri = msg.get("remote_uri") or self.remote_uri
            self.sip_call_id = msg.get("sip_call_id") or self.sip_call_id
            if self.disconnected:
                self.media_status = "NONE"
        elif kind == "media":
            self.media_status = msg["status"]
        elif kind == "dtmf":
            self.dtmf_received.append(msg["digit"])
        elif kind == "recording":
            self._recording = msg.get("path")
            self._recording_reported = True

    def _describe(self, goal: str) -> str:
        seen = ", ".join(self.states_seen) or "none"
        return (
            f"call {self.id} ({self.phone.name}, {self.direction}) to {goal}; "
            f"states seen: {seen}"
        )

    def _ended(self, goal: str) -> CallDisconnected:
        return CallDisconnected(
            f"call {self.id} ({self.phone.name}, {self.direction}) was "
            f"disconnected ({self.last_code} {self.last_reason}) before {goal}; "
            f"states seen: {', '.join(self.states_seen)}",
            self.last_code,
            self.last_reason,
        )


class Phone:
    """A SIP account with its own UDP port on 127.0.0.1, inside some worker."""

    def __init__(
        self,
        link: WorkerLink,
        name: str,
        *,
        user: str,
        domain: str,
        port: int | None,
        caller_id: str | None,
    ):
        self._link = link
        self.name = name
        self.user = user
        self.domain = domain
        self.registrar_port = port
        self.caller_id = caller_id
        self.local_port = 0
        self.contact_uri = ""  # dial this to reach the phone directly
        self.registered = False
        self.reg_code: int | None = None
        self.reg_reason = ""
        self._reg_events = 0
        self.calls: dict[str, Call] = {}
        self.incoming: list[Call] = []
        self._next_incoming = 0

    def __repr__(self) -> str:
        return f"<Phone {self.name} port {self.local_port or '-'}>"

    @property
    def worker_pid(self) -> int:
        return self._link.pid

    async def call(
        self, uri: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> Call:
        """Send an INVITE to ``uri``; returns at once with the new call."""
        result = await self._link.request(
            "call", name=self.name, uri=uri, headers=headers or {}, timeout=timeout
        )
        log.phones.info("phone %s: calling (call %s)", self.name, result["call"])
        return self._call_for(result["call"], "out")

    async def wait_incoming(self, timeout: float = 10.0) -> Call:
        """The next incoming call not yet returned by this method."""
        await self._link.wait_for(
            lambda: len(self.incoming) > self._next_incoming,
            timeout=timeout,
            what=lambda: (
                f"an incoming call on phone {self.name} ({len(self.incoming)} so far)"
            ),
        )
        call = self.incoming[self._next_incoming]
        self._next_incoming += 1
        return call

    async def register(self, timeout: float = 10.0) -> None:
        await self._set_registration(True, timeout)

    async def unregister(self, timeout: float = 10.0) -> None:
        await self._set_registration(False, timeout)

    async def _set_registration(self, on: bool, timeout: float) -> None:
        since = self._reg_events
        await self._link.request("register", name=self.name, on=on)
        await self.wait_registration(since, active=on, timeout=timeout)

    async def wait_registration(
        self, since: int, *, active: bool, timeout: float
    ) -> None:
        """Wait for a registration outcome after event number ``since``."""

        def settled() -> bool:
            if self._reg_events <= since:
                return False
            code = self.reg_code or 0
            if not 200 <= code < 300:
                raise RegistrationFailed(self.name, code, self.reg_reason)
            return self.registered == active

        await self._link.wait_for(
            settled,
            timeout=timeout,
            what=lambda: (
                f"phone {self.name} to {'register' if active else 'unregister'}"
            ),
        )

    def _call_for(self, call_id: str, direction: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            call = self.calls[call_id] = Call(self, call_id, direction)
        return call

    def _on_event(self, msg: dict) -> None:
        kind = msg["event"]
        if kind == "reg":
            self.reg_code = msg["code"]
            self.reg_reason = msg["reason"]
            self.registered = bool(msg["active"])
            self._reg_events += 1
            return
        call = self._call_for(msg["call"], "in" if kind == "incoming" else "out")
        if kind == "incoming":
            call.headers = msg.get("headers") or {}
            self.incoming.append(call)
        call._on_event(msg)
