"""The ticket store under test, on SQLite and on a real PostgreSQL.

Tests that take ``make_store`` run once on each backend named in
``YHT_TEST_BACKENDS`` (default ``sqlite,postgres``). The PostgreSQL cluster is
private to the session (tests/support/postgres.py); each test gets a fresh
database in it, as each SQLite test gets a fresh file.
"""

from __future__ import annotations

import os

import pytest

from ivr.tickets_pg import PgTicketStore
from tests.support.tickets import CATALOG, open_store

BACKENDS = os.environ.get("YHT_TEST_BACKENDS", "sqlite,postgres").split(",")


@pytest.fixture(scope="session")
def postgres_cluster():
    from tests.support.postgres import PrivateCluster

    cluster = PrivateCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=BACKENDS)
async def make_store(request, tmp_path):
    """An async factory of (store, work orders) on this test's backend."""
    from ivr.workorders import WorkOrders

    opened = []
    cluster = (
        request.getfixturevalue("postgres_cluster")
        if request.param == "postgres"
        else None
    )

    async def make():
        if cluster is not None:
            store = await PgTicketStore.open(await cluster.new_database())
            pair = (store, WorkOrders(store, CATALOG))
        else:
            pair = await open_store(tmp_path / f"tickets-{len(opened)}.db")
        opened.append(pair[0])
        return pair

    yield make
    for store in opened:
        await store.close()
