"""AsyncAGI over the manager session: one ``AgiChannel`` per call in AGI.

The dialplan runs ``AGI(agi:async)``; Asterisk announces the channel with
``AsyncAGIStart`` and waits for commands sent as the ``AGI`` manager action.
Each command's outcome comes back later as an ``AsyncAGIExec`` event carrying
our ``CommandID``. (panoramisk's ``send_agi_command`` waits on the action
reply instead and never resolves on Asterisk 22, hence this module.)
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from panoramisk.message import Message

from ivr import log
from ivr.ami.session import AmiSession
from ivr.errors import AgiError, AgiHangup, AmiActionError, AmiConnectionLost

_RESULT = re.compile(r"^(?P<code>\d{3})[ -](?:result=(?P<result>\S*))?\s*(?P<rest>.*)$")


@dataclass(frozen=True)
class AgiResult:
    code: int
    result: str
    data: str
    raw: str

    @property
    def digit(self) -> str | None:
        """The key that interrupted STREAM FILE / WAIT FOR DIGIT, if any."""
        if self.result.isdigit() and int(self.result) > 0:
            return chr(int(self.result))
        return None

    @property
    def timed_out(self) -> bool:
        return "timeout" in self.data


def parse_result(raw: str) -> AgiResult:
    text = unquote(raw).strip()
    if text.upper().startswith("HANGUP"):
        raise AgiHangup("the channel hung up")
    match = _RESULT.match(text)
    if match is None:
        raise AgiError(f"unreadable AGI result {text!r}")
    code = int(match["code"])
    result = match["result"] or ""
    data = match["rest"].strip().strip("()")
    if code != 200:
        raise AgiError(f"AGI command refused: {text}")
    if result == "-1":
        raise AgiHangup(f"the command failed or the channel hung up ({text})")
    return AgiResult(code, result, data, text)


def parse_env(raw: str) -> dict[str, str]:
    """The ``agi_*`` variables announced in ``AsyncAGIStart``."""
    env: dict[str, str] = {}
    for line in unquote(raw).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            env[key.strip()] = value.strip()
    return env


def quote_arg(value: str) -> str:
    """One AGI argument in double quotes, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiChannel:
    """A call that is waiting for AGI commands."""

    def __init__(self, router: AgiRouter, event: Message) -> None:
        self._router = router
        self.channel: str = event["Channel"]
        self.uniqueid: str = event.get("Uniqueid", "")
        self.linkedid: str = event.get("Linkedid", "") or self.uniqueid
        self.env = parse_env(event.get("Env", ""))
        self.ended = asyncio.Event()
        self._waiters: dict[str, asyncio.Future] = {}

    @property
    def caller_number(self) -> str:
        return self.env.get("agi_callerid", "") or ""

    @property
    def caller_name(self) -> str:
        return self.env.get("agi_calleridname", "") or ""

    async def command(self, text: str, *, timeout: float | None = None) -> AgiResult:
        (result,) = await self.pipeline([text], timeout=timeout)
        return result

    async def pipeline(
        self, texts: list[str], *, timeout: float | None = None
    ) -> list[AgiResult]:
        """Queue every command of ``texts`` at once; their results, in order.

        Asterisk's AsyncAGI loop looks for queued commands only when it wakes
        (every 20 ms with a phone's audio, 100 ms without) and then runs all of
        them: n commands that need no answer in between cost one wait, not n.
        """
        if self.ended.is_set():
            raise AgiHangup(f"{self.channel} left AGI before {texts[0].split()[0]}")
        loop = asyncio.get_running_loop()
        sent: list[tuple[str, asyncio.Future, str]] = []
        waiting = texts[0]  # the command whose result is awaited
        try:
            for text in texts:
                command_id = self._router.next_id()
                future = loop.create_future()
                self._waiters[command_id] = future
                sent.append((command_id, future, text))
                waiting = text
                await self._send(command_id, text)
            raws = []
            async with asyncio.timeout(timeout):
                for _, future, waiting in sent:  # noqa: B007 (named on timeout)
                    raws.append(await future)
        except TimeoutError:
            raise AgiError(
                f"{self.channel}: no result for {waiting.split()[0]} in {timeout} s"
            ) from None
        finally:
            for command_id, future, _ in sent:
                self._waiters.pop(command_id, None)
                # A hangup may have failed the waiter while we were leaving by
                # another way: retrieve it so asyncio does not log it as lost.
                if future.done() and not future.cancelled():
                    future.exception()
                else:
                    future.cancel()
        return [parse_result(raw) for raw in raws]

    async def _send(self, command_id: str, text: str) -> None:
        try:
            await self._router.session.action(
                "AGI",
                {"Channel": self.channel, "Command": text, "CommandID": command_id},
            )
        except AmiActionError as exc:
            # "Channel does not exist" or no longer in AsyncAGI.
            self.ended.set()
            raise AgiHangup(f"{self.channel}: {exc}") from exc
        except AmiConnectionLost as exc:
            raise AgiError(f"{self.channel}: {exc}") from exc

    async def stream_file(self, path: str, escape_digits: str = "") -> str | None:
        result = await self.command(f"STREAM FILE {path} {quote_arg(escape_digits)}")
        return result.digit

    async def get_data(self, path: str, timeout: float, max_digits: int = 1) -> str:
        """Play ``path`` and collect up to ``max_digits`` keys; '' on no input."""
        result = await self.command(
            f"GET DATA {path} {int(timeout * 1000)} {int(max_digits)}"
        )
        digits = result.result if result.result.isascii() else ""
        if not digits and not result.timed_out and max_digits == 1:
            # GET DATA takes # as "end of input": an empty answer that did not
            # time out is a caller who pressed #.
            return "#"
        return digits

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f"SET VARIABLE {name} {quote_arg(value)}")

    async def get_variable(self, name: str) -> str | None:
        result = await self.command(f"GET VARIABLE {name}")
        return result.data if result.result == "1" else None

    async def exec(self, application: str, args: str = "") -> AgiResult:
        return await self.command(f"EXEC {application} {quote_arg(args)}")

    async def release(self, variables: dict[str, str] | None = None) -> None:
        """Set ``variables``, then leave AsyncAGI, in one round: the dialplan
        continues after ``AGI(agi:async)``."""
        sets = [
            f"SET VARIABLE {name} {quote_arg(value)}"
            for name, value in (variables or {}).items()
        ]
        await self.pipeline([*sets, "ASYNCAGI BREAK"])
        self.ended.set()

    def _resolve(self, command_id: str, raw: str) -> None:
        future = self._waiters.get(command_id)
        if future is not None and not future.done():
            future.set_result(raw)

    def _end(self, why: str) -> None:
        self.ended.set()
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(AgiHangup(f"{self.channel}: {why}"))


class AgiRouter:
    """Routes AsyncAGI events to their channels; tells ``on_start`` of new ones."""

    def __init__(
        self, session: AmiSession, on_start: Callable[[AgiChannel], None]
    ) -> None:
        self.session = session
        self._on_start = on_start
        self._channels: dict[str, AgiChannel] = {}
        self._ids = itertools.count(1)
        session.on_event(self.handle)

    def next_id(self) -> str:
        return f"agi-{next(self._ids)}"

    @property
    def channels(self) -> dict[str, AgiChannel]:
        return self._channels

    def handle(self, event: Message) -> None:
        name = event["Event"]
        if name == "AsyncAGIStart":
            channel = AgiChannel(self, event)
            self._channels[channel.channel] = channel
            self._on_start(channel)
        elif name == "AsyncAGIExec":
            channel = self._channels.get(event.get("Channel", ""))
            command_id = event.get("CommandID") or event.get("CommandId", "")
            if channel is not None:
                channel._resolve(command_id, event.get("Result", ""))
        elif name in ("AsyncAGIEnd", "Hangup"):
            channel = self._channels.pop(event.get("Channel", ""), None)
            if channel is not None:
                channel._end("left AsyncAGI" if name == "AsyncAGIEnd" else "hung up")

    def fail_all(self, why: str) -> None:
        """The AMI link dropped: nobody will answer the commands in flight."""
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            channel._end(why)
        if channels:
            log.ivr.warning("%d calls lost their AGI session: %s", len(channels), why)
