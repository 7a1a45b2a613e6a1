"""Statements built once and sent straight to the driver: the hot path of every flow.

Building a SQLAlchemy statement per call (``table.update().where(...).values(...)``) costs about 100 µs
before the database sees anything — twenty times what SQLite needs to run it. A :class:`Prepared`
statement is built once at import time with named parameters, compiled once per dialect, and executed on
the unit of work's own DB-API connection with the same parameter conversions SQLAlchemy would apply (JSON
encoding, SQLite's datetime strings), so it stays inside the step's transaction.

Use it for the INSERT, UPDATE and DELETE statements a checkout issues many times; reads that need
SQLAlchemy's result types stay ordinary statements (built once too). Three things to know: give an INSERT
its values as ``.values(col=sa.bindparam("col"))`` (a bare ``insert()`` expects every column) and call
``.inline()`` on an INSERT into a table with an autoincrement id (or PostgreSQL adds ``RETURNING id``); a
bindparam in an UPDATE's WHERE may not share a column's name; errors are raised as SQLAlchemy's
(``sa.exc.IntegrityError``…), as for any other statement::

    RELEASE = Prepared(
        levels.update()
        .where(levels.c.sku == sa.bindparam("sku"), levels.c.location == sa.bindparam("location"))
        .values(reserved=levels.c.reserved - sa.bindparam("quantity"))
    )
    changed = RELEASE.execute(ctx.db, sku="A", location="dc", quantity=2)   # the row count
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler


@attrs.frozen
class _Compiled:
    sql: str
    positional: bool
    names: tuple[str, ...]
    processors: Mapping[str, Callable[[Any], Any]]


class Prepared:
    """An INSERT, UPDATE or DELETE compiled once per dialect and executed on the raw driver cursor."""

    def __init__(self, statement: sa.ClauseElement):
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is not None:
            return found
        with self._lock:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            processors: dict[str, Callable[[Any], Any]] = {}
            for name, bind in compiled.binds.items():
                processor: Callable[[Any], Any] | None = bind.type.bind_processor(dialect)
                if processor is None and isinstance(bind.type, sa.JSON):
                    # Some drivers adapt JSON in SQLAlchemy's execution context, which this path skips:
                    # send the document as text and let the database read it as JSON.
                    processor = getattr(dialect, "_json_serializer", None) or json.dumps
                if processor is not None:
                    processors[name] = processor
            positional = bool(compiled.positional)
            names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
            found = _Compiled(str(compiled), positional, names, processors)
            self._compiled[dialect.name] = found
        return found

    def _parameters(self, compiled: _Compiled, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        processors = compiled.processors
        converted = {
            name: (processors[name](value) if name in processors and value is not None else value)
            for name, value in values.items()
        }
        if compiled.positional:
            return [converted[name] for name in compiled.names]
        return converted

    def execute(self, connection: sa.Connection, values: Mapping[str, Any] | None = None, **more: Any) -> int:
        """Run the statement in ``connection``'s transaction; returns the number of rows it changed."""
        compiled = self._compile(connection.dialect)
        parameters = self._parameters(compiled, {**(values or {}), **more})
        cursor = connection.connection.cursor()
        try:
            self._announce(connection, cursor, compiled.sql, parameters, many=False)
            try:
                cursor.execute(compiled.sql, parameters)
            except connection.dialect.loaded_dbapi.Error as error:
                raise _wrapped(connection, compiled.sql, parameters, error) from error
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def execute_many(self, connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row, in one driver call."""
        if not rows:
            return
        compiled = self._compile(connection.dialect)
        parameters = [self._parameters(compiled, row) for row in rows]
        cursor = connection.connection.cursor()
        try:
            self._announce(connection, cursor, compiled.sql, parameters, many=True)
            try:
                cursor.executemany(compiled.sql, parameters)  # type: ignore[arg-type]
            except connection.dialect.loaded_dbapi.Error as error:
                raise _wrapped(connection, compiled.sql, parameters, error) from error
        finally:
            cursor.close()

    @staticmethod
    def _announce(connection: sa.Connection, cursor: Any, sql: str, parameters: Any, *, many: bool) -> None:
        """Tell ``before_cursor_execute`` listeners (tracers, benchmarks, query loggers) about the statement,
        as SQLAlchemy would: skipping SQLAlchemy's execution path must not make statements invisible."""
        listeners = connection.dispatch.before_cursor_execute
        if listeners:
            listeners(connection, cursor, sql, parameters, None, many)


def _wrapped(connection: sa.Connection, sql: str, parameters: Any, error: Exception) -> sa.exc.StatementError:
    """The driver's error as SQLAlchemy would raise it (``sa.exc.IntegrityError`` for a unique violation…),
    so callers catch one family of errors whichever path a statement took."""
    return sa.exc.DBAPIError.instance(
        sql, parameters, error, connection.dialect.loaded_dbapi.Error, dialect=connection.dialect
    )
