"""Prepared statements sent to PostgreSQL through libpq itself (``psycopg.pq``), several in one exchange.

psycopg's cursor is written for every use a program may make of it, and a flow pays for that on each of
the hundred statements of a checkout: measured on this machine, one prepared UPDATE through
``cursor.execute`` took 12 µs of Python before and after the round trip, through the calls below 5 µs;
three rows through ``cursor.executemany`` (a psycopg pipeline) took 87 µs of CPU, 31 µs here, because the
pipeline polls the socket and sends once per statement where this sends once per exchange.

A :class:`Lane` belongs to one psycopg connection. It adapts parameters with psycopg's own adapters (the
connection's :class:`psycopg.adapt.Transformer`: the values and types ``cursor.execute`` would send),
prepares each statement on the session the first time it sends it (when the session is the connection's
own and psycopg prepares nothing on it: see :data:`SESSION_KEEPS_STATEMENTS`), and sends statements in
libpq's pipeline mode followed by one sync: one write to the socket, one wait for the answers. A
statement that opens the transaction goes with the ``BEGIN`` psycopg would have sent (the same text, from
the connection's isolation level and access mode), so psycopg, which reads the transaction's state from
libpq, finds it open as if it had begun it, and commits or rolls it back as usual.

Everything is adapted before anything is sent, so a value that cannot be adapted raises with nothing on
the wire. A statement that fails makes the rest of its exchange be skipped (as in a transaction, the
caller rolls back) and raises psycopg's error for it, which the caller turns into SQLAlchemy's. Anything
else that interrupts an exchange half-way (the connection lost, an interrupt) leaves the session in an
unknown state: the connection is closed, and the pool drops it.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

__all__ = ["SESSION_KEEPS_STATEMENTS", "Lane", "Statement"]

#: One statement to send: its text with ``$n`` placeholders, and its parameters (None for a statement
#: that takes none and is sent as it is, such as ``COMMIT``).
Statement = tuple[bytes, Sequence[Any] | None]

#: Set to True in a pooled connection's ``info`` when its server session is its own for its lifetime, and
#: psycopg prepares nothing on it (``prepare_threshold=None``): the lanes of such connections prepare their
#: statements. (psycopg deallocates every statement of a session when a transaction rolls back if it has
#: prepared any itself; behind a transaction-mode pooler the next transaction may run on another session.)
#: Other connections' lanes send every statement unnamed: the client's savings, not the server's.
SESSION_KEEPS_STATEMENTS = "retailblocks.session_keeps_statements"

#: Statements a lane prepares on its session (each distinct text and parameter types counts once); past
#: this, new ones are sent unnamed and parsed each time, so a program that builds statements without end
#: does not fill the server's memory.
PREPARED_KEPT = 400

_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_IDLE = pq.TransactionStatus.IDLE
_CONNECTION_OK = pq.ConnStatus.OK

# What each command sent in an exchange answers for (see Lane.exchange).
_BEGIN = -1
_PREPARE = -2


class Lane:
    """Statements sent on one psycopg connection's libpq connection, outside psycopg's cursor."""

    def __init__(self, driver: psycopg.Connection[Any], *, prepares: bool):
        self.driver = driver
        self.prepares = prepares
        self.pgconn = driver.pgconn
        self.transformer = Transformer(driver)
        #: Statements held by :func:`retailblocks.storage.prepared.together`, sent with the next exchange.
        self.held: list[Statement] | None = None
        self._names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self._made = 0
        self._formats: dict[int, list[PyFormat]] = {}
        self._begin: tuple[tuple[Any, ...], bytes] | None = None
        self._poller = select.poll()
        self._fd = self.pgconn.socket
        self._poller.register(self._fd, select.POLLIN)

    def exchange(self, statements: Sequence[Statement]) -> list[pq.abc.PGresult | None]:
        """Send ``statements`` (after ``BEGIN`` when they open the transaction) in one pipeline and return
        each one's result, in order; raise psycopg's error for the first that fails."""
        pgconn = self.pgconn
        if pgconn.status != _CONNECTION_OK:
            raise psycopg.OperationalError("the connection is closed")
        transformer = self.transformer
        adapted: list[tuple[bytes, Sequence[Any] | None, tuple[int, ...], list[Any]]] = []
        for sql, parameters in statements:
            if parameters is None:
                adapted.append((sql, None, (), []))
            else:
                dumped = transformer.dump_sequence(parameters, self._formats_for(len(parameters)))
                adapted.append((sql, dumped, transformer.types or (), transformer.formats or []))
        begin = self._begin_command()
        prepares = self.prepares
        with self.driver.lock:
            pgconn.enter_pipeline_mode()
            try:
                # What each command answers for: _BEGIN, _PREPARE (with the name to keep), or the index of
                # the statement whose result it is.
                sent: list[tuple[int, tuple[bytes, tuple[int, ...]] | None, bytes]] = []
                preparing: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
                if begin is not None:
                    pgconn.send_query_params(begin, None)
                    sent.append((_BEGIN, None, b""))
                for index, (sql, values, types, formats) in enumerate(adapted):
                    if values is None:
                        pgconn.send_query_params(sql, None)
                    elif prepares:
                        key = (sql, types)
                        name = self._names.get(key) or preparing.get(key)
                        if name is None and self._made < PREPARED_KEPT:
                            # Named once and for all: a name whose PREPARE failed is not given again.
                            name = preparing[key] = b"rb_%d" % self._made
                            self._made += 1
                            pgconn.send_prepare(name, sql, types)
                            sent.append((_PREPARE, key, name))
                        if name is not None:
                            pgconn.send_query_prepared(name, values, formats)
                        else:
                            pgconn.send_query_params(sql, values, types, formats)
                    else:
                        pgconn.send_query_params(sql, values, types, formats)
                    sent.append((index, None, b""))
                pgconn.pipeline_sync()
                self._send()
                results: list[pq.abc.PGresult | None] = [None] * len(statements)
                failed: pq.abc.PGresult | None = None
                for answers_for, prepared, name in sent:
                    result = self._next_result()
                    while self._next_result() is not None:  # each command's results end with None
                        pass
                    assert result is not None
                    status = result.status
                    if status == _FATAL_ERROR:
                        failed = failed or result
                    elif answers_for >= 0:
                        if status in (_COMMAND_OK, _TUPLES_OK):
                            results[answers_for] = result
                    elif answers_for == _PREPARE and status == _COMMAND_OK:
                        assert prepared is not None
                        self._names[prepared] = name
                synced = self._next_result()
                if synced is None or synced.status != _PIPELINE_SYNC:
                    raise psycopg.InterfaceError("the server's answers did not end where the exchange did")
                pgconn.exit_pipeline_mode()
            except BaseException:
                # Half an exchange leaves the session in a state no one can tell: it is not used again.
                self._abandon()
                raise
        if failed is not None:
            raise psycopg.errors.error_from_result(failed, encoding=self.driver.info.encoding)
        return results

    def _formats_for(self, count: int) -> list[PyFormat]:
        formats = self._formats.get(count)
        if formats is None:
            formats = self._formats[count] = [PyFormat.AUTO] * count
        return formats

    def _begin_command(self) -> bytes | None:
        """The ``BEGIN`` psycopg sends before a transaction's first statement, or None if there is none to
        send: a transaction is open, or the connection commits each statement as it runs."""
        driver = self.driver
        if driver.autocommit or self.pgconn.transaction_status != _IDLE:
            return None
        settings = (driver.isolation_level, driver.read_only, driver.deferrable)
        if self._begin is None or self._begin[0] != settings:
            isolation, read_only, deferrable = settings
            parts = [b"BEGIN"]
            if isolation is not None:
                parts.append(b"ISOLATION LEVEL " + psycopg.IsolationLevel(isolation).name.replace("_", " ").encode())
            if read_only is not None:
                parts.append(b"READ ONLY" if read_only else b"READ WRITE")
            if deferrable is not None:
                parts.append(b"DEFERRABLE" if deferrable else b"NOT DEFERRABLE")
            self._begin = (settings, b" ".join(parts))
        return self._begin[1]

    def _send(self) -> None:
        """Write what libpq holds to the socket, reading answers meanwhile should the server's side fill up
        (a long exchange could otherwise wait on both ends)."""
        pgconn = self.pgconn
        while pgconn.flush():
            if self._wait(select.POLLIN | select.POLLOUT) & select.POLLIN:
                pgconn.consume_input()

    def _next_result(self) -> pq.abc.PGresult | None:
        pgconn = self.pgconn
        while pgconn.is_busy():
            self._wait(select.POLLIN)
            pgconn.consume_input()
        return pgconn.get_result()

    def _wait(self, events: int) -> int:
        poller = self._poller
        poller.modify(self._fd, events)
        ready = 0
        while not ready:
            for _fd, mask in poller.poll():
                ready |= mask
        return ready

    def _abandon(self) -> None:
        self.pgconn.finish()
