"""Database engines: SQLite as the embedded default, PostgreSQL (psycopg 3) for production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from retailblocks.errors import EnvironmentFailure, InvalidInput
from retailblocks.storage.json_text import dumps
from retailblocks.storage.libpq import SESSION_KEEPS_STATEMENTS
from retailblocks.storage.prepared import execute_control

_BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"
_BEGIN_DEFERRED = "BEGIN DEFERRED"

#: Set on every SQLite connection (the benchmark's raw-driver floor sets the same).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=60000",
)

#: How long a PostgreSQL statement waits for a row lock before it fails (see create_engine).
LOCK_TIMEOUT_MS = 10_000

_SET_LOCK_TIMEOUT = f"SET lock_timeout = '{LOCK_TIMEOUT_MS}ms'"
_SET_LOCAL_LOCK_TIMEOUT = f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"

SUPPORTED_SCHEMES = ("sqlite:///<path>", "postgresql+psycopg://user:password@host:port/database")

#: The URL query parameter saying how the PostgreSQL connections are pooled before the server (taken out of
#: the URL before it reaches the driver): ``session`` (the default: a direct connection, or a pooler in
#: session mode) or ``transaction`` (PgBouncer's ``pool_mode = transaction``: each transaction may run on
#: another server connection, so nothing may rest on session state).
#: An engine option: each transaction of this engine begins with statements of its own (a transaction-mode
#: pooler's lock timeout, a platform merchant's schema), which a statement run outside a transaction
#: would go without. Such an engine has no autocommit twin (see :func:`autocommit_engine`).
SCOPED_TRANSACTIONS = "retailblocks_scoped_transactions"

POOL_MODE_PARAMETER = "pool_mode"
POOL_MODES = ("session", "transaction")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names, or None for other databases."""
    if not is_sqlite(url):
        return None
    return Path(sa.make_url(url).database or "")


def create_engine(url: str, *, pool_size: int = 8) -> sa.Engine:
    """An engine tuned for the stack's access pattern: short write transactions from many threads.

    SQLite runs in WAL mode with foreign keys and a busy timeout, and every write transaction begins
    with ``BEGIN IMMEDIATE`` so it takes the write lock up front instead of failing to upgrade a read
    lock half-way (the classic SQLITE_BUSY deadlock). Read-only units of work begin deferred.

    On SQLite, JSON columns are written by the kept encoder (``json_text.dumps``: the text ``json.dumps``
    writes). psycopg adapts PostgreSQL's JSON itself (and warns about a closure as its serializer).

    The SQLite pool hands out the connection returned last (LIFO): a SQLite connection drops its page
    cache whenever another connection has written since its last transaction, so one thread running step
    after step should keep getting the same, warm connection.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as error:
        raise InvalidInput(f"unsupported database URL {url!r}: {error}") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, pool_size=pool_size)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(parsed, pool_size=pool_size)
    raise InvalidInput(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}; "
        f"supported: {', '.join(SUPPORTED_SCHEMES)}"
    )


def pool_mode(url: sa.URL) -> str:
    """How ``url``'s connections are pooled before the server (``?pool_mode=``, ``session`` by default)."""
    mode = url.query.get(POOL_MODE_PARAMETER, "session")
    if not isinstance(mode, str) or mode not in POOL_MODES:
        raise InvalidInput(
            f"database URL {url.render_as_string(hide_password=True)!r}: {POOL_MODE_PARAMETER} must be one of "
            f"{', '.join(POOL_MODES)} (got {mode!r})"
        )
    return mode


def _postgres_engine(parsed: sa.URL, *, pool_size: int) -> sa.Engine:
    """PostgreSQL through psycopg 3, directly or through a pooler (see :data:`POOL_MODE_PARAMETER`).

    Every statement that waits for a row lock gives up after :data:`LOCK_TIMEOUT_MS`: a process frozen in
    the middle of a transaction (a pause, a suspended machine) holds its row locks, and no one waits on
    them for ever; the statement fails, and a flow is left for recovery (which skips what stays locked)
    instead of hanging every process behind it.

    On a connection of its own (or through a pooler in session mode) the limit is a session setting, sent
    once when the connection is made, at no cost per transaction. Through a transaction-mode pooler a
    session setting would land on whichever server connection the pooler picked for that one statement,
    and PgBouncer refuses (or, told to ignore it, drops) libpq's startup ``options``: there each transaction
    sets the limit for itself with ``SET LOCAL`` as it begins — one more round trip per transaction, but it
    holds on whatever server connection the transaction runs, whatever the pooler's or the role's settings.
    Server-side prepared statements are the core's (:mod:`retailblocks.storage.libpq` prepares each
    :class:`~retailblocks.storage.prepared.Prepared` statement once per session), never psycopg's: psycopg
    deallocates every statement of the session when a transaction rolls back, the core's with its own.
    Through a transaction-mode pooler nothing is prepared: the next transaction may run on a server
    connection that never saw the PREPARE.
    """
    mode = pool_mode(parsed)
    parsed = parsed.difference_update_query([POOL_MODE_PARAMETER])
    if parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {"connect_timeout": 10, "prepare_threshold": None}
    engine = sa.create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        # The connection returned last goes out next: a single worker keeps using one server session,
        # whose prepared statements (the core prepares each once per session) stay warm.
        pool_use_lifo=True,
        connect_args=connect_args,
    )
    if mode == "transaction":
        engine.update_execution_options(**{SCOPED_TRANSACTIONS: True})

        @event.listens_for(engine, "begin")
        def _bound_lock_waits_in_transaction(connection: sa.Connection) -> None:
            execute_control(connection, _SET_LOCAL_LOCK_TIMEOUT)

    else:

        @event.listens_for(engine, "connect")
        def _bound_lock_waits(dbapi_connection: Any, record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(_SET_LOCK_TIMEOUT)
            dbapi_connection.commit()
            record.info[SESSION_KEEPS_STATEMENTS] = True

    return engine


def _sqlite_engine(url: str, *, pool_size: int) -> sa.Engine:
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_use_lifo=True,
        json_serializer=dumps,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # Sent on the driver's kept cursor: SQLAlchemy's full execution path costs several times what SQLite
        # needs to run the statement. Listeners of "before_cursor_execute" (statement tracing, the
        # benchmark's recorder) still see it; "database is locked" is raised as sa.exc.OperationalError.
        execute_control(connection, _BEGIN_DEFERRED if connection.info.get("read_only") else _BEGIN_IMMEDIATE)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        # "read_only" lives in the pooled connection's info, which outlives the SQLAlchemy connection that
        # set it: cleared here, the next user's write transaction begins IMMEDIATE as it should.
        record.info.pop("read_only", None)

    return engine


#: Where an engine keeps its autocommit twin, made on first use (kept on the engine itself: a cache
#: keyed by engine would keep every engine a test suite makes alive, since the twin refers to its engine).
_TWIN = "_retailblocks_autocommit"


def autocommit_engine(engine: sa.Engine) -> sa.Engine | None:
    """``engine`` with every statement committed as it runs, on the same pool; None where its transactions
    must stay transactions.

    For writes complete in one statement: on PostgreSQL a transaction around one statement costs two more
    round trips (BEGIN, COMMIT) than the statement itself. None on SQLite, where a transaction costs no
    round trip and its ``BEGIN IMMEDIATE`` takes the write lock up front, and for an engine whose
    transactions are scoped (:data:`SCOPED_TRANSACTIONS`).
    """
    known = vars(engine)
    if _TWIN not in known:
        plain = engine.dialect.name == "postgresql" and not engine.get_execution_options().get(SCOPED_TRANSACTIONS)
        # Two threads making it at once make two equivalent twins; either serves.
        known[_TWIN] = engine.execution_options(isolation_level="AUTOCOMMIT") if plain else None
    twin: sa.Engine | None = known[_TWIN]
    return twin


@contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection of its own for reading: its transaction begins deferred on SQLite (a plain reader,
    which in WAL mode never waits for the writer nor makes it wait), and is rolled back at the end.
    Blocks use :func:`retailblocks.storage.read_only_connection`, which also takes a unit of work."""
    with engine.connect() as connection:
        connection.info["read_only"] = True
        try:
            yield connection
        finally:
            if connection.in_transaction():
                connection.rollback()


def check_reachable(engine: sa.Engine) -> None:
    """Connect once; an unreachable database is a failure of the environment (exit status 1)."""
    try:
        with reading(engine) as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise EnvironmentFailure(
            f"cannot reach the database {engine.url.render_as_string(hide_password=True)}: {reason}"
        ) from None


def describe_url(url: str) -> str:
    """The URL with any password hidden, for output."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"
