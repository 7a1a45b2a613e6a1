"""The units of work of one flow run share one SQLite connection, one unit at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from retailblocks.storage import UnitOfWork, create_engine
from retailblocks.storage.prepared import Prepared
from retailblocks.storage.tables import metadata, outbox
from retailblocks.storage.unit_of_work import IdleConnection, idle_units, keeping_connection


def driver_connections(engine: sa.Engine) -> list[int]:
    """The driver connection of every transaction begun from now on, in order (by its BEGIN statement:
    a unit of work on a kept connection begins on the driver, without SQLAlchemy's begin event)."""
    seen: list[int] = []

    def on_statement(connection: sa.Connection, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith("BEGIN"):
            seen.append(id(connection.connection.dbapi_connection))

    sa.event.listen(engine, "before_cursor_execute", on_statement)
    return seen


def write(uow: UnitOfWork, event_type: str) -> None:
    uow.connection.execute(
        outbox.insert().values(type=event_type, payload={}, source="core", occurred_at=datetime(2026, 1, 1, tzinfo=UTC))
    )


def stored(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        types = list(connection.execute(sa.select(outbox.c.type).order_by(outbox.c.id)).scalars())
        connection.rollback()
    return types


def test_units_in_turn_share_one_connection_and_a_nested_unit_takes_its_own(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/keeper.db")
    metadata.create_all(engine)
    seen = driver_connections(engine)
    with keeping_connection(engine) as keeper:
        assert keeper is not None
        for n in range(3):
            with UnitOfWork(engine) as uow:
                write(uow, f"turn.{n}")
        with UnitOfWork(engine) as outer:
            write(outer, "outer")
            # Lent to the outer unit: a unit begun meanwhile must not share its transaction. (Read-only,
            # so SQLite lets it run beside the writer.)
            with UnitOfWork(engine, read_only=True) as inner:
                inner.connection.execute(sa.select(1))
    assert seen[0] == seen[1] == seen[2] == seen[3] != seen[4]
    assert stored(engine) == ["turn.0", "turn.1", "turn.2", "outer"]
    engine.dispose()


def test_a_unit_that_fails_leaves_the_kept_connection_usable(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/keeper.db")
    metadata.create_all(engine)
    with keeping_connection(engine):
        failing = UnitOfWork(engine)
        write(failing, "rolled.back")
        with pytest.raises(sa.exc.IntegrityError):
            failing.connection.execute(outbox.insert().values(type=None))  # NOT NULL: the unit fails
        failing.rollback()
        with UnitOfWork(engine) as uow:
            write(uow, "after")
        broken = UnitOfWork(engine)
        write(broken, "never.ended")
        broken._close()  # ended without commit or rollback: the keeper rolls it back
        with UnitOfWork(engine) as uow:
            write(uow, "last")
    assert stored(engine) == ["after", "last"]
    engine.dispose()


def test_postgresql_units_keep_taking_connections_from_the_pool(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    with keeping_connection(engine) as keeper:
        if engine.dialect.name == "sqlite":
            assert keeper is not None
            return
        assert keeper is None
        with UnitOfWork(engine) as uow:
            write(uow, "pooled")
    assert "pooled" in stored(engine)
    engine.dispose()


def test_postgresql_units_in_turn_reuse_a_waiting_connection_and_dispose_closes_it(database_url: str) -> None:
    engine = create_engine(database_url)
    if engine.dialect.name != "postgresql":
        assert idle_units(engine) is None, "SQLite's units share a kept connection instead"
        return
    metadata.create_all(engine)
    seen: list[Any] = []

    def unit(event_type: str, *, fail: bool = False) -> None:
        with UnitOfWork(engine) as uow:
            write(uow, event_type)
            seen.append(uow.connection.connection.dbapi_connection)
            if fail:
                raise RuntimeError("the step failed")

    for n in range(3):
        unit(f"turn.{n}")
        # Committed, the connection waits outside the pool with no transaction open.
        assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        unit("rolled back", fail=True)
    unit("after")
    assert all(driver is seen[0] for driver in seen), "one connection, even after a unit rolled back"
    assert stored(engine) == ["turn.0", "turn.1", "turn.2", "after"]
    engine.dispose()
    assert seen[0].closed, "disposing of the engine closes the connection that waited"


def test_units_of_an_engine_made_from_another_go_back_to_the_pool(database_url: str) -> None:
    # A platform merchant's engine shares its server's pool with every other merchant's.
    engine = create_engine(database_url)
    assert idle_units(engine.execution_options(logging_token="merchant")) is None
    engine.dispose()


def test_a_place_keeps_at_most_its_capacity(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/keeper.db")
    idle = IdleConnection(2)
    connections = [engine.connect() for _ in range(3)]
    assert idle.offer(connections[0]) and idle.offer(connections[1])
    assert not idle.offer(connections[2])
    assert idle.take() is connections[1], "the last one offered goes out first"
    idle.close()
    assert connections[0].closed and idle.take() is None
    for connection in connections:
        connection.close()
    engine.dispose()


def test_a_run_leaves_its_connection_for_the_next_run(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/keeper.db")
    metadata.create_all(engine)
    idle = IdleConnection()
    seen = driver_connections(engine)
    for n in range(3):
        with keeping_connection(engine, idle), UnitOfWork(engine) as uow:
            write(uow, f"run.{n}")
        # Between runs the connection waits outside the pool, with no transaction open.
        assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert seen[0] == seen[1] == seen[2]
    idle.close()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert stored(engine) == ["run.0", "run.1", "run.2"]
    engine.dispose()


def test_only_one_fit_connection_waits(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/keeper.db")
    metadata.create_all(engine)
    idle = IdleConnection()
    first, second, busy = engine.connect(), engine.connect(), engine.connect()
    busy.execute(sa.select(1))  # a transaction is open: not fit for the next run
    assert not idle.offer(busy)
    assert idle.offer(first)
    assert not idle.offer(second)  # the place is taken: the caller gives it back to the pool
    assert idle.take() is first
    assert idle.take() is None
    second.close()
    assert not idle.offer(second)  # closed
    first.close()
    busy.close()
    engine.dispose()


_EVENT = Prepared(
    outbox.insert()
    .inline()
    .values(type=sa.bindparam("type"), payload=sa.bindparam("payload"), source="core", occurred_at=sa.bindparam("at"))
)


def test_kept_units_hold_the_write_lock_and_end_their_transaction_on_every_path(tmp_path: object) -> None:
    import sqlite3

    path = f"{tmp_path}/keeper.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with keeping_connection(engine):
        with UnitOfWork(engine) as uow:  # prepared statements only
            _EVENT.execute(uow.connection, type="direct", payload={}, at=moment)
            assert uow.connection.in_transaction()  # one transaction path: SQLAlchemy's, begun IMMEDIATE
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # BEGIN IMMEDIATE: the write lock is held up front
        rolled = UnitOfWork(engine)
        _EVENT.execute(rolled.connection, type="rolled.back", payload={}, at=moment)
        rolled.rollback()
        with UnitOfWork(engine) as mixed:  # prepared and SQLAlchemy statements in one transaction
            _EVENT.execute(mixed.connection, type="mixed.prepared", payload={}, at=moment)
            write(mixed, "mixed.core")
            assert mixed.connection.in_transaction()
        left = UnitOfWork(engine)
        _EVENT.execute(left.connection, type="left.open", payload={}, at=moment)
        left._close()  # ended without commit or rollback: the keeper rolls the transaction back
        with UnitOfWork(engine) as after:
            _EVENT.execute(after.connection, type="after", payload={}, at=moment)
    other.execute("BEGIN IMMEDIATE")  # nothing holds the lock any more
    other.execute("ROLLBACK")
    other.close()
    assert stored(engine) == ["direct", "mixed.prepared", "mixed.core", "after"]
    engine.dispose()


def test_a_place_gives_connections_back_to_a_pool_lending_its_overflow(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    if engine.dialect.name != "postgresql":
        return
    place = idle_units(engine)
    assert place is not None
    held = [engine.connect() for _ in range(3)]  # one beyond the pool's size: threads may wait for it
    assert not place.offer(held[0]), "beyond the pool's size the connection goes back to the pool"
    held[0].close()
    held[1].close()
    assert place.offer(held[2]), "within it, it waits here"
    assert place.take() is held[2]
    held[2].close()
    engine.dispose()


def test_a_forked_child_that_disposes_of_the_engine_forgets_the_parents_waiting_connection(
    database_url: str,
) -> None:
    import os

    engine = create_engine(database_url)
    if engine.dialect.name != "postgresql":
        return
    metadata.create_all(engine)
    with UnitOfWork(engine) as uow:
        write(uow, "parent.before")
    place = idle_units(engine)
    assert place is not None and engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's verdict is its exit status
        engine.dispose(close=False)
        os._exit(0 if place.take() is None else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child still held the parent's connection"
    with UnitOfWork(engine) as uow:  # the parent's connection still works: the child did not close it
        write(uow, "parent.after")
    assert stored(engine) == ["parent.before", "parent.after"]
    engine.dispose()
