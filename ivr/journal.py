"""The write journal: ticket writes wait here while the ticket store fails.

``JournaledStore`` stands in front of a ``TicketStore``. While the store
works, a write goes straight to it. When one fails because the store does
(database locked past its busy timeout, disk full, file read-only), that
write and every write after it are appended to an append-only file beside
the store (``<store>.journal``; held in memory, bounded, when that file's
disk is full too), fsynced, and acknowledged, so the calls go on
being answered and routed; an alarm is logged and published on MQTT
(``alarm.storage``, retained on ``alarms/storage``). A task applies the
journal to the store, in order, as soon as the store takes writes again, then
clears the alarm (``alarm.storage_cleared``). A journal left by a server that
was killed is applied when the next one starts.

Exactly once: each entry has a sequence number, and an ``applied`` line is
appended after it went into the store. The one entry a crash can leave
applied but unmarked is applied again at start, which is harmless: opening is
by linkedid, updates set values, a ticket closes once, and a timeline event
is appended only if the same one (ticket, kind, time) is not there yet.

While writes are journaled a new ticket has no number yet (numbers come from
the store, in order); the call's events carry an empty ``ticket`` until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivr import log
from ivr.errors import TicketStoreError
from ivr.tickets import TicketStore, now_iso

# Pauses between attempts to apply the journal while the store still fails.
APPLY_RETRY_DELAYS = (0.5, 1, 2, 5)
ALARM_TOPIC = "alarms/storage"
OPS = ("open_ticket", "update", "record", "close_ticket")
# Writes held in memory when the journal's own disk is full too (about 15
# per call): a few thousand calls' worth, then writes fail and are retried.
MEMORY_LIMIT = 50_000


def storage_failed(exc: TicketStoreError) -> bool:
    """Whether the store itself failed (not a write that makes no sense)."""
    return isinstance(exc.__cause__, sqlite3.Error | OSError)


class Journal:
    """The append-only file: ``{"seq", "op", "args"}`` and ``{"applied"}`` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: list[dict] = []
        self.in_memory = 0  # pending entries the file could not take
        self._seq = 0
        # append() and mark_applied() run on worker threads: the truncation
        # when all is applied must not fall between another append's write
        # and its entry joining ``pending``.
        self._lock = threading.Lock()
        self._fd: int | None = None

    def open(self) -> None:
        applied: set[int] = set()
        entries: list[dict] = []
        if self.path.exists():
            with self.path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        # A line torn by a crash mid-append: it was never
                        # acknowledged, so nothing depends on it.
                        log.tickets.warning(
                            "%s:%d: torn journal line skipped", self.path.name, number
                        )
                        continue
                    if "applied" in record:
                        applied.add(record["applied"])
                    elif record.get("op") in OPS:
                        entries.append(record)
        self.pending = [e for e in entries if e["seq"] not in applied]
        self._seq = max((e["seq"] for e in entries), default=0)
        # Unbuffered appends: what write() returned is in the file. Private:
        # entries hold callers' numbers.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, op: str, args: dict) -> dict:
        """Add a write; it is on disk when this returns, unless the file
        cannot take it (its disk is full too): then it is held in memory,
        marked ``"memory"``, up to MEMORY_LIMIT entries, and OSError past that.
        """
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "op": op, "args": args}
            try:
                self._write(entry)
            except OSError:
                if self.in_memory >= MEMORY_LIMIT:
                    raise
                entry["memory"] = True
                self.in_memory += 1
            self.pending.append(entry)
            return entry

    def mark_applied(self, entry: dict) -> None:
        with self._lock:
            self._mark_applied(entry)

    def _mark_applied(self, entry: dict) -> None:
        if entry.get("memory"):
            self.in_memory -= 1
        else:
            # If the mark cannot be written, the entry is applied again at the
            # next start: harmless (see the module's notes).
            with contextlib.suppress(OSError):
                self._write({"applied": entry["seq"]})
        self.pending.remove(entry)
        if not self.pending:
            # All applied: start the file afresh so it never grows unbounded.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                os.fsync(self._fd)

    def _write(self, record: dict) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        end = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            # No half line may stay for the next record to be glued onto.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, end)
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class JournaledStore:
    """A ``TicketStore`` whose call-tracking writes survive a failing store.

    Reads and every other method go to the store itself.
    """

    def __init__(self, store: TicketStore, journal: Journal, events=None) -> None:
        self._store = store
        self.journal = journal
        self._events = events
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failing_since: float | None = None
        self.journaled = 0
        self.applied = 0
        # Told of each ticket the journal opened (CallTracker.ticket_opened_late).
        self.opened_late: Callable[[dict], None] | None = None

    @classmethod
    async def open(
        cls, store: TicketStore, path: Path | None = None, events=None
    ) -> JournaledStore:
        path = Path(path or f"{store.path}.journal")
        journal = Journal(path)
        await asyncio.to_thread(journal.open)
        self = cls(store, journal, events)
        if journal.pending:
            log.tickets.warning(
                "%d ticket writes left in the journal %s: applying them",
                len(journal.pending),
                path.name,
            )
            self._raise_alarm("writes left by a previous run")
        self._task = asyncio.create_task(self._apply_loop(), name="journal")
        self._wake.set()
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.journal.close()
        await self._store.close()

    # -- the journaled writes ----------------------------------------------------

    async def open_ticket(self, **args: Any) -> dict[str, Any]:
        args.setdefault("arrived_at", now_iso())
        ticket = await self._write("open_ticket", args)
        if ticket is None:
            return {"number": "", "repeat_of": None}
        return ticket

    async def update(self, linkedid: str, **fields: Any) -> None:
        await self._write("update", {"linkedid": linkedid, "fields": fields})

    async def record(
        self, linkedid: str, kind: str, data: dict | None = None, at: str | None = None
    ) -> None:
        args = {"linkedid": linkedid, "kind": kind, "data": data or {}}
        await self._write("record", {**args, "at": at or now_iso()})

    async def close_ticket(self, linkedid: str, **args: Any) -> dict | None:
        args = {"linkedid": linkedid, **args}
        args.setdefault("ended_at", now_iso())
        ticket = await self._write("close_ticket", args)
        if ticket is None and self.journal.pending:
            # Journaled: it will close; say so without a number yet.
            return {"number": "", "agent": None, "desk": None}
        return ticket

    async def _write(self, op: str, args: dict) -> Any:
        if not self.journal.pending:
            try:
                return await self._apply(op, args)
            except TicketStoreError as exc:
                if not storage_failed(exc):
                    raise
                self._raise_alarm(str(exc))
        try:
            entry = await asyncio.to_thread(self.journal.append, op, args)
        except OSError as exc:
            # Past MEMORY_LIMIT: the tracker retries (WRITE_RETRY_DELAYS).
            raise TicketStoreError(
                f"cannot write the journal {self.journal.path.name}: {exc.strerror}"
            ) from exc
        if entry.get("memory") and self.journal.in_memory == 1:
            # The journal usually shares the store's disk: a full disk fails
            # both. Held in memory; lost only if the server dies meanwhile.
            log.tickets.error(
                "ALARM storage: the journal %s cannot be written either; ticket "
                "writes are held in memory (at most %d) until the store is back",
                self.journal.path.name,
                MEMORY_LIMIT,
            )
        self.journaled += 1
        self._wake.set()
        return None

    # -- applying the journal ------------------------------------------------------

    async def _apply(self, op: str, args: dict, *, replay: bool = False) -> Any:
        store = self._store
        if op == "open_ticket":
            return await store.open_ticket(**args)
        if op == "update":
            return await store.update(args["linkedid"], **args["fields"])
        if op == "record":
            if replay and await self._recorded(args):
                return None
            return await store.record(
                args["linkedid"], args["kind"], args["data"], args["at"]
            )
        if op == "close_ticket":
            args = dict(args)
            return await store.close_ticket(args.pop("linkedid"), **args)
        raise TicketStoreError(f"unknown journal operation {op!r}")

    async def _recorded(self, args: dict) -> bool:
        rows = await self._store.fetchall(
            "SELECT 1 FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id "
            "WHERE t.linkedid = ? AND e.kind = ? AND e.at = ? LIMIT 1",
            (args["linkedid"], args["kind"], args["at"]),
        )
        return bool(rows)

    async def _apply_loop(self) -> None:
        attempt = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.journal.pending:
                entry = self.journal.pending[0]
                try:
                    done = await self._apply(entry["op"], entry["args"], replay=True)
                    await asyncio.to_thread(self.journal.mark_applied, entry)
                    if entry["op"] == "open_ticket" and self.opened_late and done:
                        self.opened_late(done)
                except (TicketStoreError, OSError) as exc:
                    if isinstance(exc, OSError) or storage_failed(exc):
                        # Not yet: the same entry again later (applying it
                        # twice is harmless, see the module's notes).
                        delay = APPLY_RETRY_DELAYS[
                            min(attempt, len(APPLY_RETRY_DELAYS) - 1)
                        ]
                        attempt += 1
                        await asyncio.sleep(delay)
                        continue
                    log.tickets.error(
                        "journal entry %d (%s) cannot be applied, dropped: %s",
                        entry["seq"],
                        entry["op"],
                        exc,
                    )
                    await asyncio.to_thread(self.journal.mark_applied, entry)
                attempt = 0
                self.applied += 1
            if self.failing:
                self._clear_alarm()

    # -- the alarm -------------------------------------------------------------------

    def _raise_alarm(self, reason: str) -> None:
        if self.failing:
            return
        self._failing_since = time.monotonic()
        log.tickets.error(
            "ALARM storage: the ticket store fails (%s); ticket writes wait in "
            "the journal %s until it is back",
            reason,
            self.journal.path.name,
        )
        self._publish("alarm.storage", {"active": True, "reason": reason})

    def _clear_alarm(self) -> None:
        outage = time.monotonic() - self._failing_since
        self._failing_since = None
        log.tickets.warning(
            "alarm cleared: the ticket store is back after %.1f s; %d journaled "
            "writes applied",
            outage,
            self.applied,
        )
        self._publish(
            "alarm.storage_cleared",
            {"active": False, "outage_seconds": round(outage, 1)},
        )

    def _publish(self, type: str, data: dict) -> None:
        if self._events is not None:
            self._events.publish(type, ALARM_TOPIC, data, retain=True)
