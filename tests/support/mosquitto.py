"""A private Mosquitto broker, a cuttable TCP proxy and a collecting subscriber.

    async with Mosquitto() as broker:            # 127.0.0.1:<free port>
        async with Subscriber(broker.port, "ivr/#") as sub:
            ...
            await broker.stop(); await broker.start()   # restart, sessions kept
            await sub.wait_for(lambda msgs: len(msgs) >= 3)

The broker keeps persistent sessions and their queued QoS 1 messages across
stop()/start() (persistence on, in its temp dir), like a production broker.
TcpProxy sits between a client and the broker so that a test can cut one
client's connection while the broker stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable

import aiomqtt

from ivr.broker import HOST, Mosquitto, free_port, wait_port

__all__ = [
    "Mosquitto",
    "Subscriber",
    "TcpProxy",
    "free_port",
    "publish_once",
    "wait_port",
]


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port; cut() drops every connection.

    While cut, the port refuses connections, as a broker that is away would.
    """

    def __init__(self, target_port: int, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, HOST, self.port)

    resume = start

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        pumps, self._pumps = set(self._pumps), set()
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        writers, self._writers = self._writers, set()
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if server is not None:
            await server.wait_closed()

    aclose = cut

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cut()


class Subscriber:
    """Collects every message on a topic filter, through broker restarts.

    With ``persistent`` (the default) it uses a fixed client id and
    clean_session=False, so messages published while it was disconnected are
    queued by the broker and delivered when it comes back.
    """

    def __init__(
        self,
        port: int,
        topic_filter: str = "#",
        *,
        client_id: str | None = None,
        persistent: bool = True,
        host: str = HOST,
    ):
        self.host = host
        self.port = port
        self.topic_filter = topic_filter
        self.client_id = client_id or f"test-sub-{uuid.uuid4().hex[:8]}"
        self.persistent = persistent
        self.messages: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            client = aiomqtt.Client(
                self.host,
                self.port,
                identifier=self.client_id,
                clean_session=not self.persistent,
                keepalive=5,
            )
            try:
                async with client:
                    await client.subscribe(self.topic_filter, qos=1)
                    self._subscribed.set()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        self.messages.append((message.topic.value, message.payload))
                        self._changed.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    def events(self, type: str | None = None) -> list[dict]:
        """Payloads as dicts, first copy of each id only, in arrival order."""
        seen: set[str] = set()
        out = []
        for topic, payload in self.messages:
            event = json.loads(payload)
            if event.get("id") in seen or (type and event.get("type") != type):
                continue
            seen.add(event.get("id"))
            out.append({"_topic": topic, **event})
        return out

    async def wait_for(
        self, predicate: Callable[[list[dict]], bool], timeout: float = 5.0
    ) -> list[dict]:
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                events = self.events()
                if predicate(events):
                    return events
                await self._changed.wait()

    async def start(self, timeout: float = 5.0) -> None:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(timeout):
            await self._subscribed.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def __aenter__(self) -> Subscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def publish_once(
    port: int, topic: str, payload: bytes | str, *, qos: int = 1, host: str = HOST
) -> None:
    """Publish one message as an operator tool would, and wait for its PUBACK."""
    async with aiomqtt.Client(host, port) as client:
        await client.publish(topic, payload, qos=qos)
