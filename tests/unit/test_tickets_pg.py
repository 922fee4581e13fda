"""The PostgreSQL store's own parts: its migrations and its SQL adapter."""

from __future__ import annotations

from ivr.tickets import SCHEMA
from ivr.tickets_pg import PG_SCHEMA, PgTicketStore, _numbered, _redacted
from tests.support.tickets import beijing, call


def test_migrations_are_numbered_alike_on_both_backends():
    assert len(PG_SCHEMA) == len(SCHEMA)
    # From migration 2 on, the very same text runs on both.
    assert PG_SCHEMA[1:] == SCHEMA[1:]


def test_placeholders_and_addresses():
    assert _numbered("a = ? AND b IN (?, ?)") == "a = $1 AND b IN ($2, $3)"
    assert (
        _redacted("postgresql://yht:secret@db:5432/t")
        == "postgresql://yht:***@db:5432/t"
    )


async def test_reopening_keeps_the_data_and_migrates_once(postgres_cluster):
    dsn = await postgres_cluster.new_database()
    store = await PgTicketStore.open(dsn)
    ticket = await call(store, beijing("2026-03-02 09:00"))
    await store.close()
    store = await PgTicketStore.open(dsn)
    try:
        assert (await store.get(ticket["number"]))["status"] == "closed"
        versions = await store.fetchall(
            "SELECT version FROM yht_schema ORDER BY version"
        )
        assert [v["version"] for v in versions] == list(range(1, len(PG_SCHEMA) + 1))
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()
