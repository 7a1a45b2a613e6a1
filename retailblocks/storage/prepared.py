"""Statements built once and sent straight to the driver: the hot path of every flow.

Building a SQLAlchemy statement per call (``table.update().where(...).values(...)``) costs about 100 µs
before the database sees anything — twenty times what SQLite needs to run it. A :class:`Prepared`
statement is built once at import time with named parameters, compiled once per dialect, and executed on
the unit of work's own DB-API connection with the same parameter conversions SQLAlchemy would apply (JSON
encoding, SQLite's datetime strings), so it stays inside the step's transaction.

Use it for the INSERT, UPDATE and DELETE statements a checkout issues many times, and
:class:`PreparedQuery` for the SELECTs (and INSERT/UPDATE … RETURNING) it issues many times: the same path,
with each result column converted as SQLAlchemy would (its type's result processor: SQLite's datetime
strings and booleans, JSON documents…), rows returned as named tuples. Three things to know: give an INSERT
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

    LEVEL = PreparedQuery(
        sa.select(levels.c.on_hand, levels.c.reserved)
        .where(levels.c.sku == sa.bindparam("sku"), levels.c.location == sa.bindparam("location"))
        .with_for_update()
    )
    row = LEVEL.first(ctx.db, sku="A", location="dc")   # None, or a named tuple: row.on_hand, row[1]

Expanding parameters (``column.in_(sa.bindparam("skus", expanding=True))``, also over ``sa.tuple_``)
take a list; the statement is expanded once per list length and kept, as SQLAlchemy's own cache would. A
query's columns' keys must be valid Python identifiers (give computed columns a ``.label()``). Mappings of
values are passed positionally (``.execute(connection, row)``), so a parameter may be called ``values``.
Statements run on one driver cursor kept per driver connection, and begin the connection's transaction
when none is open, as SQLAlchemy's own execution would.
"""

from __future__ import annotations

import json
import keyword
import operator
import threading
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler


@attrs.frozen
class _Compiled:
    sql: str
    positional: bool
    names: tuple[str, ...]
    processors: Mapping[str, Callable[[Any], Any]]
    defaults: Mapping[str, Any] = attrs.field(factory=dict)
    #: The expanding (IN) parameters, whose lists become one placeholder per element at execution.
    expanding: tuple[str, ...] = ()
    #: For a statement with expanding parameters: the compiled form, expanded per list length.
    source: SQLCompiler | None = attrs.field(default=None, eq=False)
    #: For an expanded statement: each expanding parameter's placeholder names, in element order.
    expansion: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: For a positional statement: a call's values as the driver's parameter list, in placeholder order,
    #: defaults filled in and processors applied (derived, so ``attrs.evolve`` makes it again).
    positional_values: Callable[[Mapping[str, Any]], list[Any]] | None = attrs.field(init=False, eq=False)

    @positional_values.default
    def _positional_values(self) -> Callable[[Mapping[str, Any]], list[Any]] | None:
        return _list_maker(self.names, self.processors, self.defaults) if self.positional else None


def _list_maker(
    names: Sequence[str], processors: Mapping[str, Callable[[Any], Any]], defaults: Mapping[str, Any]
) -> Callable[[Mapping[str, Any]], list[Any]]:
    """A function written for one statement that builds its parameter list in one expression.

    Every statement of every flow converts its values here; a loop over (name, processor) pairs cost
    several times the one list display this writes, e.g. for ``(id, at)`` with a processor for ``at``:
    ``[values['id'], (None if (v1 := values['at']) is None else p1(v1))]``. Names are written as string
    literals (``repr``); processors and defaults are bound by name in the function's namespace.
    """
    namespace: dict[str, Any] = {}
    items = []
    for index, name in enumerate(names):
        read = f"values[{name!r}]"
        if name in defaults:
            namespace[f"d{index}"] = defaults[name]
            read = f"values.get({name!r}, d{index})"
        if name in processors:
            namespace[f"p{index}"] = processors[name]
            read = f"(None if (v{index} := {read}) is None else p{index}(v{index}))"
        items.append(read)
    source = f"def make(values):\n    return [{', '.join(items)}]\n"
    exec(compile(source, "<prepared statement parameters>", "exec"), namespace)
    return namespace["make"]  # type: ignore[no-any-return]


# How many expanded forms (distinct list lengths) one statement keeps per dialect.
_EXPANSIONS_KEPT = 64


class Prepared:
    """An INSERT, UPDATE or DELETE compiled once per dialect and executed on the raw driver cursor."""

    def __init__(self, statement: sa.ClauseElement):
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}
        self._expanded: dict[tuple[str, tuple[int, ...]], _Compiled] = {}
        self._lock = threading.Lock()

    @classmethod
    def insert(cls, table: sa.Table, *columns: str) -> Prepared:
        """An INSERT of ``columns`` into ``table``, each taking the parameter of the same name.

        Built the way prepared inserts must be: only the columns given (a bare ``insert()`` would expect
        every column) and inline, so PostgreSQL adds no ``RETURNING`` for an autoincrement id.
        """
        return cls(table.insert().values({name: sa.bindparam(name) for name in columns}).inline())

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is not None:
            return found
        with self._lock:
            found = self._compiled.get(dialect.name)
            if found is not None:
                return found
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            if compiled.literal_execute_params:
                raise ValueError("a prepared statement cannot use literal-execute parameters")
            expanding = tuple(compiled.bind_names[bind] for bind in compiled.post_compile_params)
            processors: dict[str, Callable[[Any], Any]] = {}
            for name, bind in compiled.binds.items():
                # The dialect's own implementation of the type: on SQLite a generic DateTime becomes a
                # DATETIME whose processor writes SQLAlchemy's text format; the generic type has none.
                implementation = bind.type.dialect_impl(dialect)
                processor: Callable[[Any], Any] | None = implementation.bind_processor(dialect)
                if processor is not None and _default_sqlite_datetime(implementation):
                    processor = _sqlite_datetime_writer(processor)
                if processor is None and isinstance(bind.type, sa.JSON):
                    # Some drivers adapt JSON in SQLAlchemy's execution context, which this path skips:
                    # send the document as text and let the database read it as JSON.
                    processor = getattr(dialect, "_json_serializer", None) or json.dumps
                if processor is not None:
                    processors[name] = processor
            positional = bool(compiled.positional)
            names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
            # Values bound when the statement was built (a LIMIT's, a literal compared with a column):
            # sent unless the call gives its own.
            defaults = {
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required and bind.callable is None and name.isidentifier()
            }
            found = _Compiled(
                str(compiled),
                positional,
                names,
                processors,
                defaults,
                expanding,
                compiled if expanding else None,
            )
            found = self._compiled_for(compiled, dialect, found)
            self._compiled[dialect.name] = found
        return found

    def _compiled_for(self, compiled: SQLCompiler, dialect: Dialect, found: _Compiled) -> _Compiled:
        """A subclass's chance to learn more from the compiled statement (under the lock)."""
        return found

    def _statement(self, dialect: Dialect, values: Mapping[str, Any]) -> tuple[_Compiled, Mapping[str, Any]]:
        """The statement to send for these values, and the values by placeholder name: a statement with
        expanding parameters gets one placeholder per list element (tuples: one per element's member)."""
        compiled = self._compile(dialect)
        if not compiled.expanding:
            return compiled, values
        values = {**compiled.defaults, **values}
        try:
            lists = {name: list(values[name]) for name in compiled.expanding}
        except KeyError as missing:
            raise ValueError(f"no value for the expanding parameter {missing}") from None
        key = (dialect.name, tuple(len(items) for items in lists.values()))
        expanded = self._expanded.get(key)
        if expanded is None:
            expanded = self._expand(compiled, values, lists)
            with self._lock:
                if len(self._expanded) >= _EXPANSIONS_KEPT:
                    self._expanded.clear()
                self._expanded[key] = expanded
        flat = {name: value for name, value in values.items() if name not in lists}
        for name, items in lists.items():
            placeholders = expanded.expansion[name]
            if items and isinstance(items[0], tuple | list):  # tuples: one placeholder per member
                items = [member for item in items for member in item]
            flat.update(zip(placeholders, items, strict=True))
        return expanded, flat

    @staticmethod
    def _expand(compiled: _Compiled, values: Mapping[str, Any], lists: Mapping[str, list[Any]]) -> _Compiled:
        assert compiled.source is not None
        state = compiled.source.construct_expanded_state({**compiled.defaults, **values, **lists})
        expansion = {name: tuple(state.parameter_expansion.get(name, ())) for name in lists}
        processors = {name: processor for name, processor in compiled.processors.items() if name not in lists}
        for placeholders in expansion.values():
            for placeholder in placeholders:
                processor = state.processors.get(placeholder)
                if processor is not None:
                    processors[placeholder] = processor
        names = tuple(state.positiontup or ()) if compiled.positional else tuple(state.parameters)
        defaults = {name: value for name, value in compiled.defaults.items() if name not in lists}
        return attrs.evolve(
            compiled,
            sql=state.statement,
            names=names,
            processors=processors,
            defaults=defaults,
            source=None,
            expansion=expansion,
        )

    @staticmethod
    def _parameters(compiled: _Compiled, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        make = compiled.positional_values
        if make is not None:
            return make(values)
        if compiled.defaults:
            values = {**compiled.defaults, **values}
        processors = compiled.processors
        return {
            name: (processors[name](value) if name in processors and value is not None else value)
            for name, value in values.items()
        }

    def execute(self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any) -> int:
        """Run the statement in ``connection``'s transaction; returns the number of rows it changed."""
        if more:  # (_merged, written out: most statements of every flow come through here)
            values = {**values, **more} if values else more
        elif values is None:
            values = more
        cursor, _compiled, _parameters = self._run(connection, values)
        return int(cursor.rowcount)

    def _run(self, connection: sa.Connection, values: Mapping[str, Any]) -> tuple[Any, _Compiled, Any]:
        """The path of every statement of every flow: the compiled form (expanded for these values if it
        must be), the driver's parameters, the announcement to listeners, the driver call. Returns the
        cursor, with what was sent."""
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name) or self._compile(dialect)
        if compiled.expanding:
            compiled, values = self._statement(dialect, values)
        parameters = self._parameters(compiled, values)
        cursor = driver_cursor(connection)
        listeners = connection.dispatch.before_cursor_execute  # (announce, written out: the hot path)
        if listeners:
            listeners(connection, cursor, compiled.sql, parameters, None, False)
        try:
            cursor.execute(compiled.sql, parameters)
        except dialect.loaded_dbapi.Error as error:
            raise _wrapped(connection, compiled.sql, parameters, error) from error
        return cursor, compiled, parameters

    def execute_many(self, connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row, in one driver call."""
        if not rows:
            return
        compiled = self._compile(connection.dialect)
        if compiled.expanding:
            raise ValueError("execute_many cannot take expanding (IN) parameters")
        parameters = [self._parameters(compiled, row) for row in rows]
        cursor = driver_cursor(connection)
        announce(connection, cursor, compiled.sql, parameters, many=True)
        try:
            cursor.executemany(compiled.sql, parameters)
        except connection.dialect.loaded_dbapi.Error as error:
            raise _wrapped(connection, compiled.sql, parameters, error) from error


def announce(connection: sa.Connection, cursor: Any, sql: str, parameters: Any, *, many: bool = False) -> None:
    """Tell ``before_cursor_execute`` listeners (tracers, benchmarks, query loggers) about a statement sent
    on the driver, as SQLAlchemy would: skipping its execution path must not make statements invisible."""
    listeners = connection.dispatch.before_cursor_execute
    if listeners:
        listeners(connection, cursor, sql, parameters, None, many)


def _default_sqlite_datetime(implementation: sa.types.TypeEngine[Any]) -> bool:
    return type(implementation) is sqlite.DATETIME and implementation._storage_format == sqlite.DATETIME._storage_format


# A checkout writes a few moments many times over, through some forty statements' parameters (the clock's
# now as updated_at, in the saga log and on every event; a lease; an expiry): the texts of UTC moments are
# kept, for all of them, a few dozen at a time. Equal UTC moments have equal texts; equal moments in other
# zones need not, so they are not kept.
_DATETIME_TEXTS: dict[datetime, str] = {}
_DATETIME_TEXTS_KEPT = 64


def _sqlite_datetime_writer(general: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite's DATETIME text, written by one C call for a plain datetime: the same text SQLAlchemy's
    processor builds field by field (the date and time without the zone, six digits of microseconds).
    Anything else (a date, a subclass, a wrong type) goes through SQLAlchemy's processor."""

    texts = _DATETIME_TEXTS

    def write(value: Any) -> Any:
        if type(value) is datetime:
            if value.tzinfo is UTC:
                text = texts.get(value)
                if text is None:
                    if len(texts) >= _DATETIME_TEXTS_KEPT:
                        texts.clear()
                    text = texts[value] = value.isoformat(" ", "microseconds")[:26]
                return text
            return value.isoformat(" ", "microseconds")[:26]
        return general(value)

    return write


_CURSOR = "retailblocks.prepared_cursor"


def driver_cursor(connection: sa.Connection) -> Any:
    """The driver cursor prepared statements use on this connection, made once per driver connection (in
    the connection's transaction, begun here if none is).

    A statement runs to its end (rows are fetched at once), so one cursor serves them all in turn; making
    one per statement cost as much as the statement on psycopg, whose cursors each set up their adapters.
    The cursor is kept with the driver connection it belongs to and made again for a new one.
    """
    pooled = connection.connection
    info = pooled.info
    if not info.get(DIRECT_TRANSACTION) and not connection.in_transaction():
        # SQLAlchemy begins a transaction on a connection's first statement ("autobegin"); so must a
        # statement that bypasses its execution path, or connection.commit() would have nothing to commit.
        # (Not when the driver's transaction was begun directly: see DIRECT_TRANSACTION.)
        connection.begin()
    kept = info.get(_CURSOR)  # kept_cursor's look-up, written out: every statement passes here
    if kept is not None and kept[0] is pooled.dbapi_connection:
        return kept[1]
    return kept_cursor(pooled)


#: Set in a pooled connection's info while a transaction begun with :func:`execute_control` is open: the
#: driver is in a transaction that SQLAlchemy did not begin. Statements on either path run in it; if one
#: goes through SQLAlchemy's execution path, its autobegin only catches up (the engine's begin listener
#: sends no BEGIN), and the transaction is then ended through SQLAlchemy.
DIRECT_TRANSACTION = "retailblocks.direct_transaction"


def execute_control(connection: sa.Connection, statement: str) -> None:
    """Send a transaction-control statement (``BEGIN IMMEDIATE``, ``COMMIT``…) on the kept cursor, seen
    by ``before_cursor_execute`` listeners like any statement; errors raised as SQLAlchemy's."""
    cursor = kept_cursor(connection.connection)
    announce(connection, cursor, statement, ())
    try:
        cursor.execute(statement)
    except connection.dialect.loaded_dbapi.Error as error:
        raise _wrapped(connection, statement, (), error) from error


def kept_cursor(pooled: PoolProxiedConnection) -> Any:
    """The driver cursor kept with this pooled connection's driver connection (see driver_cursor), for
    statements sent outside SQLAlchemy's execution path; made again when the driver connection is new."""
    driver_connection = pooled.dbapi_connection
    kept = pooled.info.get(_CURSOR)
    if kept is not None and kept[0] is driver_connection:
        return kept[1]
    assert driver_connection is not None
    cursor = driver_connection.cursor()
    pooled.info[_CURSOR] = (driver_connection, cursor)
    return cursor


def _merged(values: Mapping[str, Any] | None, more: dict[str, Any]) -> Mapping[str, Any]:
    if not more:
        return values if values is not None else more
    return {**values, **more} if values else more


def _wrapped(connection: sa.Connection, sql: str, parameters: Any, error: Exception) -> sa.exc.StatementError:
    """The driver's error as SQLAlchemy would raise it (``sa.exc.IntegrityError`` for a unique violation…),
    so callers catch one family of errors whichever path a statement took."""
    return sa.exc.DBAPIError.instance(
        sql, parameters, error, connection.dialect.loaded_dbapi.Error, dialect=connection.dialect
    )


@attrs.frozen
class _Columns:
    """What a query's rows hold: the SQLAlchemy type of each column, and the row class."""

    types: tuple[sa.types.TypeEngine[Any], ...]
    row: type[tuple[Any, ...]]


_TYPE_CODE = operator.itemgetter(1)  # a cursor.description entry's type code


@attrs.frozen
class _Processing:
    """The result processors of a query's columns for one driver's column types (``cursor.description``)."""

    coltypes: tuple[Any, ...]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]


class PreparedQuery(Prepared):
    """A SELECT (or a statement with RETURNING) compiled once per dialect and executed on the raw driver
    cursor, its rows converted by each column's result processor as SQLAlchemy would convert them.

    Rows are named tuples: attribute access by column key (``row.status``), or by position.
    """

    def __init__(self, statement: sa.ClauseElement):
        super().__init__(statement)
        self._columns: dict[str, _Columns] = {}
        self._processing: dict[str, _Processing] = {}

    def _compiled_for(self, compiled: SQLCompiler, dialect: Dialect, found: _Compiled) -> _Compiled:
        entries = compiled._result_columns
        if not entries:
            raise ValueError("a prepared query must return rows")
        keys = tuple(entry.keyname for entry in entries)
        for key in keys:
            if not key.isidentifier() or keyword.iskeyword(key) or key.startswith("_"):
                raise ValueError(f"column key {key!r} is not a valid attribute name: give the column a .label()")
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate column keys {keys!r}: label the columns apart")
        row = namedtuple("Row", keys)  # type: ignore[misc]
        self._columns[dialect.name] = _Columns(tuple(entry.type for entry in entries), row)
        return found

    def _processing_for(self, dialect: Dialect, description: Sequence[Any]) -> _Processing:
        coltypes = tuple(map(_TYPE_CODE, description))
        found = self._processing.get(dialect.name)
        if found is not None and found.coltypes == coltypes:
            return found
        types = self._columns[dialect.name].types
        if len(types) != len(coltypes):
            raise RuntimeError(f"expected {len(types)} columns, the driver returned {len(coltypes)}")
        processors = []
        for index, (type_, coltype) in enumerate(zip(types, coltypes, strict=True)):
            processor = type_.dialect_impl(dialect).result_processor(dialect, coltype)
            if processor is not None:
                processors.append((index, processor))
        found = _Processing(coltypes, tuple(processors))
        self._processing[dialect.name] = found
        return found

    def all(self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any) -> list[Any]:
        """Every row, in ``connection``'s transaction."""
        return self._fetch(connection, _merged(values, more), one=False)

    def first(self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any) -> Any:
        """The first row, or None."""
        rows = self._fetch(connection, _merged(values, more), one=True)
        return rows[0] if rows else None

    def scalar(self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any) -> Any:
        """The first column of the first row, or None."""
        rows = self._fetch(connection, _merged(values, more), one=True)
        return rows[0][0] if rows else None

    def scalars(self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in self._fetch(connection, _merged(values, more), one=False)]

    def first_mapping(
        self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any
    ) -> dict[str, Any] | None:
        """The first row as a dict by column key (what ``.mappings().first()`` gives), or None."""
        rows = self._fetch(connection, _merged(values, more), one=True)
        return rows[0]._asdict() if rows else None

    def mappings(
        self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any
    ) -> list[dict[str, Any]]:
        """Every row as a dict by column key (what ``.mappings().all()`` gives)."""
        return [row._asdict() for row in self._fetch(connection, _merged(values, more), one=False)]

    def execute(self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any) -> int:
        raise TypeError("a PreparedQuery returns rows: read them with .all(), .first(), .scalar(), .mappings()…")

    def _fetch(self, connection: sa.Connection, values: Mapping[str, Any], *, one: bool) -> list[Any]:
        dialect = connection.dialect
        cursor, compiled, parameters = self._run(connection, values)
        try:
            # Fetch everything (a statement with RETURNING must run to the end), keep what was asked.
            raw = cursor.fetchall()
        except dialect.loaded_dbapi.Error as error:
            raise _wrapped(connection, compiled.sql, parameters, error) from error
        if one:
            raw = raw[:1]
        make = self._columns[dialect.name].row._make  # type: ignore[attr-defined]
        if not raw:
            return []
        processors = self._processing_for(dialect, cursor.description).processors
        if not processors:
            return [make(values) for values in raw]
        rows = []
        for values in raw:
            converted = list(values)
            for index, processor in processors:
                value = converted[index]
                if value is not None:
                    converted[index] = processor(value)
            rows.append(make(converted))
        return rows
