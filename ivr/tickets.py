"""The ticket store: one ticket (工单) per call, with its whole story.

SQLite in WAL mode through aiosqlite. Every write goes through one connection
under one lock and opens its transaction with ``BEGIN IMMEDIATE``: a deferred
transaction that reads and then writes gets "database is locked" at once,
whatever the busy timeout (case 20), and several coroutines (AMI events, the
IVR, the admin API) write at the same time.

A ticket row holds the call's summary; ``ticket_events`` holds its timeline
(menu steps, keys, queue, agent, hangup), one row an event, in order.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiosqlite

from ivr import log
from ivr.errors import TicketStoreError
from routing.repeats import WINDOW as REPEAT_WINDOW
from routing.repeats import Repeat, Seen, find_repeat

SCHEMA = [
    # 1: tickets and their timeline
    """
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        linkedid TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        caller_number TEXT NOT NULL DEFAULT '',
        caller_name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'open',
        arrived_at TEXT NOT NULL,
        menu_entered_at TEXT,
        queue_entered_at TEXT,
        agent_answered_at TEXT,
        ended_at TEXT,
        desk TEXT,
        queue TEXT,
        priority INTEGER,
        route_reason TEXT,
        ivr_path TEXT NOT NULL DEFAULT '[]',
        keys TEXT NOT NULL DEFAULT '[]',
        queue_wait REAL,
        agent TEXT,
        agent_name TEXT,
        talk_time REAL,
        hangup_cause INTEGER,
        hangup_cause_text TEXT,
        ended_by TEXT,
        outcome TEXT,
        flags TEXT NOT NULL DEFAULT '[]',
        updated_at TEXT NOT NULL
    );
    CREATE TABLE ticket_events (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (ticket_id, seq)
    );
    CREATE INDEX tickets_status ON tickets(status);
    CREATE INDEX tickets_caller ON tickets(caller_number, arrived_at);
    """,
    # 2: the work order after the call (routing/workorder.py). ``state`` is the
    # work order's and stays apart from ``status``, the call's open or closed.
    # Dates of deadlines are local (Beijing) days, times are UTC as above.
    """
    ALTER TABLE tickets ADD COLUMN state TEXT;
    ALTER TABLE tickets ADD COLUMN category TEXT;
    ALTER TABLE tickets ADD COLUMN content TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN address TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN address_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN area TEXT;
    ALTER TABLE tickets ADD COLUMN enterprise INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tickets ADD COLUMN enterprise_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN accepted_at TEXT;
    ALTER TABLE tickets ADD COLUMN accepted_by TEXT;
    ALTER TABLE tickets ADD COLUMN answer TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN lead_unit TEXT;
    ALTER TABLE tickets ADD COLUMN deadline TEXT;
    ALTER TABLE tickets ADD COLUMN dispatched_at TEXT;
    ALTER TABLE tickets ADD COLUMN signed_at TEXT;
    ALTER TABLE tickets ADD COLUMN handled_at TEXT;
    ALTER TABLE tickets ADD COLUMN on_time INTEGER;
    ALTER TABLE tickets ADD COLUMN closed_at TEXT;
    ALTER TABLE tickets ADD COLUMN followed_up_at TEXT;
    ALTER TABLE tickets ADD COLUMN supervised INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tickets ADD COLUMN reopens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tickets ADD COLUMN round INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE tickets ADD COLUMN last_follow_up INTEGER;
    ALTER TABLE tickets ADD COLUMN satisfaction INTEGER;
    ALTER TABLE tickets ADD COLUMN repeat_of TEXT;
    ALTER TABLE tickets ADD COLUMN repeat_reason TEXT;
    CREATE TABLE assignments (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        n INTEGER NOT NULL,
        round INTEGER NOT NULL,
        unit TEXT NOT NULL,
        lead INTEGER NOT NULL,
        step TEXT NOT NULL,
        deadline TEXT NOT NULL,
        provisional INTEGER NOT NULL DEFAULT 0,
        dispatched_at TEXT NOT NULL,
        signed_at TEXT,
        handled_at TEXT,
        result TEXT NOT NULL DEFAULT '',
        before_return TEXT,
        return_reason TEXT NOT NULL DEFAULT '',
        extension_to TEXT,
        extension_reason TEXT NOT NULL DEFAULT '',
        extensions INTEGER NOT NULL DEFAULT 0,
        reminders INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ticket_id, n)
    );
    CREATE TABLE surveys (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        score INTEGER NOT NULL CHECK (score IN (1, 2, 3)),
        source TEXT NOT NULL CHECK (source IN ('in_call', 'follow_up')),
        actor TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (ticket_id, seq)
    );
    CREATE INDEX tickets_state ON tickets(state);
    CREATE INDEX tickets_arrived ON tickets(arrived_at);
    CREATE INDEX tickets_place ON tickets(address_key, category, arrived_at);
    CREATE INDEX assignments_unit ON assignments(unit, step)
    """,
    # 3: follow-up calls still to make, kept here so a restart loses none
    # (ivr/followup.py). One a closing: ``round`` is the ticket's reopens.
    """
    CREATE TABLE follow_ups (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        round INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at TEXT NOT NULL,
        last_result TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (ticket_id, round)
    );
    CREATE INDEX follow_ups_due ON follow_ups(state, next_at)
    """,
]

# Columns a caller of ``update`` may set; everything else is derived here.
UPDATABLE = {
    "caller_name",
    "menu_entered_at",
    "queue_entered_at",
    "agent_answered_at",
    "desk",
    "queue",
    "priority",
    "route_reason",
    "ivr_path",
    "keys",
    "queue_wait",
    "agent",
    "agent_name",
    "talk_time",
    "ended_by",
    "flags",
}
JSON_COLUMNS = {"ivr_path", "keys", "flags"}

OUTCOMES = (
    "answered",  # an agent took the call
    "abandoned_in_menu",  # the caller hung up in the IVR
    "abandoned_in_queue",  # the caller hung up while waiting for an agent
    "abandoned_on_arrival",  # gone before the IVR began
    "ended_by_system",  # Asterisk or the link died; the call was lost
    "callback_requested",  # the caller hung up to be called back (issue 4)
)


HOTLINE_TZ = timezone(timedelta(hours=8), "CST")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TicketStore:
    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self.path = path
        self.writes = 0

    @classmethod
    async def open(cls, path: str | Path, *, busy_timeout: float = 30.0) -> TicketStore:
        path = str(path)
        db = None
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves.
            db = await aiosqlite.connect(
                path, isolation_level=None, timeout=busy_timeout
            )
            db.row_factory = sqlite3.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            # Issue 8: past it a write fails and goes to the journal.
            await db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            await db.execute("PRAGMA foreign_keys=ON")
            store = cls(db, path)
            await store._migrate()
        except (sqlite3.Error, OSError, TicketStoreError) as exc:
            if db is not None:
                # aiosqlite's thread would keep the process alive otherwise.
                await db.close()
            raise TicketStoreError(
                f"cannot open the ticket store {path}: {exc}"
            ) from exc
        return store

    async def close(self) -> None:
        await self._db.close()

    async def _migrate(self) -> None:
        async with self._write():
            row = await (await self._db.execute("PRAGMA user_version")).fetchone()
            version = row[0]
            for number, script in enumerate(SCHEMA[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    await self._db.execute(statement)
                await self._db.execute(f"PRAGMA user_version={number}")
                log.tickets.info(
                    "ticket store %s migrated to schema %d", self.path, number
                )

    # -- writes -------------------------------------------------------------

    def _write(self) -> _WriteTransaction:
        return _WriteTransaction(self)

    async def open_ticket(
        self,
        *,
        linkedid: str,
        channel: str,
        caller_number: str,
        caller_name: str = "",
        arrived_at: str | None = None,
    ) -> dict[str, Any]:
        """Create the ticket of a call; the existing one if it was already made."""
        arrived_at = arrived_at or now_iso()
        async with self._write():
            existing = await self._row("linkedid = ?", linkedid)
            if existing is not None:
                return existing
            # Numbered by the hotline's own day (Beijing), not UTC's.
            day = parse_iso(arrived_at).astimezone(HOTLINE_TZ).strftime("%Y%m%d")
            prefix = f"12345-{day}-"
            cursor = await self._db.execute(
                "SELECT number FROM tickets WHERE number LIKE ? "
                "ORDER BY number DESC LIMIT 1",
                (prefix + "%",),
            )
            last = await cursor.fetchone()
            sequence = int(last[0].rsplit("-", 1)[1]) + 1 if last else 1
            number = f"{prefix}{sequence:06d}"
            cursor = await self._db.execute(
                "INSERT INTO tickets (number, linkedid, channel, caller_number, "
                "caller_name, arrived_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    linkedid,
                    channel,
                    caller_number,
                    caller_name,
                    arrived_at,
                    now_iso(),
                ),
            )
            await self._append(
                cursor.lastrowid, "arrived", {"channel": channel}, arrived_at
            )
            repeat = await self.link_repeat(cursor.lastrowid, at=arrived_at)
        log.tickets.info(
            "ticket %s opened for %s%s",
            number,
            log.mask_number(caller_number),
            f", repeating {repeat.of}" if repeat else "",
        )
        return await self.get(number)

    async def update(self, linkedid: str, **fields: Any) -> None:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise TicketStoreError(f"cannot set ticket fields {sorted(unknown)}")
        if not fields:
            return
        values = [
            json.dumps(v, ensure_ascii=False) if k in JSON_COLUMNS else v
            for k, v in fields.items()
        ]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        async with self._write():
            cursor = await self._db.execute(
                f"UPDATE tickets SET {assignments}, updated_at = ? WHERE linkedid = ?",
                (*values, now_iso(), linkedid),
            )
            if cursor.rowcount == 0:
                raise TicketStoreError(f"no ticket for call {linkedid}")

    async def record(
        self, linkedid: str, kind: str, data: dict | None = None, at: str | None = None
    ) -> None:
        """Append an event to a ticket's timeline."""
        async with self._write():
            ticket_id = await self._id_of(linkedid)
            await self._append(ticket_id, kind, data or {}, at or now_iso())

    async def close_ticket(
        self,
        linkedid: str,
        *,
        outcome: str,
        ended_at: str | None = None,
        cause: int | None = None,
        cause_text: str = "",
    ) -> dict[str, Any] | None:
        """Complete the ticket when its call ended; None if already closed."""
        if outcome not in OUTCOMES:
            raise TicketStoreError(f"unknown outcome {outcome!r}")
        ended_at = ended_at or now_iso()
        async with self._write():
            row = await self._row("linkedid = ?", linkedid)
            if row is None:
                raise TicketStoreError(f"no ticket for call {linkedid}")
            if row["status"] == "closed":
                return None
            talk_time = row["talk_time"]
            answered = parse_iso(row["agent_answered_at"])
            if talk_time is None and answered is not None:
                talk_time = round((parse_iso(ended_at) - answered).total_seconds(), 3)
            queue_wait = row["queue_wait"]
            entered = parse_iso(row["queue_entered_at"])
            if queue_wait is None and entered is not None:
                until = answered or parse_iso(ended_at)
                queue_wait = round((until - entered).total_seconds(), 3)
            await self._db.execute(
                "UPDATE tickets SET status = 'closed', ended_at = ?, outcome = ?, "
                "hangup_cause = ?, hangup_cause_text = ?, talk_time = ?, "
                "queue_wait = ?, updated_at = ? WHERE id = ?",
                (
                    ended_at,
                    outcome,
                    cause,
                    cause_text,
                    talk_time,
                    queue_wait,
                    now_iso(),
                    row["id"],
                ),
            )
            await self._append(
                row["id"],
                "ended",
                {"outcome": outcome, "cause": cause, "cause_text": cause_text},
                ended_at,
            )
        log.tickets.info("ticket %s closed: %s", row["number"], outcome)
        return await self.get(row["number"])

    async def link_repeat(
        self, ticket_id: int, *, at: str | None = None
    ) -> Repeat | None:
        """Link a ticket to the earlier work order it repeats, inside a write.

        Only work orders (tickets an agent accepted) count as earlier
        complaints: a caller who hung up in the menu has complained of nothing.
        """
        row = await self._row("id = ?", ticket_id)
        assert row is not None
        arrived = parse_iso(row["arrived_at"])
        since = (arrived - REPEAT_WINDOW).isoformat(timespec="milliseconds")
        cursor = await self._db.execute(
            "SELECT number, arrived_at, caller_number, address_key, category "
            "FROM tickets WHERE id != ? AND state IS NOT NULL "
            "AND arrived_at >= ? AND arrived_at <= ? AND ("
            "(caller_number = ? AND caller_number != '') OR "
            "(address_key = ? AND address_key != '' AND category = ?))",
            (
                ticket_id,
                since.replace("+00:00", "Z"),
                row["arrived_at"],
                row["caller_number"],
                row["address_key"],
                row["category"],
            ),
        )
        earlier = [
            Seen(number, parse_iso(at), caller, key, category)
            for number, at, caller, key, category in await cursor.fetchall()
        ]
        repeat = find_repeat(
            Seen(
                row["number"],
                arrived,
                row["caller_number"],
                row["address_key"],
                row["category"],
            ),
            earlier,
        )
        if repeat is None:
            return None
        flags = [f for f in row["flags"] if f != "repeat"] + ["repeat"]
        await self._db.execute(
            "UPDATE tickets SET repeat_of = ?, repeat_reason = ?, flags = ? "
            "WHERE id = ?",
            (repeat.of, ",".join(repeat.reasons), json.dumps(flags), ticket_id),
        )
        if (row["repeat_of"], row["repeat_reason"]) != (
            repeat.of,
            ",".join(repeat.reasons),
        ):
            await self._append(
                ticket_id,
                "repeat",
                {"of": repeat.of, "reasons": list(repeat.reasons)},
                at or now_iso(),
            )
        return repeat

    async def _append(self, ticket_id: int, kind: str, data: dict, at: str) -> None:
        await self._db.execute(
            "INSERT INTO ticket_events (ticket_id, seq, at, kind, data) "
            "SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM ticket_events "
            "WHERE ticket_id = ?",
            (ticket_id, at, kind, json.dumps(data, ensure_ascii=False), ticket_id),
        )

    async def _id_of(self, linkedid: str) -> int:
        cursor = await self._db.execute(
            "SELECT id FROM tickets WHERE linkedid = ?", (linkedid,)
        )
        row = await cursor.fetchone()
        if row is None:
            raise TicketStoreError(f"no ticket for call {linkedid}")
        return row[0]

    # -- reads --------------------------------------------------------------

    async def _row(self, where: str, *args: Any) -> dict[str, Any] | None:
        cursor = await self._db.execute(f"SELECT * FROM tickets WHERE {where}", args)
        row = await cursor.fetchone()
        return None if row is None else _decode(row)

    async def get(self, key: str, *, timeline: bool = True) -> dict[str, Any] | None:
        """A ticket by number or by linkedid, with its timeline."""
        ticket = await self._row("number = ? OR linkedid = ?", key, key)
        if ticket is not None and timeline:
            cursor = await self._db.execute(
                "SELECT at, kind, data FROM ticket_events WHERE ticket_id = ? "
                "ORDER BY seq",
                (ticket["id"],),
            )
            ticket["timeline"] = [
                {"at": at, "kind": kind, **json.loads(data)}
                for at, kind, data in await cursor.fetchall()
            ]
        return ticket

    async def find(
        self, *, status: str | None = None, caller: str | None = None
    ) -> list[dict[str, Any]]:
        clauses, args = [], []
        if status:
            clauses.append("status = ?")
            args.append(status)
        if caller:
            clauses.append("caller_number = ?")
            args.append(caller)
        where = " AND ".join(clauses) or "1 = 1"
        cursor = await self._db.execute(
            f"SELECT * FROM tickets WHERE {where} ORDER BY id", args
        )
        return [_decode(row) for row in await cursor.fetchall()]

    async def caller_history(
        self, caller_number: str, *, before: str | None = None, days: int = 30
    ) -> list[dict[str, Any]]:
        """The caller's tickets of the last ``days`` days, newest first.

        For the agent's screen when a call arrives: what the caller asked
        before and where each request stands. Withheld numbers have no history.
        """
        if caller_number in ("", "anonymous", "unknown", "<unknown>"):
            return []
        until = parse_iso(before) if before else datetime.now(UTC)
        since = (until - timedelta(days=days)).isoformat(timespec="milliseconds")
        cursor = await self._db.execute(
            "SELECT number, arrived_at, status, outcome, desk, state, category, "
            "content, lead_unit, deadline, satisfaction, repeat_of FROM tickets "
            "WHERE caller_number = ? AND arrived_at >= ? AND arrived_at < ? "
            "ORDER BY arrived_at DESC, id DESC LIMIT 50",
            (
                caller_number,
                since.replace("+00:00", "Z"),
                until.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            ),
        )
        return [dict(row) for row in await cursor.fetchall()]

    # -- for the work-order layer (ivr/workorders.py) ---------------------------

    def transaction(self) -> _WriteTransaction:
        """The single-writer transaction (case 20), for writes made elsewhere."""
        return _WriteTransaction(self)

    async def execute(self, sql: str, args: Iterable[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        cursor = await self._db.execute(sql, tuple(args))
        return cursor.rowcount

    async def fetchall(self, sql: str, args: Iterable[Any] = ()) -> list[dict]:
        cursor = await self._db.execute(sql, tuple(args))
        return [dict(row) for row in await cursor.fetchall()]

    async def append_event(
        self, ticket_id: int, kind: str, data: dict, at: str | None = None
    ) -> None:
        await self._append(ticket_id, kind, data, at or now_iso())

    async def ticket_row(self, key: str) -> dict[str, Any] | None:
        """The ticket row by number or linkedid, without its timeline."""
        return await self._row("number = ? OR linkedid = ?", key, key)

    async def export(self) -> list[dict[str, Any]]:
        """Every ticket with its timeline, oldest first."""
        tickets = await self.find()
        for ticket in tickets:
            full = await self.get(ticket["number"])
            ticket["timeline"] = full["timeline"] if full else []
        return tickets

    async def integrity_check(self) -> str:
        cursor = await self._db.execute("PRAGMA integrity_check")
        return (await cursor.fetchone())[0]


class _WriteTransaction:
    """``async with``: the store's lock plus BEGIN IMMEDIATE ... COMMIT."""

    def __init__(self, store: TicketStore) -> None:
        self._store = store

    async def __aenter__(self) -> None:
        await self._store._lock.acquire()
        try:
            await self._store._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._store._lock.release()
            raise TicketStoreError(f"ticket store busy or failing: {exc}") from exc
        except BaseException:
            self._store._lock.release()
            raise

    async def __aexit__(self, exc_type, exc, tb) -> None:
        db = self._store._db
        try:
            if exc_type is None:
                await db.execute("COMMIT")
                self._store.writes += 1
            else:
                await db.execute("ROLLBACK")
        except sqlite3.Error as error:
            raise TicketStoreError(f"ticket store write failed: {error}") from error
        finally:
            self._store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise TicketStoreError(f"ticket store write failed: {exc}") from exc


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    ticket = dict(row)
    for column in JSON_COLUMNS:
        if column in ticket and isinstance(ticket[column], str):
            ticket[column] = json.loads(ticket[column])
    return ticket


def to_json_lines(tickets: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tickets)
