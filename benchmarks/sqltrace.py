"""Capture the SQL a stack sends to its DB-API driver, replay it through the raw driver, compare databases.

The benchmark's floor is "the same SQL statements issued directly through the database driver". This module
records, through SQLAlchemy engine events, every statement exactly as it is handed to the DB-API cursor
(text and already-converted parameters) together with the transaction boundaries, and replays that sequence
with nothing but ``sqlite3`` or ``psycopg`` in a tight loop.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Json, Jsonb
from sqlalchemy import event

from retailblocks.storage.engine import SQLITE_PRAGMAS  # the replay sets what the engine sets

# Operation codes; small ints so the replay loop dispatches with cheap comparisons.
SQL = 0
MANY = 1
BEGIN = 2
COMMIT = 3
ROLLBACK = 4


@dataclass(frozen=True, slots=True)
class FrozenJson:
    """A psycopg ``Json``/``Jsonb`` parameter frozen as text when it was sent.

    The flows pass live objects (a saga's state holds the very list later steps append to), so keeping the
    wrapper would replay what the object looks like at the end of the run, not what was sent.
    """

    text: str
    binary: bool


@dataclass(slots=True)
class Op:
    """One captured driver call: a statement (``SQL``/``MANY``) or a transaction boundary."""

    code: int
    connection: int
    statement: str = ""
    parameters: Any = None


@dataclass
class Trace:
    """What one run sent to the database, plus where the measured part of it starts."""

    dialect: str
    ops: list[Op] = field(default_factory=list)
    #: Index of the first op of the measured (post-warm-up) part.
    start: int = 0
    #: Seconds spent inside the capture listeners themselves (subtracted from the checkout timing).
    overhead: float = 0.0
    #: Whether two connections ever had a transaction open at the same time (then the replay uses one raw
    #: connection per captured connection, to keep the interleaving).
    overlapping: bool = False

    def measured(self) -> list[Op]:
        return self.ops[self.start :]

    def counts(self) -> dict[str, int]:
        """Statements and transaction boundaries in the measured part."""
        ops = self.measured()
        control = sum(1 for op in ops if op.code == SQL and _is_transaction_control(op.statement))
        # A transaction ends once, through SQLAlchemy (a COMMIT/ROLLBACK event) or as a statement sent on
        # the driver (a unit of work on a kept SQLite connection): counted by their ends.
        commits = sum(1 for op in ops if op.code == COMMIT or (op.code == SQL and _ends(op.statement) == COMMIT))
        rollbacks = sum(1 for op in ops if op.code == ROLLBACK or (op.code == SQL and _ends(op.statement) == ROLLBACK))
        return {
            "statements": sum(1 for op in ops if op.code in (SQL, MANY)) - control,
            "transaction_control_statements": control,
            "transactions": commits + rollbacks,
            "commits": commits,
            "rollbacks": rollbacks,
            "connections": len({op.connection for op in ops}),
        }


def _is_transaction_control(statement: str) -> bool:
    head = statement.lstrip()[:9].upper()
    return head.startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"))


def _ends(statement: str) -> int | None:
    """COMMIT or ROLLBACK for a statement that ends the whole transaction (not ROLLBACK TO a savepoint)."""
    words = statement.strip().upper().split()
    if words in (["COMMIT"], ["END"], ["COMMIT", "TRANSACTION"]):
        return COMMIT
    if words in (["ROLLBACK"], ["ROLLBACK", "TRANSACTION"]):
        return ROLLBACK
    return None


class StatementRecorder:
    """Records every cursor execution and transaction boundary on one engine, in order.

    Every connection taken from the engine is covered, including the ones a block opens for itself on the
    same engine (the sandbox card gateway commits its "remote" calls on connections of its own).
    """

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.trace = Trace(dialect=engine.dialect.name)
        self._postgres = engine.dialect.name == "postgresql"
        self._keys: dict[int, int] = {}
        self._open: set[int] = set()
        self._listeners: list[tuple[str, Callable[..., None]]] = [
            ("before_cursor_execute", self._on_execute),
            ("begin", self._on_begin),
            ("commit", self._on_commit),
            ("rollback", self._on_rollback),
        ]

    def __enter__(self) -> StatementRecorder:
        for name, listener in self._listeners:
            event.listen(self.engine, name, listener)
        return self

    def __exit__(self, *_exc: object) -> None:
        for name, listener in self._listeners:
            event.remove(self.engine, name, listener)

    def mark_start(self) -> None:
        """Everything recorded from now on is the measured part (what came before was warm-up)."""
        self.trace.start = len(self.trace.ops)
        self.trace.overhead = 0.0

    # -- listeners ------------------------------------------------------------------------------

    def _key(self, connection: sa.Connection) -> int:
        raw = id(connection.connection.dbapi_connection)
        key = self._keys.get(raw)
        if key is None:
            key = self._keys[raw] = len(self._keys)
        return key

    def _on_execute(
        self,
        connection: sa.Connection,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        started = time.perf_counter()
        if self._postgres:
            parameters = _freeze_many(parameters) if executemany else _freeze(parameters)
        # SQLite parameters are tuples of str/int/float/bytes/None (SQLAlchemy has already rendered
        # datetimes and JSON to text), so they cannot change after the call and are kept as they are.
        key = self._key(connection)
        if statement[:5].upper() == "BEGIN":  # begun on the driver, or by the engine's begin listener
            self._opened(key)
        elif _ends(statement) is not None:
            self._open.discard(key)
        self.trace.ops.append(Op(MANY if executemany else SQL, key, statement, parameters))
        self.trace.overhead += time.perf_counter() - started

    def _opened(self, key: int) -> None:
        if self._open - {key}:
            self.trace.overlapping = True
        self._open.add(key)

    def _on_begin(self, connection: sa.Connection) -> None:
        started = time.perf_counter()
        key = self._key(connection)
        self._opened(key)
        self.trace.ops.append(Op(BEGIN, key))
        self.trace.overhead += time.perf_counter() - started

    def _on_commit(self, connection: sa.Connection) -> None:
        self._end(connection, COMMIT)

    def _on_rollback(self, connection: sa.Connection) -> None:
        self._end(connection, ROLLBACK)

    def _end(self, connection: sa.Connection, code: int) -> None:
        started = time.perf_counter()
        key = self._key(connection)
        self._open.discard(key)
        self.trace.ops.append(Op(code, key))
        self.trace.overhead += time.perf_counter() - started


def _freeze(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        return {k: _freeze_value(v) for k, v in parameters.items()}
    if isinstance(parameters, list | tuple):
        return tuple(_freeze_value(v) for v in parameters)
    return parameters


def _freeze_many(parameters: Iterable[Any]) -> list[Any]:
    return [_freeze(p) for p in parameters]


def _freeze_value(value: Any) -> Any:
    if isinstance(value, Json | Jsonb):
        dumps = value.dumps or json.dumps
        text = dumps(value.obj)
        return FrozenJson(text.decode() if isinstance(text, bytes) else text, isinstance(value, Jsonb))
    return value


def _thaw(parameters: Any) -> Any:
    """Rebuild what the driver was handed: fresh ``Json`` wrappers, so the replay pays the same dump cost."""
    if isinstance(parameters, dict):
        return {k: _thaw_value(v) for k, v in parameters.items()}
    if isinstance(parameters, tuple):
        return tuple(_thaw_value(v) for v in parameters)
    if isinstance(parameters, list):
        return [_thaw(p) for p in parameters]
    return parameters


def _thaw_value(value: Any) -> Any:
    if isinstance(value, FrozenJson):
        return (Jsonb if value.binary else Json)(json.loads(value.text))
    return value


# -- replay -----------------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    seconds: float
    #: CPU seconds of this process during the timed replay (robust to other load on a shared machine).
    cpu_seconds: float
    operations: int
    connections: int
    errors: list[str]


def replay_sqlite(trace: Trace, path: str) -> ReplayResult:
    """Replay ``trace`` on the SQLite file ``path`` with ``sqlite3`` in autocommit mode (``isolation_level=None``).

    The captured stream already contains SQLite's explicit ``BEGIN IMMEDIATE``/``BEGIN DEFERRED``; COMMIT
    and ROLLBACK are the driver's ``commit()``/``rollback()`` as SQLAlchemy called them.
    """

    def connect() -> Any:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        for pragma in SQLITE_PRAGMAS:
            connection.execute(pragma)
        return connection

    return _replay(trace, connect)


def replay_postgres(trace: Trace, conninfo: str) -> ReplayResult:
    """Replay ``trace`` with ``psycopg`` (autocommit off: a transaction opens at the first statement, as
    SQLAlchemy's did)."""

    def connect() -> Any:
        return psycopg.connect(conninfo, autocommit=False, connect_timeout=10)

    return _replay(trace, connect)


def _replay(trace: Trace, connect: Callable[[], Any]) -> ReplayResult:
    # One raw connection per captured connection (a single one unless transactions overlapped), opened and
    # bound before the clock starts, as are the rebuilt parameters.
    connections: dict[int, Any] = {}
    cursors: dict[int, Any] = {}

    def prepare(ops: Sequence[Op]) -> list[tuple[int, Any, str, Any]]:
        prepared: list[tuple[int, Any, str, Any]] = []
        for op in ops:
            # The pool may hand out a second connection (one checked out, not yet in a transaction, while
            # another works); unless transactions really overlapped, one raw connection replays it all.
            key = op.connection if trace.overlapping else 0
            if key not in connections:
                connections[key] = connect()
                cursors[key] = connections[key].cursor()
            if op.code in (SQL, MANY):
                prepared.append((op.code, cursors[key], op.statement, _thaw(op.parameters)))
            elif op.code in (COMMIT, ROLLBACK):
                prepared.append((op.code, connections[key], "", None))
            # BEGIN needs no call: SQLite's BEGIN is in the stream as SQL, psycopg begins implicitly.
        return prepared

    errors: list[str] = []
    try:
        _run(prepare(trace.ops[: trace.start]), errors)  # warm-up part: same state, untimed
        measured = prepare(trace.measured())
        with collector_paused():
            cpu_started = time.process_time()
            started = time.perf_counter()
            _run(measured, errors)
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
    finally:
        for connection in connections.values():
            connection.close()
    return ReplayResult(seconds, cpu_seconds, len(trace.measured()), len(connections), errors)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a pass is timed (as ``timeit`` does), then one collection.

    The recorder keeps every statement it sees, tens of thousands of tracked objects by the end of a
    pass; the collector's full passes over them would land in whatever code runs when they trigger
    (mostly the checkout being timed) and measure the recorder, not the stack. Both sides are timed
    under the same rule.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()


def _run(ops: list[tuple[int, Any, str, Any]], errors: list[str]) -> None:
    """The timed loop: execute, fetch what a statement returns, end transactions where the stack did."""
    for code, target, statement, parameters in ops:
        try:
            if code == SQL:
                target.execute(statement, parameters)
                # Rows are read as SQLAlchemy read them (sqlite3 only steps the statement while fetching).
                if target.description is not None:
                    target.fetchall()
            elif code == MANY:
                target.executemany(statement, parameters)
            elif code == COMMIT:
                target.commit()
            else:
                target.rollback()
        except (sqlite3.Error, psycopg.Error) as error:
            # Kept, not raised: the stack itself never saw an error in these runs, so any here means the
            # replay is not faithful, which the database comparison then reports.
            errors.append(f"{type(error).__name__}: {error} in {statement[:80]!r}")


# -- comparing databases ----------------------------------------------------------------------------


@dataclass
class Comparison:
    tables: int
    rows: int
    differing: list[str]

    @property
    def identical(self) -> bool:
        return not self.differing


#: Columns the database fills in differently on every run: the outbox's writer transaction id (PostgreSQL).
RUN_SPECIFIC_COLUMNS = {"outbox": {"tx"}}


def table_fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every table's content."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        tables = inspector.get_table_names()
        result: dict[str, tuple[int, str]] = {}
        with engine.connect() as connection:
            for table in sorted(tables):
                skipped = RUN_SPECIFIC_COLUMNS.get(table, set())
                columns = ", ".join(
                    f'"{column["name"]}"' for column in inspector.get_columns(table) if column["name"] not in skipped
                )
                rows = connection.exec_driver_sql(f'SELECT {columns} FROM "{table}"').fetchall()
                digest = hashlib.sha256("\n".join(sorted(repr(tuple(row)) for row in rows)).encode()).hexdigest()
                result[table] = (len(rows), digest)
            connection.rollback()
    finally:
        engine.dispose()
    return result


def compare_databases(left_url: str, right_url: str) -> Comparison:
    """Whether two databases hold exactly the same rows in every table."""
    left, right = table_fingerprints(left_url), table_fingerprints(right_url)
    differing = sorted(name for name in left.keys() | right.keys() if left.get(name) != right.get(name))
    return Comparison(len(left), sum(count for count, _ in left.values()), differing)


def stock_levels(url: str) -> dict[tuple[str, str], tuple[int, ...]]:
    """The inventory block's stock levels (on hand, reserved, allocated), for the report's spot check."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT sku, location, on_hand, reserved, allocated FROM sql_inventory_levels"
            ).fetchall()
            connection.rollback()
    finally:
        engine.dispose()
    return {(row[0], row[1]): tuple(row[2:]) for row in rows}
