"""Micro-benchmarks on recorded data: the AMI parser and the ticket store.

- The AMI bytes recorded from our Asterisk (``tests/fixtures/ami/*.bin``),
  replicated into one large stream, fed to :class:`AmiParser` in 64 KiB reads
  as the session does, against a bare ``bytes.split(b"\\r\\n\\r\\n")`` of the
  same stream: the floor any parser in Python starts from. Also the parser
  with the header-name cache proposed in docs/performance.md.
- The ticket store opening tickets (one ``BEGIN IMMEDIATE`` ... ``COMMIT`` each,
  through aiosqlite) against plain sqlite3 inserting the same rows with
  ``executemany`` in one transaction, and one commit per row for reference.

Each timing is the best of a few repeats: the machine is shared.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ivr import log
from ivr.ami.parser import AmiParser
from ivr.bench.proposals import header_name_cache
from ivr.tickets import TicketStore

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "ami"
GREETING = b"Asterisk Call Manager/11.0.0\r\n"
READ_SIZE = 65536
REPEATS = 3


def recorded_stream(size: int, fixtures: Path = FIXTURES) -> bytes:
    """The recorded messages, greeting lines dropped, repeated to ``size`` bytes."""
    unit = b""
    for path in sorted(fixtures.glob("*.bin")):
        data = path.read_bytes()
        if data.startswith(b"Asterisk Call Manager/"):
            data = data.split(b"\r\n", 1)[1]
        if not data.endswith(b"\r\n\r\n"):
            continue  # not a whole number of messages
        unit += data
    if not unit:
        raise FileNotFoundError(f"no recorded AMI messages in {fixtures}")
    return GREETING + unit * max(1, size // len(unit))


def _best(run: Callable[[], int]) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(REPEATS):
        began = time.perf_counter()
        count = run()
        best = min(best, time.perf_counter() - began)
    return best, count


def parser_rate(size: int) -> dict:
    stream = recorded_stream(size)
    body = stream[len(GREETING) :]

    def ours() -> int:
        parser = AmiParser()
        count = 0
        for offset in range(0, len(stream), READ_SIZE):
            for _ in parser.feed(stream[offset : offset + READ_SIZE]):
                count += 1
        return count

    def bare() -> int:
        return len(body.split(b"\r\n\r\n")) - 1

    ours_s, messages = _best(ours)
    bare_s, pieces = _best(bare)
    with header_name_cache():
        cached_s, _ = _best(ours)
    mib = len(stream) / (1 << 20)
    return {
        "stream_mib": round(mib, 1),
        "messages": messages,
        "split_pieces": pieces,
        "parser": {
            "seconds": round(ours_s, 4),
            "messages_per_s": round(messages / ours_s),
            "mib_per_s": round(mib / ours_s, 1),
        },
        "bare_split": {
            "seconds": round(bare_s, 4),
            "messages_per_s": round(pieces / bare_s),
            "mib_per_s": round(mib / bare_s, 1),
        },
        "split_over_parser": round(ours_s / bare_s, 1),
        # The proposal for ivr/ami/parser.py, measured on the same stream.
        "parser_with_name_cache": {
            "seconds": round(cached_s, 4),
            "messages_per_s": round(messages / cached_s),
            "speedup": round(ours_s / cached_s, 2),
        },
    }


def _rows(count: int) -> list[tuple]:
    return [
        (
            f"12345-20261203-{i:06d}",
            f"1796300000.{i}",
            f"PJSIP/pstn-{i:08x}",
            f"138{i:08d}",
            "",
            "2026-12-03T08:00:00.000Z",
            "2026-12-03T08:00:00.000Z",
        )
        for i in range(1, count + 1)
    ]


INSERT = (
    "INSERT INTO tickets (number, linkedid, channel, caller_number, caller_name, "
    "arrived_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


async def store_rate(count: int) -> dict:
    rows = _rows(count)
    with tempfile.TemporaryDirectory(prefix="yht-bench-") as tmp:
        folder = Path(tmp)

        store = await TicketStore.open(folder / "store.db")
        try:
            began = time.perf_counter()
            for _, linkedid, channel, number, name, arrived, _ in rows:
                await store.open_ticket(
                    linkedid=linkedid,
                    channel=channel,
                    caller_number=number,
                    caller_name=name,
                    arrived_at=arrived,
                )
            open_s = time.perf_counter() - began
            began = time.perf_counter()
            for _, linkedid, *_ in rows:
                await store.update(linkedid, desk="general", queue="general")
            update_s = time.perf_counter() - began
        finally:
            await store.close()

        many_s = _plain(folder, "many.db", rows, one_transaction=True)
        each_s = _plain(folder, "each.db", rows, one_transaction=False)
    return {
        "rows": count,
        "store_open_ticket": {
            "seconds": round(open_s, 3),
            "commits_per_s": round(count / open_s),
        },
        "store_update": {
            "seconds": round(update_s, 3),
            "commits_per_s": round(count / update_s),
        },
        "sqlite_executemany": {
            "seconds": round(many_s, 4),
            "rows_per_s": round(count / many_s),
        },
        "sqlite_commit_per_row": {
            "seconds": round(each_s, 3),
            "commits_per_s": round(count / each_s),
        },
        "executemany_over_store": round(open_s / many_s, 1),
    }


def _plain(folder: Path, name: str, rows: list[tuple], one_transaction: bool) -> float:
    """Plain sqlite3 on the store's own schema and settings."""
    path = folder / name
    source = sqlite3.connect(folder / "store.db")
    try:
        schema = [
            sql
            for (sql,) in source.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                "AND name NOT LIKE 'sqlite_%'"
            )
        ]
    finally:
        source.close()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for statement in schema:
            db.execute(statement)
        began = time.perf_counter()
        if one_transaction:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(INSERT, rows)
            db.execute("COMMIT")
        else:
            for row in rows:
                db.execute("BEGIN IMMEDIATE")
                db.execute(INSERT, row)
                db.execute("COMMIT")
        return time.perf_counter() - began
    finally:
        db.close()


async def run_micro(stream_bytes: int, tickets: int) -> dict:
    # One INFO line per ticket opened would time the console, not the store.
    level = log.tickets.level
    log.tickets.setLevel(logging.WARNING)
    try:
        store = await store_rate(tickets)
    finally:
        log.tickets.setLevel(level)
    return {"ami_parser": parser_rate(stream_bytes), "ticket_store": store}
