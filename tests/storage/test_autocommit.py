"""Writes complete in one statement are committed as they run where the engine allows it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.platform.placement import schema_engine
from retailblocks.storage.blocks_api import insert_if_absent, single_statement
from retailblocks.storage.engine import autocommit_engine, create_engine
from retailblocks.testing.databases import fresh_database, postgres_server_url

NOTES = sa.Table("autocommit_notes", sa.MetaData(), sa.Column("key", sa.String(40), primary_key=True))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    made = create_engine(database_url)
    NOTES.create(made)
    yield made
    made.dispose()


def test_a_single_statement_is_seen_by_others_before_its_block_ends_on_postgresql_only(engine: sa.Engine) -> None:
    with single_statement(engine) as connection:
        assert insert_if_absent(connection, NOTES, {"key": "first"})
        assert not insert_if_absent(connection, NOTES, {"key": "first"})
        if engine.dialect.name == "postgresql":
            # Committed as it ran: no transaction holds it.
            with engine.connect() as other:
                assert other.execute(sa.select(NOTES.c.key)).scalars().all() == ["first"]
    with engine.connect() as other:
        assert other.execute(sa.select(NOTES.c.key)).scalars().all() == ["first"]


def test_a_failing_block_keeps_nothing_on_sqlite_where_it_is_a_transaction(engine: sa.Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL each statement commits as it runs")

    def write_then_fail() -> None:
        with single_statement(engine) as connection:
            insert_if_absent(connection, NOTES, {"key": "gone"})
            raise RuntimeError("after the write")

    with pytest.raises(RuntimeError):
        write_then_fail()
    with engine.connect() as other:
        assert other.execute(sa.select(NOTES.c.key)).scalars().all() == []


def test_only_a_plain_postgresql_engine_has_an_autocommit_twin(tmp_path: Path) -> None:
    assert autocommit_engine(create_engine(f"sqlite:///{tmp_path / 'shop.db'}")) is None
    pooled = create_engine("postgresql+psycopg://app@db.example.com/shop?pool_mode=transaction")
    assert autocommit_engine(pooled) is None, "each transaction sets its lock timeout as it begins"
    plain = create_engine("postgresql+psycopg://app@db.example.com/shop")
    twin = autocommit_engine(plain)
    assert twin is not None and twin.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
    assert autocommit_engine(plain) is twin, "made once per engine"
    assert autocommit_engine(schema_engine(plain, "m_north")) is None, "a merchant's scope is per transaction"


@pytest.mark.postgres
def test_a_merchants_single_statement_lands_in_its_schema(tmp_path: Path) -> None:
    if postgres_server_url() is None:
        pytest.skip("set RETAILBLOCKS_TEST_POSTGRES_URL to run PostgreSQL tests")
    with fresh_database("postgresql", tmp_path) as url:
        server = create_engine(url)
        with server.begin() as connection:
            connection.exec_driver_sql('CREATE SCHEMA "m_north"')
        north = schema_engine(server, "m_north")
        with north.begin() as connection:
            NOTES.create(connection)
        with single_statement(north) as connection:
            assert insert_if_absent(connection, NOTES, {"key": "north"})
        with server.connect() as connection:
            assert connection.execute(sa.text("SELECT key FROM m_north.autocommit_notes")).scalars().all() == ["north"]
        server.dispose()


def driver_connection(connection: sa.Connection) -> object:
    return connection.connection.dbapi_connection


def test_single_statements_one_after_another_reuse_one_autocommit_connection(engine: sa.Engine) -> None:
    if autocommit_engine(engine) is None:
        pytest.skip("only an engine with an autocommit twin keeps its connections waiting")
    used = []
    for n in range(3):
        with single_statement(engine) as connection:
            used.append(driver_connection(connection))
            assert insert_if_absent(connection, NOTES, {"key": f"turn-{n}"})
        # It waits outside the pool, committed: nothing is held, everything is visible.
        assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert used[0] is used[1] is used[2]
    with engine.connect() as other:
        assert other.execute(sa.select(NOTES.c.key).order_by(NOTES.c.key)).scalars().all() == [
            "turn-0",
            "turn-1",
            "turn-2",
        ]
    engine.dispose()
    assert used[0].closed, "disposing of the engine closes the connection that waited"  # type: ignore[attr-defined]


def test_a_single_statement_that_fails_does_not_leave_its_connection_waiting(engine: sa.Engine) -> None:
    if autocommit_engine(engine) is None:
        pytest.skip("only an engine with an autocommit twin keeps its connections waiting")
    used = []

    def fail() -> None:
        with single_statement(engine) as connection:
            used.append(connection)
            connection.execute(sa.text("SELECT * FROM no_such_table"))

    with pytest.raises(sa.exc.ProgrammingError):
        fail()
    assert used[0].closed and engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with single_statement(engine) as connection:
        assert insert_if_absent(connection, NOTES, {"key": "after"})


def test_at_most_four_autocommit_connections_wait(engine: sa.Engine) -> None:
    if autocommit_engine(engine) is None:
        pytest.skip("only an engine with an autocommit twin keeps its connections waiting")
    with contextlib.ExitStack() as stack:
        for n in range(6):  # six at once, as six threads would hold them
            connection = stack.enter_context(single_statement(engine))
            assert insert_if_absent(connection, NOTES, {"key": f"at-once-{n}"})
        assert engine.pool.checkedout() == 6  # type: ignore[attr-defined]
    assert engine.pool.checkedout() == 4  # type: ignore[attr-defined]
