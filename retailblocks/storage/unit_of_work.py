"""A unit of work: one transaction shared by every block taking part in one step of a flow."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from retailblocks.storage.json_text import JsonText, dumps
from retailblocks.storage.prepared import Prepared, lane_for, send_command, together
from retailblocks.storage.tables import outbox

# The step's events are written in one executemany when the step commits (or before a savepoint begins),
# rather than one INSERT per ``ctx.record``: a checkout records about ten events. Inline: no RETURNING of
# the generated id, which PostgreSQL would otherwise add to the statement.
_INSERT_EVENTS = Prepared(
    outbox.insert()
    .inline()
    .values(
        type=sa.bindparam("type"),
        payload=sa.bindparam("payload", type_=JsonText()),
        source=sa.bindparam("source"),
        channel=sa.bindparam("channel"),
        order_id=sa.bindparam("order_id"),
        member_id=sa.bindparam("member_id"),
        occurred_at=sa.bindparam("occurred_at"),
    )
)

_UOW = "retailblocks.unit_of_work"
#: The unit of work each open connection serves, for the table permission guard, which looks it up for
#: every statement: a dictionary keyed by the connection costs a fraction of ``connection.info``'s look-ups.
UNITS_BY_CONNECTION: dict[sa.Connection, UnitOfWork] = {}
_WIRED: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _on_savepoint(connection: sa.Connection, _name: str | None) -> None:
    # Events recorded before the savepoint belong to the enclosing transaction: write them now, so that
    # rolling the savepoint back can only take away events recorded inside it.
    uow = connection.info.get(_UOW)
    if uow is not None and uow.started and uow.connection is connection:
        uow.flush_deferred()
        uow.flush_events()


def _on_rollback_savepoint(connection: sa.Connection, _name: str, _context: Any) -> None:
    # Every event (and deferred write) still buffered came after the most recent savepoint began (each
    # savepoint flushes first), so after any savepoint that began at or before it: all of them are undone.
    uow = connection.info.get(_UOW)
    if uow is not None and uow.started and uow.connection is connection:
        uow.discard_events()
        uow.discard_deferred()


def _wire(engine: sa.Engine) -> None:
    if engine not in _WIRED:
        event.listen(engine, "savepoint", _on_savepoint)
        event.listen(engine, "rollback_savepoint", _on_rollback_savepoint)
        _WIRED.add(engine)


class IdleConnection:
    """A place for connections between uses, so a use does not take one from the pool and give it back
    (the pool's check-out, check-in and reset cost about as much as a statement; for a connection of the
    autocommit twin, whose isolation level is set on check-out and reset on check-in, twice that).

    At most ``capacity`` connections wait here, taken out of the pool, whatever the number of threads: a
    thread that finds the place empty takes a connection from the pool, as before, and one that finds it
    full gives its connection back to the pool. With ``pool_has_room``, a connection is kept only while
    it says the pool is not short of connections: a thread waiting for the pool is woken by a connection
    given back to it, never by one left here. Whoever owns the place closes it before the engine is
    disposed of (:func:`close_on_dispose` does it from the engine's ``engine_disposed`` event).
    """

    def __init__(self, capacity: int = 1, *, pool_has_room: Callable[[], bool] | None = None) -> None:
        self._lock = threading.Lock()
        self._capacity = capacity
        self._pool_has_room = pool_has_room
        self._connections: list[sa.Connection] = []

    def take(self) -> sa.Connection | None:
        with self._lock:
            return self._connections.pop() if self._connections else None

    def offer(self, connection: sa.Connection) -> bool:
        """Keep ``connection`` if the place has room and the connection is fit for the next use."""
        if connection.closed or connection.invalidated or connection.in_transaction():
            return False
        if self._pool_has_room is not None and not self._pool_has_room():
            return False  # threads may be waiting for the pool: it gets the connection back
        with self._lock:
            if len(self._connections) >= self._capacity:
                return False
            self._connections.append(connection)
        return True

    def close(self) -> None:
        while (connection := self.take()) is not None:
            connection.close()

    def close_on_dispose(self, engine: sa.Engine) -> None:
        """Close the waiting connections when ``engine`` is disposed of. By then its pool is a new one, so
        each driver connection is closed at once (invalidated) rather than handed to the old pool.

        In a process forked from the one that made the place, the connections are the parent's, which
        still uses them: they are forgotten, not closed, as the pool forgets its own when a forked child
        disposes of the engine (``engine.dispose(close=False)``)."""
        made_in = os.getpid()

        def closing(_engine: sa.Engine) -> None:
            if os.getpid() != made_in:
                with self._lock:
                    self._connections.clear()
                return
            while (connection := self.take()) is not None:
                connection.invalidate()
                connection.close()

        event.listen(engine, "engine_disposed", closing)


class ConnectionKeeper:
    """One pooled connection lent to the units of work of one flow run, one unit at a time.

    The steps of a saga, and the transactions a block keeps apart from them (a sandbox standing in for a
    remote service), run one after the other on one thread. Each unit used to take a connection from the
    pool and give it back: a SQLAlchemy connection made, its events joined, the driver connection reset.
    A keeper takes the connection once and lends it to each unit in turn; between units it holds no
    transaction, so no lock. A unit that starts while the connection is lent takes one from the pool.

    One connection for the whole run also keeps SQLite's page cache warm: a SQLite connection drops its
    cache whenever another connection has written.
    """

    def __init__(self, engine: sa.Engine, idle: IdleConnection | None = None):
        _wire(engine)
        self.engine = engine
        self._idle = idle
        self._connection: sa.Connection | None = None
        self._lent = False

    def lend(self) -> sa.Connection | None:
        if self._lent:
            return None
        connection = self._connection
        if connection is None and self._idle is not None:
            connection = self._idle.take()
        if connection is None or connection.closed or connection.invalidated:
            connection = self.engine.connect()
        self._connection = connection
        self._lent = True
        return connection

    def give_back(self, connection: sa.Connection) -> None:
        self._lent = False
        try:
            if connection.in_transaction():  # a unit that ended without commit or rollback
                connection.rollback()
        except sa.exc.SQLAlchemyError:
            connection.invalidate()
        if connection.invalidated:
            self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and (self._idle is None or not self._idle.offer(connection)):
            connection.close()


#: The name under which a PostgreSQL engine keeps the connections that wait between units of work.
_IDLE_UNITS = "_retailblocks_idle_units"
_PLACES_LOCK = threading.Lock()


def idle_units(engine: sa.Engine) -> IdleConnection | None:
    """The place where ``engine``'s connections wait between units of work, or None where they go back to
    the pool: on SQLite (a flow's units share a kept connection instead, see :class:`ConnectionKeeper`) and
    for an engine made from another by ``execution_options`` (a platform merchant's, among many sharing one
    pool: places of their own would hold the pool's connections away from the others).

    A checkout runs about seven units one after another; taking each one's connection from the pool and
    giving it back (a SQLAlchemy connection made, the pool's check-out, check-in and reset) cost more
    than one of its statements.
    """
    if engine.dialect.name != "postgresql" or type(engine) is not sa.Engine:  # (an option engine: a subclass)
        return None
    return idle_place(engine, _IDLE_UNITS)


def idle_place(engine: sa.Engine, name: str) -> IdleConnection:
    """The place called ``name`` for connections of ``engine``'s pool (see :class:`IdleConnection`), made
    on first use and kept on the engine, closed when the engine is disposed of: at most half the pool's
    size and four at most, and only while no more than the pool's size are out (beyond it, the pool lends
    its overflow, and threads may be waiting for it)."""
    known = vars(engine)
    place: IdleConnection | None = known.get(name)
    if place is not None:
        return place
    with _PLACES_LOCK:
        place = known.get(name)
        if place is None:
            place = known[name] = _new_place(engine)
    return place


def _new_place(engine: sa.Engine) -> IdleConnection:
    pool = engine.pool
    if not isinstance(pool, sa.pool.QueuePool):
        place = IdleConnection(0)  # (a pool that keeps nothing itself: nothing is kept here either)
    else:
        size = pool.size()
        # engine.pool, read again each time: disposing of the engine replaces it.
        place = IdleConnection(
            min(4, max(1, size // 2)),
            pool_has_room=lambda: engine.pool.checkedout() <= size,  # type: ignore[attr-defined]
        )
    place.close_on_dispose(engine)
    return place


_KEEPER: ContextVar[ConnectionKeeper | None] = ContextVar("retailblocks_connection_keeper", default=None)


@contextmanager
def keeping_connection(engine: sa.Engine, idle: IdleConnection | None = None) -> Iterator[ConnectionKeeper | None]:
    """Units of work on a SQLite ``engine`` begun in this context (on this thread) share one pooled
    connection, lent to one unit at a time (see :class:`ConnectionKeeper`). Nested use keeps the outer
    keeper. With ``idle``, the connection is taken from there when one waits, and left there afterwards
    when the place is free (see :class:`IdleConnection`).

    SQLite only: an embedded database gains a warm page cache and no pool round per unit. A PostgreSQL
    connection kept through a flow would sit idle in the pool's count while the flow waits on a payment
    provider, and a flow that then needed a second one could wait on a pool its peers had emptied the same
    way; there, each unit takes a waiting connection from its engine's place instead, and leaves it there
    (see :func:`idle_units`).
    """
    outer = _KEEPER.get()
    if engine.dialect.name != "sqlite" or (outer is not None and outer.engine is engine):
        yield outer if outer is not None and outer.engine is engine else None
        return
    keeper = ConnectionKeeper(engine, idle)
    token = _KEEPER.set(keeper)
    try:
        yield keeper
    finally:
        _KEEPER.reset(token)
        keeper.close()


class UnitOfWork:
    """Opens its connection and transaction on first use, commits or rolls back as a whole.

    Opening lazily matters: a step whose first action is an outside call (a payment gateway) holds no
    database lock while it waits for the answer.

    Events recorded with :meth:`record_event` are kept in memory and written to the outbox in the same
    transaction, in one statement, just before it commits (or before a savepoint begins, see
    ``_on_savepoint``); a rollback — of the whole unit or of a savepoint — discards them with everything
    else.

    The transaction is always SQLAlchemy's (``connection.begin()``), whether the connection is the
    pool's or one a keeper lends (SQLite, inside :func:`keeping_connection`: the steps of a saga), and
    whether statements go through SQLAlchemy or a :class:`~retailblocks.storage.prepared.Prepared`
    statement: one way to begin, commit and roll back. On SQLite the engine's ``begin`` listener sends
    ``BEGIN IMMEDIATE`` (``BEGIN DEFERRED`` for a read-only unit).
    """

    def __init__(self, engine: sa.Engine, *, read_only: bool = False):
        self._engine = engine
        self._read_only = read_only
        self._connection: sa.Connection | None = None
        self._transaction: sa.RootTransaction | None = None
        self._events: list[dict[str, Any]] = []
        self._deferred: list[tuple[Prepared, Mapping[str, Any]]] = []
        keeper = _KEEPER.get()
        self._keeper = keeper if keeper is not None and keeper.engine is engine else None
        self._borrowed = False
        self._idle: IdleConnection | None = None
        self._opening: Callable[[sa.Connection], None] | None = None
        #: The block whose hook is running on this unit now (the flow context's ``current_block`` writes
        #: it here), or None for the core: what the table permission guard checks statements against.
        self.acting_block: str | None = None

    @property
    def engine(self) -> sa.Engine:
        """The engine, for blocks that keep state apart from the step (a sandbox standing in for a remote
        service). Reading it does not open the transaction."""
        return self._engine

    @property
    def connection(self) -> sa.Connection:
        if self._connection is None:
            connection = self._keeper.lend() if self._keeper is not None else None
            self._borrowed = connection is not None
            if connection is None:
                _wire(self._engine)  # (a keeper wired its engine when it was made)
                self._idle = idle_units(self._engine)
                connection = (self._idle.take() if self._idle is not None else None) or self._engine.connect()
            info = connection.info
            info["read_only"] = self._read_only
            info[_UOW] = self
            UNITS_BY_CONNECTION[connection] = self
            self._connection = connection
            self._transaction = connection.begin()
            opening, self._opening = self._opening, None
            if opening is not None:
                self._run_opening(opening, connection)
        return self._connection

    def _run_opening(self, opening: Callable[[sa.Connection], None], connection: sa.Connection) -> None:
        # The core's statement, whichever block's hook touched the connection first.
        acting, self.acting_block = self.acting_block, None
        try:
            opening(connection)
        finally:
            self.acting_block = acting

    def open_with(self, opening: Callable[[sa.Connection], None]) -> None:
        """Run ``opening`` first in the transaction, when something first uses the connection (at once if
        the transaction has begun). A flow uses it to lock its own row before any block writes: see
        :meth:`retailblocks.flows.api.OrderFlows.outside_call`."""
        if self._connection is not None:
            self._run_opening(opening, self._connection)
        else:
            self._opening = opening

    @property
    def started(self) -> bool:
        return self._connection is not None

    def record_event(
        self,
        *,
        event_type: str,
        payload: dict[str, Any] | str,
        source: str,
        channel: str | None,
        order_id: str | None,
        member_id: str | None,
        occurred_at: datetime,
    ) -> None:
        """Add an event to this unit's outbox writes. ``payload`` is a JSON-ready mapping, or its JSON text."""
        self._events.append(
            {
                "type": event_type,
                "payload": payload if isinstance(payload, str) else dumps(payload),
                "source": source,
                "channel": channel,
                "order_id": order_id,
                "member_id": member_id,
                "occurred_at": occurred_at,
            }
        )

    def flush_events(self) -> None:
        """Write the buffered events now, in this unit's transaction."""
        if self._events:
            events, self._events = self._events, []
            # The outbox is the core's: its write is the core's even when a block's savepoint set it off.
            acting, self.acting_block = self.acting_block, None
            try:
                _INSERT_EVENTS.execute_many(self.connection, events)
            finally:
                self.acting_block = acting

    def discard_events(self) -> None:
        self._events.clear()

    def defer(self, statement: Prepared, values: Mapping[str, Any]) -> None:
        """Run ``statement`` with ``values`` as the unit commits, before its events: for a write nothing in
        the unit reads back and whose row count nothing checks (on PostgreSQL it leaves with the events
        and the ``COMMIT``, in one round trip). Deferred writes run in the order given, after everything
        sent before the commit, and are undone with the unit; a savepoint sends those deferred before it
        (as it writes the events), so rolling it back undoes only what was deferred inside it. The core's
        own writes: blocks write in their hooks, where a statement's effect may be read back."""
        self._deferred.append((statement, values))

    def discard_deferred(self) -> None:
        self._deferred.clear()

    def flush_deferred(self) -> None:
        """Run the deferred writes now, in this unit's transaction."""
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            acting, self.acting_block = self.acting_block, None  # the core's writes, as the events are
            try:
                for statement, values in deferred:
                    statement.execute(self.connection, values)
            finally:
                self.acting_block = acting

    def commit(self) -> None:
        try:
            if (self._events or self._deferred) and self._connection is not None and self._transaction is not None:
                self._commit_with_events(self._connection)
            self.flush_deferred()
            if self._events:
                self.flush_events()
            if self._transaction is not None:
                self._transaction.commit()
        except BaseException:
            self.rollback()
            raise
        self._close()

    def _commit_with_events(self, connection: sa.Connection) -> None:
        """On PostgreSQL, send the deferred writes, the buffered events and the ``COMMIT`` in one pipeline:
        one round trip where each took one. The driver's transaction ends here; SQLAlchemy's commit
        after it finds nothing left to send. Should an event's insert fail, the pipeline skips the
        ``COMMIT`` and raises, and the transaction rolls back as it would have."""
        lane = lane_for(connection)
        if lane is None or lane.driver.autocommit:
            return
        with together(connection):
            self.flush_deferred()
            self.flush_events()
            send_command(connection, b"COMMIT")

    def rollback(self) -> None:
        self._events.clear()
        self._deferred.clear()
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.info.pop(_UOW, None)
            UNITS_BY_CONNECTION.pop(self._connection, None)
            if self._borrowed:
                assert self._keeper is not None
                self._keeper.give_back(self._connection)
            elif self._idle is None or not self._idle.offer(self._connection):
                self._connection.close()
        self._connection = None
        self._transaction = None

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
