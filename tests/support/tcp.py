"""A TCP relay for fault tests: records what the client sent on each
connection, and can freeze (silent link) or cut (reset) the link."""

from __future__ import annotations

import asyncio
import contextlib

from ivr.broker import HOST, free_port


class Relay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.sent: list[bytearray] = []  # client -> server, one per connection
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, self.port)

    async def _accept(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.close()
            return
        log = bytearray()
        self.sent.append(log)
        self._writers |= {writer, up_writer}
        for src, dst, record in ((reader, up_writer, log), (up_reader, writer, None)):
            task = asyncio.create_task(self._pump(src, dst, record))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src, dst, record: bytearray | None) -> None:
        try:
            while data := await src.read(65536):
                await self._thawed.wait()
                if record is not None:
                    record += data
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            dst.close()

    @property
    def frozen(self) -> bool:
        """A frozen relay keeps its connections open but passes no byte."""
        return not self._thawed.is_set()

    @frozen.setter
    def frozen(self, value: bool) -> None:
        if value:
            self._thawed.clear()
        else:
            self._thawed.set()

    async def cut(self) -> None:
        """Reset every connection now (new ones are still accepted)."""
        writers, self._writers = self._writers, set()
        for writer in writers:
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def actions(self, connection: int) -> list[str]:
        """The action names the client sent on one connection, in order."""
        text = self.sent[connection].decode("utf-8", "replace")
        return [
            line.split(":", 1)[1].strip()
            for line in text.split("\r\n")
            if line.lower().startswith("action:")
        ]
