"""The ticket store on PostgreSQL (asyncpg), with the SQLite store's interface.

``PgTicketStore`` is the SQLite :class:`~ivr.tickets.TicketStore` with its
connection swapped for :class:`_Connection`, a small adapter that speaks the
part of aiosqlite the store uses: ``?`` placeholders become ``$1..$n``,
``BEGIN IMMEDIATE`` becomes ``BEGIN`` plus a transaction-scoped advisory lock
(one writer at a time across every process, as SQLite's write lock), and an
``INSERT INTO tickets`` returns its new id. So every query of the store and of
the work-order layer is written once and runs on both.

Migrations are numbered as SQLite's: ``PG_SCHEMA[n]`` is SQLite's ``SCHEMA[n]``
in PostgreSQL's words (migration 1 differs in its types; from migration 2 on
the text is shared), and the applied number is kept in ``yht_schema``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

import asyncpg

from ivr import log
from ivr.errors import TicketStoreError
from ivr.tickets import SCHEMA, TicketStore

PG_SCHEMA = [
    # 1: tickets and their timeline (SQLite's 1, with PostgreSQL's types)
    """
    CREATE TABLE tickets (
        id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
        queue_wait DOUBLE PRECISION,
        agent TEXT,
        agent_name TEXT,
        talk_time DOUBLE PRECISION,
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
    CREATE INDEX tickets_caller ON tickets(caller_number, arrived_at)
    """,
    # 2: the work order after the call: the same text as SQLite's
    SCHEMA[1],
    # 3: follow-up calls still to make (the same text)
    SCHEMA[2],
]

# Any fixed number: the key of the advisory lock that makes writers take turns.
_WRITER_LOCK = 12345_0001
_PLACEHOLDER = re.compile(r"\?")
_INSERT_TICKET = re.compile(r"^\s*INSERT INTO tickets\s*\(", re.IGNORECASE)


class _Cursor:
    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = rows[0]["id"] if rows and "id" in rows[0].keys() else None

    async def fetchone(self) -> asyncpg.Record | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[asyncpg.Record]:
        return self._rows


class _Connection:
    """One asyncpg connection used the way the store uses aiosqlite's."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        # asyncpg runs one statement at a time per connection; aiosqlite
        # queues them on its thread. Statements queue here instead.
        self._turn = asyncio.Lock()

    async def execute(self, sql: str, args: Iterable[Any] = ()) -> _Cursor:
        args = tuple(args)
        async with self._turn:
            try:
                if sql.strip().upper() == "BEGIN IMMEDIATE":
                    await self._connection.execute("BEGIN")
                    await self._connection.execute(
                        "SELECT pg_advisory_xact_lock($1)", _WRITER_LOCK
                    )
                    return _Cursor([], 0)
                text = _numbered(sql)
                if _INSERT_TICKET.match(sql):
                    text += " RETURNING id"
                if _returns_rows(text):
                    rows = await self._connection.fetch(text, *args)
                    return _Cursor(rows, len(rows))
                status = await self._connection.execute(text, *args)
                return _Cursor([], _count(status))
            except asyncpg.PostgresError as exc:
                raise TicketStoreError(f"ticket store: {exc}") from exc

    async def close(self) -> None:
        await self._connection.close()


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (none sit in literals)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _returns_rows(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)[0].upper()
    return head in ("SELECT", "WITH") or " RETURNING " in sql.upper()


def _count(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgTicketStore(TicketStore):
    @classmethod
    async def open(cls, dsn: str) -> PgTicketStore:  # type: ignore[override]
        try:
            connection = await asyncpg.connect(dsn, timeout=30)
        except (OSError, asyncpg.PostgresError) as exc:
            raise TicketStoreError(f"cannot reach the ticket database: {exc}") from exc
        store = cls(_Connection(connection), _redacted(dsn))  # type: ignore[arg-type]
        await store._migrate()
        return store

    async def _migrate(self) -> None:
        async with self._write():
            await self._db.execute(
                "CREATE TABLE IF NOT EXISTS yht_schema (version INTEGER NOT NULL)"
            )
            row = await (
                await self._db.execute("SELECT MAX(version) AS v FROM yht_schema")
            ).fetchone()
            version = row["v"] or 0
            for number, script in enumerate(PG_SCHEMA[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    await self._db.execute(statement)
                await self._db.execute(
                    "INSERT INTO yht_schema (version) VALUES (?)", (number,)
                )
                log.tickets.info(
                    "ticket database %s migrated to schema %d", self.path, number
                )

    async def integrity_check(self) -> str:
        """'ok' when every timeline entry and part belongs to a ticket."""
        cursor = await self._db.execute(
            "SELECT (SELECT COUNT(*) FROM ticket_events e WHERE NOT EXISTS "
            "(SELECT 1 FROM tickets t WHERE t.id = e.ticket_id)) + "
            "(SELECT COUNT(*) FROM assignments a WHERE NOT EXISTS "
            "(SELECT 1 FROM tickets t WHERE t.id = a.ticket_id)) AS orphans"
        )
        row = await cursor.fetchone()
        return "ok" if row["orphans"] == 0 else f"{row['orphans']} orphan rows"


def _redacted(dsn: str) -> str:
    """The address without its password, for logs."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", dsn)


async def open_store(location: str) -> TicketStore:
    """A SQLite file path, or a ``postgresql://`` address."""
    if location.startswith(("postgresql://", "postgres://")):
        return await PgTicketStore.open(location)
    return await TicketStore.open(location)
