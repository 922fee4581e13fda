"""Fixes proposed in docs/performance.md, tried on the bench's server only.

``hotline bench --proposals=all`` (or a list of the names below) runs arm A's
server with these patched in, so that each can be measured before it is made
where it belongs:

- ``parser``: AmiParser remembers the header names it has checked
  (belongs in ``ivr/ami/parser.py``);
- ``group-commit``: the call tracker runs the writes queued at a moment in one
  transaction, a savepoint each (belongs in ``ivr/calls.py`` with a batch API
  in ``ivr/tickets.py``);
- ``greeting-first``: the IVR waits at most 50 ms for the ticket before the
  greeting (belongs in ``ivr/engine.py``: send YHT_TICKET once the ticket is
  open instead; here the variable may stay empty).

Nothing here runs in production: only ``ivr.bench.server --proposals=...``
and the micro-benchmark import it. The patches reach into private names on
purpose and go away once the fixes are made upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator

from ivr import log
from ivr.ami import parser as parser_module
from ivr.calls import CallTracker
from ivr.errors import TicketStoreError
from ivr.tickets import TicketStore

BATCH = 200  # jobs in one transaction at most
TICKET_WAIT = 0.05  # s the greeting waits for the ticket


@contextlib.contextmanager
def header_name_cache() -> Iterator[None]:
    """AmiParser remembering the header names it has checked.

    ``_is_header_name`` runs a generator over every character of every header
    name; a call's events repeat the same few dozen names, so a bounded set
    of names seen skips almost all of that work.
    """
    check = parser_module._is_header_name
    seen: set[str] = set()

    def cached(key: str) -> bool:
        if key in seen:
            return True
        valid = check(key)
        if valid and len(seen) < 1024:
            seen.add(key)
        return valid

    parser_module._is_header_name = cached
    try:
        yield
    finally:
        parser_module._is_header_name = check


class _Savepoint:
    """A job's writes inside the tracker's batch transaction."""

    def __init__(self, store: TicketStore) -> None:
        self._store = store

    async def __aenter__(self) -> None:
        await self._store._db.execute("SAVEPOINT job")

    async def __aexit__(self, exc_type, exc, tb) -> None:
        db = self._store._db
        try:
            if exc_type is None:
                await db.execute("RELEASE job")
                self._store.writes += 1
            else:
                await db.execute("ROLLBACK TO job")
                await db.execute("RELEASE job")
        except sqlite3.Error as error:
            raise TicketStoreError(f"ticket store write failed: {error}") from error
        if isinstance(exc, sqlite3.Error):
            raise TicketStoreError(f"ticket store write failed: {exc}") from exc


def _group_commit() -> None:
    plain_write = TicketStore._write

    def write(self: TicketStore):
        if getattr(self, "_batch_open", False):
            return _Savepoint(self)
        return plain_write(self)

    async def run(self: CallTracker) -> None:
        while True:
            jobs = [await self._jobs.get()]
            while len(jobs) < BATCH and not self._jobs.empty():
                jobs.append(self._jobs.get_nowait())
            try:
                async with plain_write(self.store):
                    self.store._batch_open = True
                    try:
                        for job in jobs:
                            try:
                                await job()
                            except TicketStoreError:
                                log.tickets.exception("a ticket write failed")
                            except Exception:
                                log.tickets.exception("a call-tracking job failed")
                    finally:
                        self.store._batch_open = False
            except TicketStoreError:
                log.tickets.exception("a batch of ticket writes failed")
            finally:
                for _ in jobs:
                    self._jobs.task_done()

    TicketStore._write = write
    CallTracker.run = run


def _greeting_first() -> None:
    waiting_for_ticket = CallTracker.call_for

    async def call_for(self: CallTracker, channel: str, linkedid: str, env: dict):
        # The original adopts the call and waits for its ticket; cap the wait.
        task = asyncio.ensure_future(waiting_for_ticket(self, channel, linkedid, env))
        done, _ = await asyncio.wait({task}, timeout=TICKET_WAIT)
        call = self.calls.get(channel)
        if done or call is None:
            return await task
        task.cancel()
        return call

    CallTracker.call_for = call_for


PATCHES = {
    "parser": lambda: header_name_cache().__enter__(),  # for the process's life
    "group-commit": _group_commit,
    "greeting-first": _greeting_first,
}


def apply(names: list[str]) -> None:
    """Patch the named proposals (``PATCHES``) into this process."""
    for name in names:
        PATCHES[name]()
    log.ivr.warning("bench: running with proposals %s", ", ".join(names))
