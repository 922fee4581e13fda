"""One long-lived Asterisk Manager session: login, actions, events, liveness.

What it guarantees, and why (see the cases in the project notes):

- Login is the first action on every connection; nothing else, not even the
  keepalive Ping, goes out before Login succeeded (case 08 d).
- Originate is always sent with ``Async: true`` and its outcome tracked through
  ``OriginateResponse``, so a ringing phone never stalls the session (case 08 a).
- Any inbound byte is proof of life; the link is declared dead only when the
  keepalive window passes silent and a Ping goes unanswered (case 08 b).
- When the link drops, every pending action fails at once with
  ``AmiConnectionLost``; nothing is re-sent behind the caller's back (case 08 c).
- A refused login stops the session with one clear error; an unreachable
  Asterisk is retried with backoff, one log line per attempt.

Event handlers are plain callables run in the reader task, in arrival order.
A handler that needs to do I/O hands the work to a task it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from panoramisk.message import Message

from ivr import log
from ivr.ami.actions import HeaderValue, encode_action
from ivr.ami.parser import AmiParser, command_output
from ivr.errors import (
    AmiActionError,
    AmiCommandError,
    AmiConnectionLost,
    AmiLoginError,
    AmiTimeout,
)

EventHandler = Callable[[Message], None]
ConnectHook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "yihaotong"
    secret: str = field(default="", repr=False)
    keepalive: float = 10.0
    action_timeout: float = 10.0
    connect_timeout: float = 5.0
    backoff_max: float = 10.0


@dataclass
class _Pending:
    name: str
    future: asyncio.Future
    # For actions answered by an event list (QueueStatus, CoreShowChannels).
    events: list[Message] | None = None
    response: Message | None = None


@dataclass(frozen=True)
class OriginateResult:
    ok: bool
    reason: str
    channel: str
    uniqueid: str
    message: Message


class AmiSession:
    def __init__(self, settings: AmiSettings) -> None:
        self.settings = settings
        self._handlers: list[EventHandler] = []
        self._connect_hooks: list[ConnectHook] = []
        self._disconnect_handlers: list[Callable[[str], None]] = []
        self._pending: dict[str, _Pending] = {}
        self._originates: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"yht-{os.getpid()}-{int(time.time())}"
        self._writer: asyncio.StreamWriter | None = None
        self._logged_in = asyncio.Event()
        self._last_rx = time.monotonic()
        self._closing = False
        self.connections = 0
        self.events_received = 0
        self.greeting: str | None = None

    # -- public API ---------------------------------------------------------

    def on_event(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def on_disconnected(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(reason)`` when a logged-in session is lost."""
        self._disconnect_handlers.append(handler)

    def on_connected(self, hook: ConnectHook) -> None:
        """Run ``hook`` after each successful login (resynchronise state)."""
        self._connect_hooks.append(hook)

    @property
    def connected(self) -> bool:
        return self._logged_in.is_set()

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._originates)

    async def wait_connected(self, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self._logged_in.wait(), timeout)
        except TimeoutError:
            raise AmiTimeout(
                f"no AMI session to {self._where()} within {timeout} s"
            ) from None

    async def action(
        self,
        name: str,
        headers: Mapping[str, HeaderValue] | None = None,
        *,
        timeout: float | None = None,
        collect_events: bool = False,
    ) -> Message:
        """Send an action and return its response (raise on ``Response: Error``).

        With ``collect_events`` the response gets ``events``: the list of
        events that carried this ActionID up to ``EventList: Complete``.
        """
        if name.lower() == "originate":
            # A synchronous Originate holds the session until the call is
            # answered or times out (case 08): only ever send it async.
            raise ValueError("send Originate with AmiSession.originate()")
        if not self._logged_in.is_set() and name != "Login":
            raise AmiConnectionLost(f"{name}: no AMI session to {self._where()}")
        response = await self._send(name, headers or {}, timeout, collect_events)
        if response.get("Response", "").lower() == "error":
            raise AmiActionError(name, response.get("Message", "error"), response)
        return response

    async def command(self, cli: str, *, timeout: float | None = None) -> list[str]:
        """Run a CLI command; its output lines, in both wire formats (case 01)."""
        response = await self._send("Command", {"Command": cli}, timeout, False)
        output = command_output(response)
        if response.get("Response", "").lower() == "error":
            raise AmiCommandError(cli, output, response)
        return output

    async def originate(
        self, headers: Mapping[str, HeaderValue], *, timeout: float = 60.0
    ) -> OriginateResult:
        """Originate asynchronously and wait for its ``OriginateResponse``."""
        action_id = self._next_id()
        waiter = asyncio.get_running_loop().create_future()
        self._originates[action_id] = waiter
        try:
            await self._send(
                "Originate", {**headers, "Async": "true"}, None, False, action_id
            )
            event = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise AmiTimeout(
                f"Originate: no OriginateResponse in {timeout} s"
            ) from None
        finally:
            self._originates.pop(action_id, None)
        return OriginateResult(
            ok=event.get("Response", "") == "Success",
            reason=event.get("Reason", ""),
            channel=event.get("Channel", ""),
            uniqueid=event.get("Uniqueid", ""),
            message=event,
        )

    async def run(self) -> None:
        """Own the connection: connect, log in, read, reconnect, forever.

        Returns when ``close`` is called; raises ``AmiLoginError`` when
        Asterisk refuses the user or secret (retrying would not help).
        """
        backoff = 0.5
        attempt = 0
        while not self._closing:
            attempt += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.settings.host, self.settings.port),
                    self.settings.connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                log.ami.warning(
                    "cannot reach Asterisk at %s (attempt %d): %s; retrying in %.1f s",
                    self._where(),
                    attempt,
                    exc or type(exc).__name__,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max)
                continue
            attempt = 0
            try:
                await self._serve(reader, writer)
                backoff = 0.5
            except AmiLoginError:
                raise  # a PermissionError, so an OSError: never retried
            except (AmiConnectionLost, AmiTimeout, OSError) as exc:
                log.ami.warning("AMI session to %s failed: %s", self._where(), exc)
            finally:
                self._drop(writer)
            if not self._closing:
                log.ami.warning(
                    "AMI link to %s lost; reconnecting in %.1f s",
                    self._where(),
                    backoff,
                )
                await asyncio.sleep(backoff)

    async def close(self) -> None:
        self._closing = True
        if self._writer is not None:
            if self._logged_in.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._send("Logoff", {}, 1.0, False), 1.0)
            self._writer.close()

    # -- connection life ----------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        parser = AmiParser()
        self._writer = writer
        self._last_rx = time.monotonic()
        reading = asyncio.create_task(self._read(reader, parser), name="ami-reader")
        keepalive: asyncio.Task | None = None
        try:
            await self._login()
            self.connections += 1
            self.greeting = parser.greeting
            log.ami.info(
                "logged in to %s as %s (%s)",
                self._where(),
                self.settings.username,
                parser.greeting,
            )
            self._logged_in.set()
            # The keepalive starts only now: a Ping before Login is refused.
            keepalive = asyncio.create_task(self._keepalive(), name="ami-keepalive")
            for hook in self._connect_hooks:
                try:
                    await hook()
                except AmiConnectionLost:
                    raise
                except Exception:
                    log.ami.exception("a reconnect hook failed; carrying on")
            await reading
        finally:
            for task in (keepalive, reading):
                if task is None:
                    continue
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                elif not task.cancelled() and task.exception() is not None:
                    # A reset link ends the reader with OSError: the reason
                    # the session is over, logged by run().
                    log.ami.debug("AMI reader ended: %s", task.exception())

    async def _login(self) -> None:
        try:
            response = await self._send(
                "Login",
                {
                    "Username": self.settings.username,
                    "Secret": self.settings.secret,
                    "Events": "on",
                },
                self.settings.action_timeout,
                False,
            )
        except AmiConnectionLost as exc:
            raise AmiConnectionLost(f"login to {self._where()}: {exc}") from exc
        if response.get("Response", "").lower() != "success":
            raise AmiLoginError(
                f"Asterisk at {self._where()} refused user "
                f"{self.settings.username!r}: {response.get('Message', 'no reason')}"
                " (check the AMI secret in the configuration)"
            )

    async def _read(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            self._last_rx = time.monotonic()
            for message in parser.feed(data):
                self._dispatch(message)
        self._fail_pending("the connection was closed by Asterisk")

    async def _keepalive(self) -> None:
        window = self.settings.keepalive
        while True:
            await asyncio.sleep(window / 2)
            silent = time.monotonic() - self._last_rx
            if silent < window:
                continue
            try:
                await self._send("Ping", {}, window / 2, False)
            except (AmiTimeout, AmiConnectionLost):
                log.ami.warning(
                    "AMI link to %s silent for %.1f s and Ping unanswered: "
                    "declaring it dead",
                    self._where(),
                    silent,
                )
                if self._writer is not None:
                    self._writer.transport.abort()
                return

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        was_up = self._logged_in.is_set()
        self._logged_in.clear()
        self._writer = None
        writer.transport.abort()
        self._fail_pending("the AMI link dropped")
        if was_up and self._closing:
            log.ami.info("AMI session to %s closed", self._where())
        elif was_up:
            log.ami.warning("AMI session to %s closed", self._where())
            for handler in self._disconnect_handlers:
                try:
                    handler("the AMI link dropped")
                except Exception:
                    log.ami.exception("a disconnect handler failed")

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(AmiConnectionLost(f"{item.name}: {why}"))
        originates, self._originates = self._originates, {}
        for future in originates.values():
            if not future.done():
                future.set_exception(AmiConnectionLost(f"Originate: {why}"))

    # -- wire ---------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    async def _send(
        self,
        name: str,
        headers: Mapping[str, HeaderValue],
        timeout: float | None,
        collect_events: bool,
        action_id: str | None = None,
    ) -> Message:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiConnectionLost(f"{name}: not connected to {self._where()}")
        action_id = action_id or self._next_id()
        future = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(
            name, future, [] if collect_events else None
        )
        writer.write(encode_action(name, action_id, headers))
        log.ami.debug("sent %s %s", name, action_id)
        try:
            return await asyncio.wait_for(
                future, timeout or self.settings.action_timeout
            )
        except TimeoutError:
            raise AmiTimeout(
                f"{name}: no reply from {self._where()} in "
                f"{timeout or self.settings.action_timeout} s"
            ) from None
        finally:
            self._pending.pop(action_id, None)

    def _dispatch(self, message: Message) -> None:
        action_id = message.get("ActionID")
        if "Event" in message:
            self.events_received += 1
            if action_id:
                if self._collect(action_id, message):
                    return
                if message["Event"] == "OriginateResponse":
                    waiter = self._originates.get(action_id)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
            for handler in self._handlers:
                try:
                    handler(message)
                except Exception:
                    log.ami.exception(
                        "event handler %s failed on %s",
                        getattr(handler, "__qualname__", handler),
                        message["Event"],
                    )
            return
        if action_id is None:
            return
        pending = self._pending.get(action_id)
        if pending is None or pending.future.done():
            return
        if pending.events is not None and message.get("EventList", "").lower() == (
            "start"
        ):
            pending.events.clear()
            message.events = pending.events
            pending.response = message
            return
        if pending.events is not None and message.get("Response") == "Success":
            # Some list actions answer without "EventList: start".
            message.events = pending.events
            pending.response = message
            return
        pending.future.set_result(message)

    def _collect(self, action_id: str, event: Message) -> bool:
        pending = self._pending.get(action_id)
        if pending is None or pending.events is None:
            return False
        if event.get("EventList", "").lower() == "complete":
            response = pending.response or event
            response.events = pending.events
            if not pending.future.done():
                pending.future.set_result(response)
        else:
            pending.events.append(event)
        return True

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"


async def live_channels(session: AmiSession) -> list[Message]:
    """Every channel Asterisk has now, as its ``CoreShowChannel`` events.

    Raises AmiError as :meth:`AmiSession.action` does.
    """
    response = await session.action("CoreShowChannels", collect_events=True)
    return list(getattr(response, "events", []))
