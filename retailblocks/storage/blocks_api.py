"""What blocks need from storage besides their tables: inserting a row unless it exists, claiming an
idempotency key, reading outside the step's transaction, hashing a request. Public API, re-exported from
:mod:`retailblocks.storage`.

Inside a flow's step every block writes in one shared transaction (``ctx.db``). On PostgreSQL a statement
that fails — an INSERT hitting a unique key — aborts that whole transaction, so "insert and catch the
duplicate" is not an option: :class:`InsertIfAbsent` and :class:`KeyClaimer` use
``INSERT … ON CONFLICT DO NOTHING`` and tell from the row count whether the row went in. A concurrent
inserter of the same key waits for the first to commit, then sees the conflict: exactly what a replay needs.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from retailblocks.storage.engine import autocommit_engine, reading
from retailblocks.storage.json_text import json_encoder
from retailblocks.storage.prepared import Prepared, PreparedQuery
from retailblocks.storage.unit_of_work import UNITS_BY_CONNECTION, UnitOfWork, idle_place

__all__ = [
    "ClaimOutcome",
    "InsertIfAbsent",
    "KeyClaim",
    "KeyClaimer",
    "insert_if_absent",
    "read_only_connection",
    "request_hash",
    "single_statement",
]


class InsertIfAbsent:
    """``INSERT … ON CONFLICT DO NOTHING`` of ``columns`` into ``table``, built once for both databases.

    Calling it with a connection and the values of exactly those columns inserts the row unless a unique
    constraint already holds its key, and says whether it went in. Build one at import time for a hot
    path (building the statement per call costs more than running it)::

        _CLAIM_IDENTITY = InsertIfAbsent(identities, ("kind", "value", "member_id", "linked_at"))
        if _CLAIM_IDENTITY(ctx.db, {...}): ...

    Statements run through :class:`~retailblocks.storage.prepared.Prepared` on the driver's cursor, where
    the row count of a skipped insert is 0 on SQLite and on PostgreSQL alike.
    """

    def __init__(self, table: sa.Table, columns: Iterable[str]):
        self.table = table
        self.columns = tuple(columns)
        values = {name: sa.bindparam(name, type_=table.c[name].type) for name in self.columns}
        self._statements = {
            "postgresql": Prepared(postgresql.insert(table).values(values).on_conflict_do_nothing()),
            "sqlite": Prepared(sqlite.insert(table).values(values).on_conflict_do_nothing()),
        }

    def __call__(self, connection: sa.Connection, values: Mapping[str, Any]) -> bool:
        """Insert ``values`` unless a unique key collides; True if this call inserted the row."""
        statement = self._statements.get(connection.dialect.name)
        if statement is None:
            raise ValueError(f"insert-if-absent supports SQLite and PostgreSQL, not {connection.dialect.name}")
        return statement.execute(connection, values) == 1


_INSERTS: dict[tuple[sa.Table, tuple[str, ...]], InsertIfAbsent] = {}
_INSERTS_LOCK = threading.Lock()


def insert_if_absent(connection: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert ``values`` into ``table`` unless a unique key collides; True if this call inserted the row.

    The statement for each table and set of columns is built on first use and kept for the process (see
    :class:`InsertIfAbsent`).
    """
    key = (table, tuple(values))
    statement = _INSERTS.get(key)
    if statement is None:
        with _INSERTS_LOCK:
            statement = _INSERTS.setdefault(key, InsertIfAbsent(table, key[1]))
    return statement(connection, values)


class ClaimOutcome(enum.Enum):
    """What claiming a key found."""

    #: The key was free: this call's row now holds it.
    NEW = "new"
    #: The key was held by a row with the same request: a replay, answered from that row.
    REPLAY = "replay"
    #: The key was held by a row with another request: the caller reused a key by mistake.
    CONFLICT = "conflict"


@attrs.frozen
class KeyClaim:
    """The outcome of claiming a key, and the row that held it already (None when ``NEW``)."""

    outcome: ClaimOutcome
    existing: Mapping[str, Any] | None = None

    @property
    def new(self) -> bool:
        return self.outcome is ClaimOutcome.NEW


class KeyClaimer:
    """Claims idempotency keys: inserts a row keyed by ``key`` columns, and on a collision reads the
    row that holds the key and compares its ``same`` columns with this call's values.

        _CLAIMS = KeyClaimer(operations, ("key", "kind", "request_hash", "at"), key=("key",),
                             same=("kind", "request_hash"))
        claim = _CLAIMS(ctx.db, {"key": key, "kind": "adjust", "request_hash": request_hash(request), ...})
        if claim.outcome is ClaimOutcome.CONFLICT: raise IdempotencyConflict(...)
        if claim.outcome is ClaimOutcome.REPLAY: return claim.existing["result"]

    The claim should be a keyed operation's first write: two concurrent calls with one key serialize on
    it, and the second sees the first's row once it commits.
    """

    def __init__(self, table: sa.Table, columns: Iterable[str], *, key: Sequence[str], same: Sequence[str]):
        self.insert = InsertIfAbsent(table, columns)
        self.key = tuple(key)
        self.same = tuple(same)
        self._holder = PreparedQuery(
            sa.select(table).where(*(table.c[name] == sa.bindparam(f"key_{name}") for name in self.key))
        )

    def __call__(self, connection: sa.Connection, values: Mapping[str, Any]) -> KeyClaim:
        if self.insert(connection, values):
            return KeyClaim(ClaimOutcome.NEW)
        existing = self._holder.first_mapping(connection, {f"key_{name}": values[name] for name in self.key})
        if existing is None:  # pragma: no cover - the row a collision names cannot vanish in its transaction
            raise RuntimeError(f"the key {[values[name] for name in self.key]!r} collided with no row")
        same = all(existing[name] == values[name] for name in self.same)
        return KeyClaim(ClaimOutcome.REPLAY if same else ClaimOutcome.CONFLICT, existing)


_CANONICAL = json_encoder(default=str, sort_keys=True, separators=(",", ":"))


def request_hash(request: Any) -> str:
    """A stable digest of a JSON-able request (SHA-256 of its canonical JSON: sorted keys, no spaces,
    anything else as ``str``), to tell a replay from a reused key. The text is stored and compared: it
    never changes for a given request."""
    return hashlib.sha256(_CANONICAL(request).encode("utf-8")).hexdigest()


@contextmanager
def single_statement(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for a write complete in one statement, apart from any step (an attempt noted before a
    gateway call): committed as it runs on PostgreSQL, saving the BEGIN and COMMIT round trips of a
    transaction around it; a transaction of its own on SQLite and where the engine's transactions must
    stay transactions (:func:`~retailblocks.storage.engine.autocommit_engine`).

    Each statement run here stands alone: a second one is not undone if the first fails, nor the first if
    the second does. Writes that must succeed or fail together belong in a transaction.
    """
    twin = autocommit_engine(engine)
    if twin is None:
        # A unit of work, not engine.begin(): inside a flow on SQLite it borrows the flow's kept connection.
        with UnitOfWork(engine) as uow:
            yield uow.connection
        return
    idle = idle_place(engine, _IDLE_AUTOCOMMIT)
    connection = idle.take() or twin.connect()
    try:
        yield connection
        if connection.in_transaction():  # SQLAlchemy's own bookkeeping: the statements are committed
            connection.commit()
    except BaseException:
        connection.close()
        raise
    if not idle.offer(connection):
        connection.close()


#: The name under which an engine keeps the autocommit connections that wait between single statements:
#: taking one from the pool sets its isolation level to autocommit and giving it back resets it, which
#: together cost more than the statement.
_IDLE_AUTOCOMMIT = "_retailblocks_idle_autocommit"


@contextmanager
def read_only_connection(source: sa.Engine | UnitOfWork) -> Iterator[sa.Connection]:
    """A connection of its own, outside the step's transaction, for reading: on SQLite its transaction
    begins deferred (a plain reader, which in WAL mode never waits for the writer nor makes it wait),
    and it is rolled back and closed at the end.

    ``source`` is the stack's engine (a command's ``stack.engine``), or a unit of work, whose engine is
    read without opening its transaction; then the table permission guard checks what a block reads here
    as what it reads through ``ctx.db``. Inside a hook, use ``ctx.read_only_connection()``.
    """
    if not isinstance(source, UnitOfWork):
        with reading(source) as connection:
            yield connection
        return
    with reading(source.engine) as connection:
        UNITS_BY_CONNECTION[connection] = source
        try:
            yield connection
        finally:
            UNITS_BY_CONNECTION.pop(connection, None)
