"""The MQTT event bus: call events out, commands in, never in the way of a call.

    bus = EventBus(host="127.0.0.1", spool_path=Path("var/events.jsonl"))
    bus.subscribe("commands/queue/+", on_queue_command)
    task = asyncio.create_task(bus.run())          # the owner task
    bus.publish("call.arrived", f"events/{linkedid}", {"caller": masked})
    ...
    await bus.aclose()

publish() only appends to a bounded FIFO (and to the spool file) and wakes the
sender; it never waits for the broker. One sender drains the FIFO in order and
an event leaves it only once the broker acknowledged it (PUBACK), so events of
one topic arrive in order, at least once: consumers drop duplicates by ``id``.

The connection is a persistent session (fixed client id, clean_session=False,
MQTT 3.1.1): QoS 1 commands sent while we were away are queued by the broker
and delivered when we are back. We still re-subscribe on every connection, for
brokers that lost the session (restart without persistence).

aiomqtt facts this relies on (aiomqtt 2.5, paho-mqtt 2.2):
* a Client is used for one connection only: a new one per attempt;
* ``await client.publish(..., qos=1)`` returns at PUBACK, but does not notice a
  dropped connection (it waits for its own timeout); only ``client.messages``
  raises on disconnection, so a reader task runs beside the sender and the
  sender is cancelled with the connection;
* paho acknowledges an incoming QoS 1 message as soon as it is queued, before
  our handler ran: a command can be lost if this process dies right then.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiomqtt

from ivr import log
from ivr.errors import EventBusError

Handler = Callable[[str, dict], Awaitable[None]]

BACKOFF_MIN = 0.5
BACKOFF_MAX = 10.0
# A connection that lived this long was healthy: the next outage starts the
# backoff again from BACKOFF_MIN. Shorter ones (flapping, a client id taken over
# by a twin instance) keep doubling it.
STABLE_AFTER = 10.0
KEEPALIVE = 15  # s; a silent broker is noticed after 1.5x this
ACK_TIMEOUT = 10.0  # s for a PUBACK/SUBACK before the connection is dropped
DROP_WARN_EVERY = 10.0  # s between "buffer full" warnings
SEEN_COMMANDS = 1024  # command ids remembered to drop redelivered copies

_RESERVED = frozenset({"id", "type", "at"})


class _OnlyWhenDebugging(logging.Filter):
    # paho logs every lost connection as an ERROR, on top of our one WARNING
    # per outage; its chatter is only worth reading when debugging the bus.
    def filter(self, record: logging.LogRecord) -> bool:
        return log.mqtt.isEnabledFor(logging.DEBUG)


_paho_log = log.mqtt.getChild("paho")
_paho_log.addFilter(_OnlyWhenDebugging())


@dataclass(frozen=True)
class Event:
    """The envelope every consumer sees."""

    id: str
    type: str
    at: str
    topic: str
    data: dict
    retain: bool = False
    qos: int = 1

    def to_json(self) -> bytes:
        body = {"id": self.id, "type": self.type, "at": self.at, **self.data}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class _Item:
    __slots__ = ("event", "payload")

    def __init__(self, event: Event, payload: bytes):
        self.event = event
        self.payload = payload


def _now_iso() -> str:
    now = datetime.now(UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
    # aiomqtt says "Disconnected during message iteration" and chains the why.
    text = str(exc) or type(exc).__name__
    return f"{text}: {exc.__cause__}" if exc.__cause__ else text


class EventBus:
    """Publishes events to MQTT without ever blocking; routes commands in."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        client_id: str = "yihaotong",
        topic_prefix: str = "ivr",
        buffer_limit: int = 10_000,
        spool_path: Path | None = None,
        username: str | None = None,
        password: str | None = None,
    ):
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be at least 1")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.topic_prefix = topic_prefix.rstrip("/")
        self.buffer_limit = buffer_limit
        self.spool_path = spool_path
        self._username = username
        self._password = password

        self.connected = False
        self.dropped = 0
        self.published = 0

        # Unique across restarts, so ids from a spool never clash with new ones.
        self._boot_id = f"{int(time.time()):x}{secrets.token_hex(2)}"
        self._seq = itertools.count(1)
        self._buffer: deque[_Item] = deque()
        self._inflight: _Item | None = None
        self._wakeup = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

        self._handlers: dict[str, list[Handler]] = {}
        self._subs_changed = asyncio.Event()
        self._inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
        self._seen: deque[str] = deque()
        self._seen_set: set[str] = set()

        self._run_task: asyncio.Task[None] | None = None
        self._own_task: asyncio.Task[None] | None = None  # when used as `async with`
        self._client: aiomqtt.Client | None = None
        self._closing = False
        self._closed = False
        self._last_drop_warning = -DROP_WARN_EVERY
        self._drops_unreported = 0

        self._spool: IO[str] | None = None
        self._spool_lines = 0
        self._compact_scheduled = False
        if spool_path is not None:
            self._open_spool(spool_path)

    # -- the caller's side -------------------------------------------------

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the broker."""
        return len(self._buffer)

    def publish(
        self, type: str, topic: str, data: dict, *, retain: bool = False, qos: int = 1
    ) -> Event:
        """Queue an event for ``{prefix}/{topic}``; returns at once, always.

        Raises only for caller bugs (bad topic, qos, reserved keys, data that
        is not JSON), never because of the broker.
        """
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"not a topic to publish to: {topic!r}")
        if clash := _RESERVED & data.keys():
            raise ValueError(f"event data may not set {sorted(clash)}")
        event = Event(
            id=f"{self._boot_id}-{next(self._seq)}",
            type=type,
            at=_now_iso(),
            topic=f"{self.topic_prefix}/{topic}",
            data=data,
            retain=retain,
            qos=qos,
        )
        payload = event.to_json()  # TypeError here, to the caller, not later
        if self._closed:
            self.dropped += 1
            log.mqtt.warning("event bus closed: dropped %s %s", event.type, event.id)
            return event
        self._enqueue(_Item(event, payload))
        self._spool_write({"e": asdict(event)})
        return event

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler(topic, data)`` for JSON objects on ``{prefix}/{filter}``.

        ``topic`` is given without the prefix ("commands/queue/pause").
        Handlers run one at a time in arrival order; an exception is logged
        and the bus goes on. Commands carrying an "id" are handled once even
        if the broker redelivers them.
        """
        aiomqtt.Wildcard(f"{self.topic_prefix}/{topic_filter}")  # ValueError now
        self._handlers.setdefault(topic_filter, []).append(handler)
        self._subs_changed.set()

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued event is acknowledged; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Own the connection: connect, resend, re-subscribe, until cancelled."""
        if self._run_task is not None:
            raise EventBusError("EventBus.run() is already running")
        if self._closed:
            raise EventBusError("EventBus is closed")
        self._run_task = asyncio.current_task()
        dispatcher = asyncio.create_task(self._dispatch_loop(), name="mqtt-dispatch")
        try:
            await self._connect_loop()
        finally:
            self.connected = False
            self._run_task = None
            dispatcher.cancel()
            await asyncio.wait({dispatcher})

    async def aclose(self, timeout: float = 5) -> None:
        """Flush (bounded), tell the broker we leave, stop run(), close the spool.

        Events still unsent stay in the spool for the next start.
        """
        if self._closing:
            return
        self._closing = True
        task = self._run_task
        if task is not None and not task.done():
            if not await self.flush(timeout):
                log.mqtt.warning(
                    "closing with %d events unsent%s",
                    self.pending,
                    " (kept in the spool)" if self._spool else "",
                )
            client = self._client
            if client is not None and self.connected:
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(
                        self._status_topic, b'{"online":false}', 1, True, timeout=1
                    )
            task.cancel()
            await asyncio.wait({task})
        own = self._own_task
        if own is not None and own.done() and not own.cancelled() and own.exception():
            log.mqtt.error("event bus task had failed", exc_info=own.exception())
        self._closed = True
        self._close_spool()

    async def __aenter__(self) -> EventBus:
        self._own_task = asyncio.get_running_loop().create_task(
            self.run(), name="mqtt-bus"
        )
        await asyncio.sleep(0)  # let run() claim ownership before we return
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the buffer --------------------------------------------------------

    def _enqueue(self, item: _Item) -> None:
        if len(self._buffer) >= self.buffer_limit:
            self._drop_oldest()
        self._buffer.append(item)
        self._empty.clear()
        self._wakeup.set()

    def _drop_oldest(self) -> None:
        victim = None
        for item in self._buffer:
            if item is self._inflight:
                continue  # its PUBACK may be on the way
            if victim is None:
                victim = item
            if not item.event.retain:
                victim = item
                break
        if victim is None:
            return  # only the in-flight one: overshoot the limit by one
        self._buffer.remove(victim)
        self.dropped += 1
        self._drops_unreported += 1
        self._spool_write({"a": victim.event.id})
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARN_EVERY:
            log.mqtt.warning(
                "event buffer full (%d): dropped %d oldest events, %d in all; "
                "last dropped %s %s",
                self.buffer_limit,
                self._drops_unreported,
                self.dropped,
                victim.event.type,
                victim.event.id,
            )
            self._last_drop_warning = now
            self._drops_unreported = 0
        else:
            log.mqtt.debug("dropped %s %s", victim.event.type, victim.event.id)

    # -- the connection ----------------------------------------------------

    @property
    def _status_topic(self) -> str:
        return f"{self.topic_prefix}/status/server"

    def _new_client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            clean_session=False,
            protocol=aiomqtt.ProtocolVersion.V311,
            username=self._username,
            password=self._password,
            keepalive=KEEPALIVE,
            timeout=ACK_TIMEOUT,
            will=aiomqtt.Will(self._status_topic, b'{"online":false}', 1, True),
            logger=_paho_log,
        )

    async def _connect_loop(self) -> None:
        backoff = BACKOFF_MIN
        down_since: float | None = None  # when the last good connection dropped
        warned = False  # one WARNING per outage, the retries go to DEBUG
        while True:
            up_since = None
            client = self._new_client()
            try:
                async with client:
                    up_since = time.monotonic()
                    self._client = client
                    self.connected = True
                    if down_since is not None:
                        outage = up_since - down_since
                        log.mqtt.info(
                            "MQTT connection back after %.1f s; %d events to send",
                            outage,
                            self.pending,
                        )
                        self.publish(
                            "mqtt.reconnected",
                            "system",
                            {"outage_seconds": round(outage, 3)},
                        )
                    else:
                        log.mqtt.info(
                            "connected to MQTT broker %s:%d as %s",
                            self.host,
                            self.port,
                            self.client_id,
                        )
                    down_since, warned = None, False
                    await self._session(client)
            except Exception as exc:
                expected = isinstance(exc, aiomqtt.MqttError | OSError)
                if up_since is not None:
                    down_since = time.monotonic()
                    if down_since - up_since >= STABLE_AFTER:
                        backoff = BACKOFF_MIN
                if not warned or not expected:
                    what = "lost" if up_since is not None else "cannot reach"
                    log.mqtt.warning(
                        "%s MQTT broker %s:%d (%s); buffering events, retrying",
                        what,
                        self.host,
                        self.port,
                        _describe(exc),
                        exc_info=None if expected else exc,
                    )
                    warned = True
                else:
                    log.mqtt.debug("MQTT connect failed: %s", exc)
            finally:
                self.connected = False
                self._client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _session(self, client: aiomqtt.Client) -> None:
        # The reader is what notices a dropped connection (see module doc); when
        # any of the three ends, the others go with it. Not a TaskGroup: on 3.11
        # a failed TaskGroup leaves its parent task marked as being cancelled.
        tasks = {
            asyncio.create_task(self._read_loop(client), name="mqtt-read"),
            asyncio.create_task(self._subscribe_loop(client), name="mqtt-subscribe"),
            asyncio.create_task(self._send_loop(client), name="mqtt-send"),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        errors = [t.exception() for t in tasks if not t.cancelled()]
        for error in errors:
            if error is not None:
                raise error
        raise EventBusError("MQTT session ended without an error")

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        # Overwrites the will's retained "offline" from our last lost connection.
        await client.publish(self._status_topic, b'{"online":true}', 1, True)
        while True:
            if not self._buffer:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            item = self._buffer[0]
            self._inflight = item
            try:
                await client.publish(
                    item.event.topic,
                    item.payload,
                    qos=item.event.qos,
                    retain=item.event.retain,
                )
            finally:
                self._inflight = None
            # In flight it could not be dropped, so it is still the head.
            self._buffer.popleft()
            self.published += 1
            self._spool_write({"a": item.event.id})
            if not self._buffer:
                self._empty.set()
                self._spool_truncate()

    async def _subscribe_loop(self, client: aiomqtt.Client) -> None:
        done: set[str] = set()
        while True:
            self._subs_changed.clear()
            new = [f for f in self._handlers if f not in done]
            if not new:
                await self._subs_changed.wait()
                continue
            topics = [(f"{self.topic_prefix}/{f}", 1) for f in new]
            codes = await client.subscribe(topics)
            for (topic, _), code in zip(topics, codes, strict=False):
                if getattr(code, "is_failure", False):
                    log.mqtt.error("broker refused subscription to %s: %s", topic, code)
            done.update(new)

    async def _read_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._inbox.put_nowait(message)

    # -- commands in -------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        # Outlives connections, so a reconnect never cancels a handler midway.
        while True:
            message = await self._inbox.get()
            try:
                await self._dispatch(message)
            except Exception:  # a bug here must not end command handling
                log.mqtt.exception("cannot dispatch message on %s", message.topic)

    async def _dispatch(self, message: aiomqtt.Message) -> None:
        full = message.topic.value
        prefix = self.topic_prefix + "/"
        topic = full[len(prefix) :] if full.startswith(prefix) else full
        try:
            data = json.loads(message.payload)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            log.mqtt.warning("skipped a message on %s: not JSON (%s)", full, exc)
            return
        if not isinstance(data, dict):
            log.mqtt.warning("skipped a message on %s: not a JSON object", full)
            return
        command_id = data.get("id")
        if isinstance(command_id, str):
            if command_id in self._seen_set:
                log.mqtt.debug("dropped redelivered %s on %s", command_id, full)
                return
            self._seen.append(command_id)
            self._seen_set.add(command_id)
            if len(self._seen) > SEEN_COMMANDS:
                self._seen_set.discard(self._seen.popleft())
        handlers = [
            h
            for f, hs in self._handlers.items()
            if message.topic.matches(f"{self.topic_prefix}/{f}")
            for h in hs
        ]
        if not handlers:
            # Persistent sessions keep subscriptions of an older version alive.
            log.mqtt.debug("no handler for %s", full)
        for handler in handlers:
            try:
                await handler(topic, data)
            except Exception:
                log.mqtt.exception("handler %r failed on %s", handler, full)

    # -- the spool ---------------------------------------------------------
    # JSON lines: {"e": event} when queued, {"a": id} when acknowledged or
    # dropped. Line-buffered and never fsynced: survives a crash of this
    # process, not of the machine. Truncated whenever the buffer empties.

    def _open_spool(self, path: Path) -> None:
        items: dict[str, _Item] = {}
        bad = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                with path.open(encoding="utf-8") as f:
                    for line in f:
                        try:
                            record = json.loads(line)
                            if "a" in record:
                                items.pop(record["a"], None)
                            else:
                                event = Event(**record["e"])
                                items[event.id] = _Item(event, event.to_json())
                        except (ValueError, TypeError, KeyError):
                            bad += 1  # a line cut short by a crash
            self._spool = path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise EventBusError(f"cannot use spool file {path}: {exc}") from exc
        if bad:
            log.mqtt.warning("spool %s: skipped %d unreadable lines", path, bad)
        for item in items.values():
            self._enqueue(item)
        self._spool_rewrite()
        if items:
            log.mqtt.info("spool %s: %d unsent events to send first", path, len(items))

    def _spool_write(self, record: dict[str, Any]) -> None:
        if self._spool is None:
            return
        try:
            self._spool.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            self._spool_failed(exc)
            return
        self._spool_lines += 1
        # Bound the file during a long outage; rewriting is a few ms per 10k
        # events, so do it outside publish(), soon after.
        if (
            self._spool_lines > 2 * self.buffer_limit + 1000
            and not self._compact_scheduled
        ):
            self._compact_scheduled = True
            with contextlib.suppress(RuntimeError):  # no loop running: now
                asyncio.get_running_loop().call_soon(self._spool_rewrite)
                return
            self._spool_rewrite()

    def _spool_truncate(self) -> None:
        if self._spool is None:
            return
        try:
            self._spool.truncate(0)
        except OSError as exc:
            self._spool_failed(exc)
        self._spool_lines = 0

    def _spool_rewrite(self) -> None:
        self._compact_scheduled = False
        if self._spool is None or self.spool_path is None:
            return
        path = self.spool_path
        tmp = path.with_name(path.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                for item in self._buffer:
                    record = {"e": asdict(item.event)}
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            os.replace(tmp, path)
            self._spool.close()
            self._spool = path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            self._spool_failed(exc)
            return
        self._spool_lines = len(self._buffer)

    def _spool_failed(self, exc: OSError) -> None:
        log.mqtt.error(
            "spool %s failed (%s): events are kept in memory only", self.spool_path, exc
        )
        self._close_spool()

    def _close_spool(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            with contextlib.suppress(OSError):
                spool.close()
