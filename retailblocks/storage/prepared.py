"""Statements built once and sent straight to the driver: the hot path of every flow, public to blocks.

Building a SQLAlchemy statement per call (``table.update().where(...).values(...)``) costs about 100 µs
before the database sees anything — twenty times what SQLite needs to run it. A :class:`Prepared`
statement is built once at import time with named parameters, compiled once per dialect, and executed on
the connection's own DB-API connection with the same parameter conversions SQLAlchemy would apply (each
type's bind processor: JSON encoding, SQLite's datetime strings), inside the connection's transaction. On
PostgreSQL it goes through libpq itself, prepared once per session (see :mod:`.libpq`).

Use it for the INSERT, UPDATE and DELETE statements a flow issues many times, and :class:`PreparedQuery`
for the SELECTs (and INSERT/UPDATE … RETURNING) it issues many times: the same path, with each result
column converted as SQLAlchemy would (its type's result processor: SQLite's datetime strings and booleans,
JSON documents…), rows returned as named tuples. Three things to know: give an INSERT its values as
``.values(col=sa.bindparam("col"))`` (a bare ``insert()`` expects every column; :meth:`Prepared.insert`
does this) and call ``.inline()`` on an INSERT into a table with an autoincrement id (or PostgreSQL adds
``RETURNING id``); a bindparam in an UPDATE's WHERE may not share a column's name; errors are raised as
SQLAlchemy's (``sa.exc.IntegrityError``…), as for any other statement::

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
take a list; for each list length a statement with one parameter per element is built from public
constructs, compiled and kept. A query's columns' keys must be valid Python identifiers (give computed
columns a ``.label()``). Mappings of values are passed positionally (``.execute(connection, row)``), so a
parameter may be called ``values``.

A statement on a connection with no transaction begins one (``connection.begin()``), as SQLAlchemy's own
execution would, so a unit of work's transaction is always SQLAlchemy's, whichever path its statements
take. Statements are announced to ``before_cursor_execute`` listeners (tracers, the benchmark's recorder).
Everything here rests on SQLAlchemy's and the DB-API's documented interfaces: ``compile(dialect=)``,
``positiontup``, ``binds``, ``params``, types' bind and result processors, ``exported_columns``,
``Connection.info``, ``in_transaction()`` and ``begin()``.
"""

from __future__ import annotations

import keyword
import operator
import re
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import SQLCompiler

from retailblocks.storage.json_text import dumps
from retailblocks.storage.libpq import SESSION_KEEPS_STATEMENTS, Lane, Statement

__all__ = ["Prepared", "PreparedQuery"]

_Processor = Callable[[Any], Any]
_Parameters = list[Any] | dict[str, Any]


@attrs.frozen
class _Form:
    """One statement as the driver receives it: its text, and how a call's values become its parameters."""

    sql: str
    parameters: Callable[[Mapping[str, Any]], _Parameters]
    #: On psycopg, the same statement as libpq takes it (``$1``… placeholders, see :mod:`.libpq`), and the
    #: maker of its parameter list; None elsewhere.
    wire_sql: bytes | None = None
    wire_parameters: Callable[[Mapping[str, Any]], list[Any]] | None = None


@attrs.frozen
class _Expanding:
    """An expanding (IN) parameter: the name a call gives its list by, and how many placeholders each
    element takes (0 for a plain value, the member count for a tuple)."""

    name: str
    width: int
    #: The list bound when the statement was built (``column.in_(["a", "b"])``), used unless a call gives one.
    default: Sequence[Any] | None


def _list_maker(
    names: Sequence[str], processors: Mapping[str, _Processor], defaults: Mapping[str, Any]
) -> Callable[[Mapping[str, Any]], list[Any]]:
    """A function that builds a positional statement's parameter list from a call's values by name:
    defaults filled in, processors applied to values that are not None. A name without a value or a
    default raises KeyError."""
    names = tuple(names)
    converted = tuple((index, processors[name]) for index, name in enumerate(names) if name in processors)
    if not names:
        return lambda values: []
    if len(names) == 1:
        only = names[0]
        read: Callable[[Mapping[str, Any]], Sequence[Any]] = lambda values: (values[only],)  # noqa: E731
    else:
        read = operator.itemgetter(*names)
    fill = dict(defaults)

    def make(values: Mapping[str, Any]) -> list[Any]:
        if fill:
            values = {**fill, **values}
        row = list(read(values))
        for index, processor in converted:
            value = row[index]
            if value is not None:
                row[index] = processor(value)
        return row

    return make


def _dict_maker(
    names: Sequence[str], processors: Mapping[str, _Processor], defaults: Mapping[str, Any]
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The same for a statement with named placeholders: a dict of exactly its names."""
    plain = tuple(name for name in names if name not in processors)
    converted = tuple((name, processor) for name, processor in processors.items() if name in names)
    fill = dict(defaults)

    def make(values: Mapping[str, Any]) -> dict[str, Any]:
        if fill:
            values = {**fill, **values}
        out = {name: values[name] for name in plain}
        for name, processor in converted:
            value = values[name]
            out[name] = None if value is None else processor(value)
        return out

    return make


# How many expanded forms (distinct list lengths) one statement keeps per dialect.
_EXPANSIONS_KEPT = 64


class Prepared:
    """An INSERT, UPDATE or DELETE compiled once per dialect and executed on the driver's cursor.

    Public API for blocks: build one at import time, call :meth:`execute` or :meth:`execute_many` with
    the step's connection (``ctx.db``).
    """

    def __init__(self, statement: sa.ClauseElement):
        self.statement = statement
        self._forms: dict[str, _Form] = {}
        self._expanding: tuple[_Expanding, ...] | None = None
        self._expanded: dict[tuple[str, tuple[int, ...]], _Form] = {}
        self._anonymous: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def insert(cls, table: sa.Table, *columns: str) -> Prepared:
        """An INSERT of ``columns`` into ``table``, each taking the parameter of the same name.

        Built the way prepared inserts must be: only the columns given (a bare ``insert()`` would expect
        every column) and inline, so PostgreSQL adds no ``RETURNING`` for an autoincrement id.
        """
        return cls(table.insert().values({name: sa.bindparam(name) for name in columns}).inline())

    # -- compiling ---------------------------------------------------------------------------------------

    def _expanding_parameters(self) -> tuple[_Expanding, ...]:
        found = self._expanding
        if found is None:
            seen: dict[str, _Expanding] = {}
            for element in visitors.iterate(self.statement):
                if isinstance(element, sa.BindParameter) and element.expanding:
                    name = self._call_name(element)
                    types = getattr(element.type, "types", None)
                    default = None if element.required else list(element.effective_value or ())
                    seen.setdefault(name, _Expanding(name, len(types) if types else 0, default))
            found = self._expanding = tuple(seen.values())
        return found

    def _call_name(self, bind: sa.BindParameter[Any]) -> str:
        # A list bound when the statement was built has an anonymous key, never given by a call: it is
        # named here, the same name each time the statement is walked.
        key = bind.key
        if isinstance(key, str) and key.isidentifier():
            return key
        return self._anonymous.setdefault(key, f"in{len(self._anonymous)}_")

    def _form(self, dialect: Dialect) -> _Form:
        found = self._forms.get(dialect.name)
        if found is not None:
            return found
        with self._lock:
            found = self._forms.get(dialect.name)
            if found is None:
                # A statement with expanding parameters is compiled per list length (see _expanded_form).
                found = _Form("", _unexpanded) if self._expanding_parameters() else _compile(self.statement, dialect)
                self._forms[dialect.name] = found
        return found

    def _expanded_form(self, dialect: Dialect, values: Mapping[str, Any]) -> tuple[_Form, Mapping[str, Any]]:
        """The statement to send for these values, and the values by placeholder name: each expanding
        parameter's list becomes one placeholder per element (tuples: one per member)."""
        lists: list[tuple[_Expanding, list[Any]]] = []
        for parameter in self._expanding_parameters():
            items = values.get(parameter.name, parameter.default)
            if items is None:
                raise ValueError(f"no value for the expanding parameter {parameter.name!r}")
            lists.append((parameter, list(items)))
        lengths = tuple(len(items) for _parameter, items in lists)
        key = (dialect.name, lengths)
        form = self._expanded.get(key)
        if form is None:
            by_name = {parameter.name: length for (parameter, _items), length in zip(lists, lengths, strict=True)}
            form = _compile(_expand(self.statement, by_name, self._call_name, dialect), dialect)
            with self._lock:
                if len(self._expanded) >= _EXPANSIONS_KEPT:
                    self._expanded.clear()
                self._expanded[key] = form
        flat = dict(values)
        for parameter, items in lists:
            name = parameter.name
            if parameter.width:
                for index, item in enumerate(items):
                    for member_index, member in enumerate(item):
                        flat[f"{name}__{index}_{member_index}"] = member
            else:
                for index, item in enumerate(items):
                    flat[f"{name}__{index}"] = item
        return form, flat

    # -- running -----------------------------------------------------------------------------------------

    def execute(self, connection: sa.Connection, values: Mapping[str, Any] | None = None, /, **more: Any) -> int:
        """Run the statement in ``connection``'s transaction; returns the number of rows it changed (-1
        inside :func:`together` on PostgreSQL, where it is not known yet)."""
        form, values = self._form_for(connection.dialect, _merged(values, more))
        if form.wire_sql is not None:
            result = _send(connection, lane_for(connection), form, values, rows=False)
            return -1 if result is None else (result.command_tuples or 0)
        return int(self._run(connection, form, values)[0].rowcount)

    def _form_for(self, dialect: Dialect, values: Mapping[str, Any]) -> tuple[_Form, Mapping[str, Any]]:
        """The form to send for these values, and the values it reads (by placeholder name, once expanded)."""
        form = self._forms.get(dialect.name) or self._form(dialect)
        if form.parameters is _unexpanded:
            return self._expanded_form(dialect, values)
        return form, values

    def _run(self, connection: sa.Connection, form: _Form, values: Mapping[str, Any]) -> tuple[Any, str, _Parameters]:
        """The path of a statement on a driver other than psycopg (SQLite's): the driver's parameters, the
        announcement to listeners, the driver call. Returns the cursor, with what was sent."""
        parameters = form.parameters(values)
        cursor = driver_cursor(connection)
        listeners = connection.dispatch.before_cursor_execute  # (_announce, written out: every statement)
        if listeners:
            listeners(connection, cursor, form.sql, parameters, None, False)
        try:
            cursor.execute(form.sql, parameters)
        except connection.dialect.loaded_dbapi.Error as error:
            raise sqlalchemy_error(connection, form.sql, parameters, error) from error
        return cursor, form.sql, parameters

    def execute_many(self, connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement once per row, in one driver call; returns the rows changed in all (-1 inside
        :func:`together` on PostgreSQL, where it is not known yet)."""
        if not rows:
            return 0
        form = self._form(connection.dialect)
        if form.parameters is _unexpanded:
            raise ValueError("execute_many cannot take expanding (IN) parameters")
        if len(rows) == 1:
            return self.execute(connection, rows[0])
        if form.wire_sql is not None:
            return _send_many(connection, form, rows)
        parameters = [form.parameters(row) for row in rows]
        cursor = driver_cursor(connection)
        _announce(connection, cursor, form.sql, parameters, True)
        try:
            cursor.executemany(form.sql, parameters)
        except connection.dialect.loaded_dbapi.Error as error:
            raise sqlalchemy_error(connection, form.sql, parameters, error) from error
        return int(cursor.rowcount)


def _unexpanded(values: Mapping[str, Any]) -> _Parameters:
    raise AssertionError("a statement with expanding parameters runs in an expanded form")  # pragma: no cover


def _expand(
    statement: sa.ClauseElement,
    lengths: Mapping[str, int],
    call_name: Callable[[sa.BindParameter[Any]], str],
    dialect: Dialect,
) -> sa.ClauseElement:
    """``statement`` with each expanding parameter replaced by a parenthesized list of plain parameters
    (``:ids__0, :ids__1``; tuples as ``VALUES (:pairs__0_0, :pairs__0_1), …``, which SQLite and
    PostgreSQL both read), or by an empty subquery of the right width for an empty list."""

    def replace(element: Any) -> Any:
        if not (isinstance(element, sa.BindParameter) and element.expanding):
            return None
        name = call_name(element)
        types = getattr(element.type, "types", None)
        length = lengths[name]
        if length == 0:
            # Typed NULLs: PostgreSQL must know what the empty set's columns are compared with.
            nulls = ", ".join(f"CAST(NULL AS {type_.compile(dialect=dialect)})" for type_ in types or [element.type])
            return sa.text(f"(SELECT {nulls} WHERE 1 = 0)")
        if types:
            rows = [
                [(f"{name}__{index}_{member}", type_) for member, type_ in enumerate(types)] for index in range(length)
            ]
            text = "(VALUES " + ", ".join("(" + ", ".join(f":{bind}" for bind, _ in row) + ")" for row in rows) + ")"
            binds = [sa.bindparam(bind, type_=type_) for row in rows for bind, type_ in row]
        else:
            names = [f"{name}__{index}" for index in range(length)]
            text = "(" + ", ".join(f":{bind}" for bind in names) + ")"
            binds = [sa.bindparam(bind, type_=element.type) for bind in names]
        return sa.text(text).bindparams(*binds)

    expanded = visitors.replacement_traverse(statement, {}, replace)  # type: ignore[call-overload]
    assert isinstance(expanded, sa.ClauseElement)
    return expanded


def _compile(statement: sa.ClauseElement, dialect: Dialect) -> _Form:
    """Compile ``statement`` for ``dialect``: its text, and a maker of its parameters (placeholder
    order or names, values bound at build time as defaults, each type's bind processor)."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    binds: Mapping[str, sa.BindParameter[Any]] = compiled.binds
    if any(bind.literal_execute for bind in binds.values()):
        raise ValueError("a prepared statement cannot use literal-execute parameters")
    positional = bool(compiled.positional)
    names: list[str] = list(compiled.positiontup or ()) if positional else list(compiled.params)
    processors: dict[str, _Processor] = {}
    defaults: dict[str, Any] = {}
    for name in dict.fromkeys(names):
        bind = binds[name]
        processor = _bind_processor(bind.type, dialect)
        if processor is not None:
            processors[name] = processor
        # Values bound when the statement was built (a LIMIT's, a literal compared with a column): sent
        # unless the call gives its own.
        if not bind.required and bind.callable is None:
            defaults[name] = bind.effective_value
    maker = _list_maker if positional else _dict_maker
    form = _Form(compiled.string, maker(names, processors, defaults))
    if dialect.driver == "psycopg" and not positional:
        original = {escaped: name for name, escaped in (compiled.escaped_bind_names or {}).items()}
        wire_sql, order = _numbered(compiled.string, original)
        form = attrs.evolve(form, wire_sql=wire_sql, wire_parameters=_list_maker(order, processors, defaults))
    return form


_PLACEHOLDER = re.compile(r"%\(([^)]*)\)s|%%")


def _numbered(sql: str, original: Mapping[str, str]) -> tuple[bytes, list[str]]:
    """psycopg's text of a statement (``%(name)s`` placeholders, ``%%`` for a percent sign) as libpq takes
    it: ``$1``, ``$2``… numbered by first appearance, the same number for each appearance of a name; and
    the names in that order."""
    order: list[str] = []
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped is None:
            return "%"
        name = original.get(escaped, escaped)
        found = numbers.get(name)
        if found is None:
            order.append(name)
            found = numbers[name] = len(order)
        return f"${found}"

    return _PLACEHOLDER.sub(number, sql).encode(), order


def _bind_processor(type_: sa.types.TypeEngine[Any], dialect: Dialect) -> _Processor | None:
    # The dialect's own implementation of the type: on SQLite a generic DateTime becomes a DATETIME
    # whose processor writes SQLAlchemy's text format; the generic type has none.
    implementation = type_.dialect_impl(dialect)
    processor: _Processor | None = implementation.bind_processor(dialect)
    if processor is not None and isinstance(implementation, sqlite.DATETIME) and _writes_default_text(processor):
        return _sqlite_datetime_writer(processor)
    if processor is None and isinstance(type_, sa.JSON):
        # Some drivers adapt JSON in SQLAlchemy's execution context, which this path skips: send the
        # document as text (what json.dumps writes) and let the database read it as JSON.
        return dumps
    return processor


_SAMPLES = (
    datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    datetime(2026, 3, 2, 9, 30, 15, 5, tzinfo=timezone(timedelta(hours=8))),
    datetime(1999, 12, 31, 23, 59, 59),
)


def _writes_default_text(processor: _Processor) -> bool:
    """Whether a SQLite DATETIME processor writes the default text (``2026-03-02 09:30:15.123456``): a
    column declared with its own storage format keeps SQLAlchemy's processor."""
    return all(processor(moment) == moment.isoformat(" ", "microseconds")[:26] for moment in _SAMPLES)


# A checkout writes a few moments many times over, through some forty statements' parameters (the clock's
# now as updated_at, in the saga log and on every event; a lease; an expiry): the texts of UTC moments are
# kept, for all of them, a few dozen at a time. Equal UTC moments have equal texts; equal moments in other
# zones need not, so they are not kept.
_DATETIME_TEXTS: dict[datetime, str] = {}
_DATETIME_TEXTS_KEPT = 64


def _sqlite_datetime_writer(general: _Processor) -> _Processor:
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


def _announce(connection: sa.Connection, cursor: Any, sql: str, parameters: Any, many: bool) -> None:
    """Tell ``before_cursor_execute`` listeners (tracers, benchmarks, query loggers) about a statement sent
    on the driver, as SQLAlchemy would: skipping its execution path must not make statements invisible."""
    listeners = connection.dispatch.before_cursor_execute
    if listeners:
        listeners(connection, cursor, sql, parameters, None, many)


_CURSOR = "retailblocks.prepared_cursor"


@contextmanager
def together(connection: sa.Connection) -> Iterator[None]:
    """Send the prepared statements run inside in one round trip, on PostgreSQL; elsewhere they run one by
    one, as without it.

    For writes whose outcome is not read: inside, a statement's row count is not known yet (-1). A query
    inside sends what is held before it, with it, and returns its rows. Only :class:`Prepared` statements
    are held: anything else sent inside would reach the database before them. An error is raised as
    SQLAlchemy's when the block ends (the statements after the failing one are skipped, and the
    transaction must roll back, as after any failed statement). Blocks nest: an inner one joins the outer.
    """
    lane = lane_for(connection)
    if lane is None or lane.held is not None:
        yield
        return
    lane.held = []
    try:
        yield
        held = lane.held
    finally:
        lane.held = None
    if held:
        _exchange(connection, lane, held, "statements sent together (pipelined)", None)


_LANE = "retailblocks.libpq_lane"


def lane_for(connection: sa.Connection) -> Lane | None:
    """The libpq lane of this connection's psycopg connection (in the connection's transaction, begun
    here if none is), or None on another driver. Kept with the driver connection, as the cursor is."""
    if not connection.in_transaction():
        connection.begin()
    pooled = connection.connection
    driver = pooled.dbapi_connection
    info = pooled.info
    lane = info.get(_LANE)
    if lane is not None and lane.driver is driver:
        return lane  # type: ignore[no-any-return]
    if getattr(driver, "pgconn", None) is None:
        return None
    prepares = bool(info.get(SESSION_KEEPS_STATEMENTS)) and driver.prepare_threshold is None  # type: ignore[union-attr]
    lane = info[_LANE] = Lane(driver, prepares=prepares)  # type: ignore[arg-type]
    return lane


def _send(connection: sa.Connection, lane: Lane | None, form: _Form, values: Mapping[str, Any], *, rows: bool) -> Any:
    """Send one statement on the connection's lane; its result, or None when :func:`together` holds it."""
    assert form.wire_sql is not None and form.wire_parameters is not None
    assert lane is not None
    if connection.dispatch.before_cursor_execute:
        _announce(connection, driver_cursor(connection), form.sql, form.parameters(values), False)
    statement = (form.wire_sql, form.wire_parameters(values))
    held = lane.held
    if held is None:
        return _exchange(connection, lane, [statement], form.sql, statement[1])[0]
    held.append(statement)
    if not rows:
        return None
    # Rows are wanted now: what is held goes first, in the same exchange.
    lane.held = []
    return _exchange(connection, lane, held, form.sql, statement[1])[-1]


def _send_many(connection: sa.Connection, form: _Form, rows: Sequence[Mapping[str, Any]]) -> int:
    """Send one statement per row on the connection's lane, in one exchange; the rows changed in all."""
    assert form.wire_sql is not None and form.wire_parameters is not None
    lane = lane_for(connection)
    assert lane is not None
    if connection.dispatch.before_cursor_execute:
        _announce(connection, driver_cursor(connection), form.sql, [form.parameters(row) for row in rows], True)
    sql, make = form.wire_sql, form.wire_parameters
    statements: list[Statement] = [(sql, make(row)) for row in rows]
    if lane.held is not None:
        lane.held.extend(statements)
        return -1
    results = _exchange(connection, lane, statements, form.sql, None)
    return sum(result.command_tuples or 0 for result in results if result is not None)


def _exchange(
    connection: sa.Connection, lane: Lane, statements: list[Statement], sql: str, parameters: Any
) -> list[Any]:
    try:
        return lane.exchange(statements)
    except connection.dialect.loaded_dbapi.Error as error:
        raise sqlalchemy_error(connection, sql, parameters, error) from error


def send_command(connection: sa.Connection, command: bytes) -> None:
    """Send a statement without parameters (``COMMIT``) on the connection's lane: held by
    :func:`together` when inside one, sent at once otherwise."""
    lane = lane_for(connection)
    assert lane is not None
    if lane.held is not None:
        lane.held.append((command, None))
    else:
        _exchange(connection, lane, [(command, None)], command.decode(), None)


def driver_cursor(connection: sa.Connection) -> Any:
    """The driver cursor prepared statements use on this connection (in the connection's transaction,
    begun here if none is).

    A statement runs to its end (rows are fetched at once), so one cursor serves them all in turn; making
    one per statement cost as much as the statement on psycopg, whose cursors each set up their adapters.
    The cursor is kept in ``Connection.info`` with the driver connection it belongs to, and made again for
    a new one (after an invalidation).
    """
    if not connection.in_transaction():
        connection.begin()
    pooled = connection.connection
    driver = pooled.dbapi_connection
    kept = pooled.info.get(_CURSOR)  # Connection.info, read without its property's second look-up
    if kept is not None and kept[0] is driver:
        return kept[1]
    assert driver is not None
    cursor = driver.cursor()
    pooled.info[_CURSOR] = (driver, cursor)
    return cursor


def execute_control(connection: sa.Connection, statement: str) -> None:
    """Send a transaction-control statement (``BEGIN IMMEDIATE``…) on the driver, seen by
    ``before_cursor_execute`` listeners like any statement; errors raised as SQLAlchemy's. For the
    engine's ``begin`` listener, which runs inside ``connection.begin()``."""
    driver = connection.connection.dbapi_connection
    assert driver is not None
    kept = connection.info.get(_CURSOR)
    if kept is not None and kept[0] is driver:
        cursor = kept[1]
    else:
        cursor = driver.cursor()
        connection.info[_CURSOR] = (driver, cursor)
    _announce(connection, cursor, statement, (), False)
    try:
        cursor.execute(statement)
    except connection.dialect.loaded_dbapi.Error as error:
        raise sqlalchemy_error(connection, statement, (), error) from error


def _merged(values: Mapping[str, Any] | None, more: dict[str, Any]) -> Mapping[str, Any]:
    if not more:
        return values if values is not None else more
    return {**values, **more} if values else more


def sqlalchemy_error(connection: sa.Connection, sql: str, parameters: Any, error: Exception) -> sa.exc.StatementError:
    """The driver's error as SQLAlchemy would raise it (``sa.exc.IntegrityError`` for a unique violation…),
    so callers catch one family of errors whichever path a statement took. As SQLAlchemy's own execution
    does, a lost connection is invalidated here: the pool drops it, and closing it sends nothing."""
    dialect = connection.dialect
    lost = not connection.invalidated and dialect.is_disconnect(
        error,  # type: ignore[arg-type]
        connection.connection.dbapi_connection,
        None,
    )
    wrapped = sa.exc.DBAPIError.instance(
        sql, parameters, error, dialect.loaded_dbapi.Error, dialect=dialect, connection_invalidated=lost
    )
    if lost:
        connection.invalidate(wrapped)
    return wrapped


_TYPE_CODE = operator.itemgetter(1)  # a cursor.description entry's type code


@attrs.frozen
class _Processing:
    """The result processors of a query's columns for one driver's column types (``cursor.description``)."""

    coltypes: tuple[Any, ...]
    processors: tuple[tuple[int, _Processor], ...]


class PreparedQuery(Prepared):
    """A SELECT (or a statement with RETURNING) compiled once per dialect and executed on the driver's
    cursor, its rows converted by each column's result processor as SQLAlchemy would convert them.

    Rows are named tuples: attribute access by column key (``row.status``), or by position.
    """

    def __init__(self, statement: sa.ClauseElement):
        super().__init__(statement)
        columns = getattr(statement, "exported_columns", None)
        if not columns:
            raise ValueError("a prepared query must return rows")
        keys = tuple(columns.keys())
        for key in keys:
            if not key.isidentifier() or keyword.iskeyword(key) or key.startswith("_"):
                raise ValueError(f"column key {key!r} is not a valid attribute name: give the column a .label()")
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate column keys {keys!r}: label the columns apart")
        self._types: tuple[sa.types.TypeEngine[Any], ...] = tuple(column.type for column in columns)
        self._row: Callable[[Sequence[Any]], Any] = namedtuple("Row", keys)._make  # type: ignore[attr-defined]
        self._processing: dict[str, _Processing] = {}

    def _processing_for(self, dialect: Dialect, coltypes: tuple[Any, ...]) -> _Processing:
        found = self._processing.get(dialect.name)
        if found is not None and found.coltypes == coltypes:
            return found
        types = self._types
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
        form, values = self._form_for(dialect, values)
        if form.wire_sql is not None:
            lane = lane_for(connection)
            result = _send(connection, lane, form, values, rows=True)
            count = result.ntuples
            if not count:
                return []
            assert lane is not None
            transformer = lane.transformer
            transformer.set_pgresult(result)
            raw = transformer.load_rows(0, 1 if one else count, tuple)
            coltypes = tuple(result.ftype(index) for index in range(result.nfields))
        else:
            cursor, sql, parameters = self._run(connection, form, values)
            try:
                # Fetch everything (a statement with RETURNING must run to the end), keep what was asked.
                raw = cursor.fetchall()
            except dialect.loaded_dbapi.Error as error:
                raise sqlalchemy_error(connection, sql, parameters, error) from error
            if one:
                raw = raw[:1]
            if not raw:
                return []
            coltypes = tuple(map(_TYPE_CODE, cursor.description))
        make = self._row
        processors = self._processing_for(dialect, coltypes).processors
        if not processors:
            return [make(record) for record in raw]
        rows = []
        for record in raw:
            converted = list(record)
            for index, processor in processors:
                value = converted[index]
                if value is not None:
                    converted[index] = processor(value)
            rows.append(make(converted))
        return rows
