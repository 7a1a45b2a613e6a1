"""On PostgreSQL, prepared statements go through libpq's pipeline mode outside psycopg's cursor: these are
the promises that path keeps (the transaction psycopg would open, one PREPARE per statement and session,
errors as SQLAlchemy's, held statements in order, a session left clean or not used again)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from retailblocks.storage import UnitOfWork, create_engine, libpq
from retailblocks.storage.prepared import Prepared, PreparedQuery, lane_for, together
from retailblocks.testing.databases import REQUIRE_POSTGRES_ENV, fresh_database, postgres_server_url

pytestmark = pytest.mark.postgres

metadata = sa.MetaData()
items = sa.Table(
    "lane_items",
    metadata,
    sa.Column("id", sa.String(20), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("note", sa.String(40)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
INSERT = Prepared.insert(items, "id", "count", "note", "at")
ADD = Prepared(items.update().where(items.c.id == sa.bindparam("item")).values(count=items.c.count + sa.bindparam("n")))
COUNT = PreparedQuery(sa.select(items.c.count).where(items.c.id == sa.bindparam("item")))
IDS = PreparedQuery(sa.select(items.c.id).order_by(items.c.id))
MOMENT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    if postgres_server_url() is None:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail("no PostgreSQL server")
        pytest.skip("needs PostgreSQL")
    with fresh_database("postgresql", tmp_path) as url:
        made = create_engine(url)
        metadata.create_all(made)
        yield made
        made.dispose()


def _row(item: str, count: int = 1, note: str | None = None) -> dict[str, Any]:
    return {"id": item, "count": count, "note": note, "at": MOMENT}


def _our_prepared(connection: sa.Connection) -> list[str]:
    return list(
        connection.exec_driver_sql(
            "SELECT name FROM pg_prepared_statements WHERE starts_with(name, 'rb_') ORDER BY name"
        ).scalars()
    )


def test_a_statement_is_prepared_once_per_session_and_type_of_its_values(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        for index in range(5):
            INSERT.execute(connection, _row(f"p{index}"))
        assert len(_our_prepared(connection)) == 1
        # A NULL and a value of another width are other parameter types: a statement of their own.
        INSERT.execute(connection, _row("q1", 10**12, "a note"))
        assert len(_our_prepared(connection)) == 2
        assert COUNT.scalar(connection, item="q1") == 10**12
        connection.commit()


def test_the_first_statement_opens_the_transaction_psycopg_would_open(engine: sa.Engine) -> None:
    serializable = engine.execution_options(isolation_level="SERIALIZABLE")
    with serializable.connect() as connection:
        INSERT.execute(connection, _row("s1"))
        assert connection.connection.dbapi_connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert connection.exec_driver_sql("SHOW transaction_isolation").scalar() == "serializable"
        connection.rollback()
        assert IDS.scalars(connection) == []
        connection.rollback()


def test_autocommit_statements_commit_as_they_run(engine: sa.Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        INSERT.execute(connection, _row("a1"))
        assert connection.connection.dbapi_connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with engine.connect() as other:
        assert IDS.scalars(other) == ["a1"]


def test_held_statements_go_in_order_and_a_query_inside_sees_them(engine: sa.Engine) -> None:
    with UnitOfWork(engine) as uow:
        connection = uow.connection
        with together(connection):
            assert INSERT.execute(connection, _row("h1")) == -1  # held: not known yet
            assert INSERT.execute_many(connection, [_row("h2"), _row("h3")]) == -1
            assert ADD.execute(connection, item="h1", n=4) == -1
            # Rows wanted: what is held goes first, in the same exchange.
            assert COUNT.scalar(connection, item="h1") == 5
            ADD.execute(connection, item="h2", n=1)
        assert COUNT.scalar(connection, item="h2") == 2
        changes = [{"item": "h1", "n": 1}, {"item": "h3", "n": 1}, {"item": "nowhere", "n": 1}]
        assert ADD.execute_many(connection, changes) == 2


def test_a_failing_statement_among_held_ones_raises_sqlalchemys_error_and_nothing_stands(engine: sa.Engine) -> None:
    with UnitOfWork(engine) as uow:
        INSERT.execute(uow.connection, _row("e1"))
    uow = UnitOfWork(engine)
    connection = uow.connection
    # Raised as the block ends, where the held statements are sent.
    with pytest.raises(sa.exc.IntegrityError, match="lane_items_pkey"), together(connection):  # noqa: PT012
        INSERT.execute(connection, _row("e2"))
        INSERT.execute(connection, _row("e1"))  # a duplicate
        INSERT.execute(connection, _row("e3"))  # skipped
    uow.rollback()
    with engine.connect() as other:
        assert IDS.scalars(other) == ["e1"]
        # The session is clean: out of pipeline mode, its next transaction runs.
        assert other.connection.dbapi_connection.pgconn.pipeline_status == 0


def test_a_value_that_cannot_be_adapted_raises_before_anything_is_sent(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        INSERT.execute(connection, _row("v1"))
        with pytest.raises(sa.exc.ProgrammingError, match="cannot adapt"):
            ADD.execute(connection, item="v1", n=object())
        assert COUNT.scalar(connection, item="v1") == 1  # the transaction is still good
        connection.commit()


def test_a_connection_lost_in_an_exchange_is_not_used_again(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        INSERT.execute(connection, _row("l1"))
        connection.commit()
        pid = connection.connection.dbapi_connection.pgconn.backend_pid
        with engine.connect() as killer:
            killer.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(sa.exc.OperationalError):
            ADD.execute(connection, item="l1", n=1)
        assert connection.invalidated  # as SQLAlchemy's own execution leaves it: the pool drops it
    with UnitOfWork(engine) as uow:  # the pool hands out a working connection
        assert ADD.execute(uow.connection, item="l1", n=1) == 1
    with engine.connect() as connection:
        assert COUNT.scalar(connection, item="l1") == 2


def test_past_the_prepared_limit_statements_run_unnamed(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libpq, "PREPARED_KEPT", 1)
    with engine.connect() as connection:
        INSERT.execute(connection, _row("u1"))
        assert ADD.execute(connection, item="u1", n=2) == 1
        assert COUNT.scalar(connection, item="u1") == 3
        assert len(_our_prepared(connection)) == 1
        connection.commit()


def test_a_connection_that_prepares_nothing_sends_every_statement_unnamed(engine: sa.Engine) -> None:
    # What a transaction-mode pooler needs: the next transaction may run on a session that never saw it.
    url = engine.url
    unprepared = sa.create_engine(url, connect_args={"prepare_threshold": None})
    try:
        with unprepared.connect() as connection:
            for index in range(3):
                INSERT.execute(connection, _row(f"n{index}"))
            assert COUNT.scalar(connection, item="n2") == 1
            assert _our_prepared(connection) == []
            connection.commit()
    finally:
        unprepared.dispose()


def test_the_lane_follows_the_driver_connection(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        first = lane_for(connection)
        assert first is not None and first is lane_for(connection)
        connection.invalidate()
        connection.rollback()
        second = lane_for(connection)
        assert second is not None and second is not first
        assert second.driver is connection.connection.dbapi_connection
        connection.rollback()


def test_statements_stay_prepared_when_transactions_roll_back(engine: sa.Engine) -> None:
    # psycopg deallocates every statement of the session on a rollback when it has prepared any itself:
    # on the core's engines it prepares none, so the lane's survive failures and rollbacks.
    with engine.connect() as connection:
        INSERT.execute(connection, _row("r1"))
        connection.commit()
        for _ in range(6):  # past psycopg's own threshold, had it one
            with pytest.raises(sa.exc.IntegrityError):
                INSERT.execute(connection, _row("r1"))
            connection.rollback()
            connection.exec_driver_sql("SELECT 1")
            connection.rollback()
        assert ADD.execute(connection, item="r1", n=1) == 1
        assert len(_our_prepared(connection)) == 2
        connection.commit()


def test_on_an_engine_where_psycopg_prepares_the_lane_prepares_nothing(engine: sa.Engine) -> None:
    plain = sa.create_engine(engine.url)
    try:
        with plain.connect() as connection:
            for index in range(6):
                INSERT.execute(connection, _row(f"d{index}"))
                connection.exec_driver_sql("SELECT count(*) FROM lane_items")
            connection.rollback()  # psycopg deallocates its own statements here
            INSERT.execute(connection, _row("d9"))
            assert _our_prepared(connection) == []
            connection.commit()
    finally:
        plain.dispose()
