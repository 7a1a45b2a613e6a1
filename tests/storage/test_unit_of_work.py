"""Events recorded in a unit of work are written with it, and vanish with whatever rolls back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from retailblocks.storage import UnitOfWork, create_engine
from retailblocks.storage.tables import metadata, outbox
from retailblocks.storage.unit_of_work import keeping_connection

MOMENT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def record(uow: UnitOfWork, event_type: str, payload: dict[str, Any] | str | None = None) -> None:
    uow.record_event(
        event_type=event_type,
        payload={"n": 1} if payload is None else payload,
        source="core",
        channel=None,
        order_id="ord_1",
        member_id=None,
        occurred_at=MOMENT,
    )


def recorded(engine: sa.Engine) -> list[tuple[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(outbox.c.type, outbox.c.payload).order_by(outbox.c.id)).all()
        connection.rollback()
    return [(row.type, row.payload) for row in rows]


@pytest.fixture(params=["own connection", "kept connection"])
def keeping(request: pytest.FixtureRequest) -> Iterator[Callable[[sa.Engine], Any]]:
    """Each test runs its units on connections of their own, and (SQLite) on a connection a keeper lends,
    where transactions begin and end on the driver."""
    if request.param == "own connection":
        yield lambda _engine: contextlib.nullcontext()
    else:
        yield keeping_connection


def test_events_commit_with_the_unit_and_vanish_with_its_rollback(
    database_url: str, keeping: Callable[[sa.Engine], Any]
) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    with keeping(engine):
        _events_commit_with_the_unit_and_vanish_with_its_rollback(engine)
    assert recorded(engine) == [("a.first", {"n": 1}), ("a.second", {"text": ["already", "encoded"]})]
    engine.dispose()


def _events_commit_with_the_unit_and_vanish_with_its_rollback(engine: sa.Engine) -> None:
    with UnitOfWork(engine) as uow:
        record(uow, "a.first")
        record(uow, "a.second", '{"text": ["already", "encoded"]}')
    uow = UnitOfWork(engine)
    record(uow, "b.rolled-back")
    uow.connection.execute(sa.select(1))
    uow.rollback()
    uow = UnitOfWork(engine)
    record(uow, "c.never-opened")  # nothing else touched the database: rolled back all the same
    uow.rollback()


def test_a_rolled_back_savepoint_takes_only_its_own_events(
    database_url: str, keeping: Callable[[sa.Engine], Any]
) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    with keeping(engine):
        _a_rolled_back_savepoint_takes_only_its_own_events(engine)
    assert [kind for kind, _ in recorded(engine)] == ["before", "between", "kept", "after"]
    engine.dispose()


def _a_rolled_back_savepoint_takes_only_its_own_events(engine: sa.Engine) -> None:
    with UnitOfWork(engine) as uow:
        record(uow, "before")
        outer = uow.connection.begin_nested()
        record(uow, "outer")
        inner = uow.connection.begin_nested()
        record(uow, "inner, released")
        inner.commit()
        record(uow, "outer, after inner")
        outer.rollback()
        record(uow, "between")
        kept = uow.connection.begin_nested()
        record(uow, "kept")
        kept.commit()
        undone = uow.connection.begin_nested()
        record(uow, "undone")
        undone.rollback()
        record(uow, "after")


def test_a_read_only_connection_does_not_make_the_next_write_transaction_deferred(tmp_path: Any) -> None:
    # "read_only" is kept in the pooled connection's info. A write transaction that began DEFERRED on a
    # connection a reader gave back would take the write lock only at its first write, and fail with
    # SQLITE_BUSY instead of waiting if another writer got there in between.
    import sqlite3

    path = tmp_path / "shop.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.info["read_only"] = True
        connection.execute(sa.text("SELECT 1"))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with engine.begin() as connection:  # the pool is LIFO: the reader's connection again
            connection.execute(sa.text("SELECT 1"))
            # Begun IMMEDIATE: the write lock is already held, so another writer cannot begin.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        engine.dispose()


def test_an_event_that_cannot_be_written_commits_nothing_of_its_unit(database_url: str) -> None:
    """On PostgreSQL the events and the COMMIT leave in one pipeline: an insert that fails there must
    keep the COMMIT from running, and the unit's other writes roll back with it."""
    engine = create_engine(database_url)
    metadata.create_all(engine)
    uow = UnitOfWork(engine)
    uow.connection.execute(
        outbox.insert().values(type="kept.only.if.committed", source="core", payload={}, occurred_at=MOMENT)
    )
    record(uow, "a.fine")
    uow.record_event(
        event_type=None,  # type: ignore[arg-type]  # a NOT NULL column: refused everywhere
        payload={},
        source="core",
        channel=None,
        order_id=None,
        member_id=None,
        occurred_at=MOMENT,
    )
    with pytest.raises(sa.exc.IntegrityError):
        uow.commit()
    assert recorded(engine) == []
    # The connection went back to the pool clean: the next unit commits as usual.
    with UnitOfWork(engine) as later:
        record(later, "a.later")
    assert recorded(engine) == [("a.later", {"n": 1})]
    engine.dispose()


def test_a_units_first_statement_returns_its_rows_and_its_errors_as_any_other(database_url: str) -> None:
    """On PostgreSQL a unit's first prepared statement leaves with the driver's BEGIN, in one pipeline:
    its rows, its row count and its errors come back as for the statements after it."""
    from retailblocks.storage.prepared import Prepared, PreparedQuery

    engine = create_engine(database_url)
    metadata.create_all(engine)
    insert = Prepared.insert(outbox, "type", "source", "payload", "occurred_at")
    count = PreparedQuery(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.type == sa.bindparam("type")))
    with UnitOfWork(engine) as uow:
        assert count.scalar(uow.connection, type="a.first") == 0
        assert insert.execute(uow.connection, type="a.first", source="core", payload={}, occurred_at=MOMENT) == 1
    with UnitOfWork(engine) as uow:
        assert insert.execute(uow.connection, type="a.second", source="core", payload={}, occurred_at=MOMENT) == 1
        assert count.scalar(uow.connection, type="a.second") == 1
    uow = UnitOfWork(engine)
    with pytest.raises(sa.exc.IntegrityError):
        insert.execute(uow.connection, type=None, source="core", payload={}, occurred_at=MOMENT)
    uow.rollback()
    with UnitOfWork(engine) as uow:
        assert count.scalar(uow.connection, type="a.second") == 1
    assert [event_type for event_type, _payload in recorded(engine)] == ["a.first", "a.second"]
    engine.dispose()


def test_writes_sent_together_fail_as_sqlalchemy_errors_and_keep_nothing(database_url: str) -> None:
    """storage.together: a failing statement in the batch is raised, as SQLAlchemy's, when the block ends;
    the unit then rolls back whole, the statement before it included."""
    from retailblocks.storage import Prepared, together

    engine = create_engine(database_url)
    metadata.create_all(engine)
    insert = Prepared.insert(outbox, "type", "source", "payload", "occurred_at")
    uow = UnitOfWork(engine)

    def send_both() -> None:
        with together(uow.connection):
            insert.execute(uow.connection, type="a.sent", source="core", payload={}, occurred_at=MOMENT)
            insert.execute(uow.connection, type=None, source="core", payload={}, occurred_at=MOMENT)

    with pytest.raises(sa.exc.IntegrityError):
        send_both()
    uow.rollback()
    with UnitOfWork(engine) as uow, together(uow.connection):
        insert.execute(uow.connection, type="a.kept", source="core", payload={}, occurred_at=MOMENT)
    assert [event_type for event_type, _payload in recorded(engine)] == ["a.kept"]
    engine.dispose()


def test_deferred_writes_run_at_commit_in_order_and_vanish_with_a_rollback(
    database_url: str, keeping: Callable[[sa.Engine], Any]
) -> None:
    from retailblocks.storage import Prepared

    engine = create_engine(database_url)
    metadata.create_all(engine)
    insert = Prepared.insert(outbox, "type", "source", "payload", "occurred_at")
    rename = Prepared(outbox.update().where(outbox.c.type == sa.bindparam("old")).values(type=sa.bindparam("new")))

    def row(event_type: str) -> dict[str, Any]:
        return {"type": event_type, "source": "core", "payload": {}, "occurred_at": MOMENT}

    with keeping(engine):
        with UnitOfWork(engine) as uow:
            uow.defer(insert, row("deferred"))
            uow.defer(rename, {"old": "deferred", "new": "deferred, renamed"})  # runs after the insert
            insert.execute(uow.connection, row("sent at once"))
            record(uow, "event")
        uow = UnitOfWork(engine)
        uow.defer(insert, row("rolled back"))
        insert.execute(uow.connection, row("rolled back too"))
        uow.rollback()
        with UnitOfWork(engine) as uow:
            uow.defer(insert, row("before the savepoint"))
            savepoint = uow.connection.begin_nested()
            uow.defer(insert, row("inside the savepoint"))
            savepoint.rollback()
        with UnitOfWork(engine) as uow:  # nothing else in the unit: the deferred write opens it
            uow.defer(insert, row("alone"))
    kinds = [kind for kind, _ in recorded(engine)]
    assert kinds == ["sent at once", "deferred, renamed", "event", "before the savepoint", "alone"]
    engine.dispose()


def test_a_deferred_write_that_fails_fails_the_commit_and_keeps_nothing(database_url: str) -> None:
    from retailblocks.storage import Prepared

    engine = create_engine(database_url)
    metadata.create_all(engine)
    insert = Prepared.insert(outbox, "type", "source", "payload", "occurred_at")
    uow = UnitOfWork(engine)
    insert.execute(uow.connection, type="a.first", source="core", payload={}, occurred_at=MOMENT)
    uow.defer(insert, {"type": None, "source": "core", "payload": {}, "occurred_at": MOMENT})
    record(uow, "an event")
    with pytest.raises(sa.exc.IntegrityError):
        uow.commit()
    assert recorded(engine) == []
    engine.dispose()


def test_on_postgresql_deferred_writes_events_and_commit_leave_in_one_exchange(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's pipeline")
    from retailblocks.storage import Prepared, libpq

    engine = create_engine(database_url)
    metadata.create_all(engine)
    insert = Prepared.insert(outbox, "type", "source", "payload", "occurred_at")
    sent: list[list[bytes]] = []
    exchange = libpq.Lane.exchange

    def counting(lane: libpq.Lane, statements: Any) -> Any:
        sent.append([sql.split(b" ")[0] for sql, _parameters in statements])
        return exchange(lane, statements)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(libpq.Lane, "exchange", counting)
        with UnitOfWork(engine) as uow:
            insert.execute(uow.connection, type="a.first", source="core", payload={}, occurred_at=MOMENT)
            uow.defer(insert, {"type": "a.deferred", "source": "core", "payload": {}, "occurred_at": MOMENT})
            record(uow, "an event")
    assert sent == [[b"INSERT"], [b"INSERT", b"INSERT", b"COMMIT"]]
    assert [kind for kind, _ in recorded(engine)] == ["a.first", "a.deferred", "an event"]
    engine.dispose()
