"""Moving one merchant to another of the platform's databases, its writes paused only for the switch.

Between PostgreSQL servers whose source has ``wal_level = logical``, the move is online:

1. The registry records the move (``moving_to``); the merchant keeps serving reads and writes from the
   source. The target is cleared (what a crashed attempt left there served nothing) and migrated like an
   assembly (the merchant's ``blocks.lock``, on the target's engine), its tables emptied.
2. Logical replication copies the rows: a publication of the merchant's schema and a logical slot on the
   source, a subscription on the target (the target server connects to the source with the platform's
   own URL) whose ``copy_data`` copies every table, then streams every change made since. Tables without a
   primary key get ``REPLICA IDENTITY FULL`` so their updates and deletes replicate too.
3. The move waits until every table is copied and the target confirmed the source's WAL up to where it
   ended then (the slot's ``confirmed_flush_lsn`` past ``pg_current_wal_lsn()``): the changes made during
   the copy are caught up. Step ``copied``.
4. The pause: the merchant is marked ``moving`` (served like a pause: 503 with Retry-After), the move waits
   out the workers' status cache and a request's grace, then the target's catch-up to the source's last
   WAL position (bounded: :data:`CATCH_UP_SECONDS`), copies the sequences' positions (replication does not
   carry them) and compares every table's row count and checksum on both sides.
5. The subscription, slot(s) and publication are removed, then the switch, one registry transaction: the
   merchant lives on the target and has its status from before the pause back. Workers see both within
   their cache's life and assemble its stack on the target. The source schema is dropped; the move is done.

Everywhere else the copy is paused throughout, and the move says why (:attr:`Move.paused_copy_reason`):
SQLite files (no logical replication), a source without ``wal_level = logical`` (a setting read at the
server's start), no free replication slot or WAL sender, a platform login on the source without
``REPLICATION`` or on the target unable to create a subscription (superuser, or ``pg_create_subscription``
on PostgreSQL 16), or ``online=False``. Then the merchant is ``moving`` from the start, its rows are copied
in foreign-key order in one target transaction (ids and sequence positions kept), compared, and switched.

A move that fails before its switch (an error or an interrupt) is undone: replication removed from both
servers (a slot left behind would keep the source's WAL forever), the target's copy dropped, the merchant
given back its status on its source; the error says what could not be cleaned, which the next run of the
move removes. A move whose process died is finished by running it again: before the switch, the next run
removes what was left (subscription, slots, publication, the pause) and moves afresh; after the switch, only
the source's storage is left to drop. Before the switch the source is the merchant's only storage; after it,
the target is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import SystemClock
from retailblocks.errors import EnvironmentFailure, InvalidInput, UnknownObject
from retailblocks.platform import registry
from retailblocks.platform.manifest import DatabaseServer, MerchantEntry, MerchantStatus
from retailblocks.platform.operations import STATUS_TTL_SECONDS, Platform, open_platform
from retailblocks.platform.placement import quoted
from retailblocks.stack import assemble
from retailblocks.storage.engine import pool_mode

#: How long a request that read the merchant as active just before the move may still be writing.
REQUEST_GRACE_SECONDS = 3.0
#: Rows per insert while copying.
BATCH_ROWS = 1000
#: How long a paused online move waits for the target to apply the source's last changes before it gives
#: the merchant back on its source (unpaused) and fails.
CATCH_UP_SECONDS = 60.0
#: How often replication's progress is read while waiting for it.
POLL_SECONDS = 0.1
#: How long replication may have no worker running (the target server retrying to reach the source) before
#: the move gives up.
STALL_SECONDS = 30.0
#: The keys of a SQLAlchemy URL's query the target server's connection to the source takes (libpq's); the
#: platform's own (``pool_mode``) and a driver's are not the server's business.
LIBPQ_KEYS = frozenset(
    {"host", "hostaddr", "port", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword",
     "sslnegotiation", "channel_binding", "gssencmode", "krbsrvname", "options", "application_name",
     "connect_timeout", "target_session_attrs", "passfile", "service", "keepalives", "keepalives_idle",
     "keepalives_interval", "keepalives_count", "tcp_user_timeout", "requirepeer", "ssl_min_protocol_version",
     "ssl_max_protocol_version"}
)  # fmt: skip


@attrs.frozen
class Move:
    """What a move did: from and to which database, the rows copied per table (empty when an earlier run
    had copied them and only the source was left to drop, and for an online move, whose rows the target
    server copied itself: then the row counts verified), whether it finished an earlier run's move, whether
    it copied online, why not (``paused_copy_reason``), and how long the merchant was paused (seconds from
    marking it ``moving`` to the switch)."""

    id: str
    source: str
    target: str
    rows: Mapping[str, int]
    resumed: bool
    online: bool = False
    paused_copy_reason: str | None = None
    paused_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.source,
            "to": self.target,
            "rows": dict(self.rows),
            "resumed": self.resumed,
            "online": self.online,
            "paused_copy_reason": self.paused_copy_reason,
            "paused_seconds": round(self.paused_seconds, 3),
        }


def move_merchant(
    platform: Platform,
    merchant_id: str,
    to_database: str,
    *,
    settle_seconds: float | None = None,
    step: Callable[[str], None] | None = None,
    online: bool = True,
    catch_up_seconds: float = CATCH_UP_SECONDS,
) -> Move:
    """Move ``merchant_id`` to ``to_database`` (a name of ``databases:``), or finish its move cut short.

    ``settle_seconds`` is how long the merchant is left ``moving`` before the source is read for the last
    time (default: the workers' status cache plus a request's grace); ``step`` is called with each step's
    name once it is done, so tests can stop a move there: online ``copied`` (copied and caught up, still
    serving), ``paused``, ``verified``, ``switched``, ``dropped``; a paused copy ``paused``, ``copied``,
    ``verified``, ``switched``, ``dropped``. ``online=False`` asks for the paused copy even where the
    online one is possible; ``catch_up_seconds`` bounds the wait for the last changes once paused.

    A move that fails before its switch (an error, or an interrupt) gives the merchant back on its source
    with the status it had, its replication removed; a process that died is cleaned up by the next run.
    """
    manifest = platform.manifest
    entry = manifest.merchant(merchant_id)
    if to_database not in manifest.databases:
        raise UnknownObject(f"{manifest.path}: no database {to_database!r} (declared: {', '.join(manifest.databases)})")
    settle = STATUS_TTL_SECONDS + REQUEST_GRACE_SECONDS if settle_seconds is None else settle_seconds
    done = step or (lambda _name: None)
    clock = SystemClock()
    home = platform.home
    with _only_move(platform, merchant_id):
        if merchant_id not in platform.statuses(fresh=True):
            raise UnknownObject(
                f"merchant {merchant_id!r} was never assembled; run `blocks platform add {merchant_id}` first"
            )
        placed = registry.locations(home).get(merchant_id)
        if placed is not None and placed.moved_from is not None:
            # Switched already: the target is the merchant's storage; only the source is left to drop.
            if placed.database != to_database:
                raise InvalidInput(
                    f"merchant {merchant_id!r} was moved to {placed.database!r}, whose source {placed.moved_from!r} "
                    f"is left to drop; run `blocks platform move {merchant_id} --to {placed.database}` to finish"
                )
            _drop(platform, entry, placed.moved_from)
            registry.finish_move(home, merchant_id, clock.now())
            done("dropped")
            return Move(merchant_id, placed.moved_from, to_database, {}, resumed=True)
        resumed = placed is not None and placed.moving_to is not None
        if placed is not None and placed.moving_to is not None:
            if placed.moving_to != to_database:
                raise InvalidInput(
                    f"merchant {merchant_id!r} is being moved from {placed.database!r} to {placed.moving_to!r} "
                    f"(a move cut short, nothing switched yet); run `blocks platform move {merchant_id} --to "
                    f"{placed.moving_to}` to finish it first"
                )
            source = placed.database
            # The process of that move died before its switch: what it left (replication on both servers,
            # the pause) is undone, and the merchant moved afresh from its source, which it never left.
            _forget_replication(platform, entry, source, to_database)
            registry.abandon_move(home, merchant_id, to_database, clock.now())
        else:
            source = placed.database if placed is not None else entry.database
            if source == to_database:
                raise InvalidInput(f"merchant {merchant_id!r} already lives on database {to_database!r}")
            _same_kind(platform, entry, source, to_database)
        reason = _why_not_online(platform, entry, source, to_database) if online else "a paused copy was asked for"
        before, found = registry.begin_move(
            home, merchant_id, source, to_database, clock.now(), pause=reason is not None
        )
        if found is not None and (found.moving_to is not None or found.moved_from is not None):
            # Cannot happen under the move lock; refused all the same rather than copied twice.
            raise InvalidInput(f"merchant {merchant_id!r} has a move under way; run the move again to see it")
        try:
            if reason is None:
                rows, paused_for = _move_online(platform, entry, source, to_database, settle, catch_up_seconds, done)
            else:
                rows, paused_for = _move_paused(platform, entry, source, to_database, before, settle, done)
        except (Exception, KeyboardInterrupt) as error:
            left = _abandon(platform, entry, source, to_database)
            if left is not None:
                raise EnvironmentFailure(f"{_reason(error)}; and cleaning up after it failed: {left}") from None
            raise
        done("switched")
        _drop(platform, entry, source)
        registry.finish_move(home, merchant_id, clock.now())
        done("dropped")
        return Move(merchant_id, source, to_database, rows, resumed=resumed, online=reason is None,
                    paused_copy_reason=reason, paused_seconds=paused_for)  # fmt: skip


def _move_paused(
    platform: Platform,
    entry: MerchantEntry,
    source: str,
    target: str,
    before: MerchantStatus,
    settle: float,
    done: Callable[[str], None],
) -> tuple[dict[str, int], float]:
    """The copy with the merchant paused throughout (SQLite, or a server without logical replication)."""
    paused_at = time.monotonic()
    platform.statuses(fresh=True)
    # Every worker reads the merchant as moving within its cache's life; a request that read it active
    # just before has its grace to finish. After that nothing writes the source.
    time.sleep(settle)
    done("paused")
    rows = _copy(platform, entry, source, target)
    done("copied")
    _verify(platform, entry, source, target)
    done("verified")
    registry.switch(platform.home, entry.id, source, target, before, SystemClock().now())
    paused_for = time.monotonic() - paused_at
    platform.statuses(fresh=True)
    return rows, paused_for


def _abandon(platform: Platform, entry: MerchantEntry, source: str, target: str) -> str | None:
    """Undo a move that failed before its switch: replication removed, the merchant given back its status
    on its source, and the target's half-made copy dropped. Each part is tried; what could not be done is
    returned (None when all was)."""
    left: list[str] = []
    try:
        _forget_replication(platform, entry, source, target)
    except Exception as error:
        left.append(_reason(error))
    try:
        if registry.abandon_move(platform.home, entry.id, target, SystemClock().now()):
            platform.statuses(fresh=True)
            _clear_target(platform, entry, platform.placement.database(target, entry.id))
    except Exception as error:
        left.append(_reason(error))
    if not left:
        return None
    return (
        f"{'; '.join(left)}; run `blocks platform move {entry.id} --to {target}` again: it removes what a "
        "failed move left before moving"
    )


def move_merchant_at(
    path: str | os.PathLike[str],
    merchant_id: str,
    to_database: str,
    *,
    environ: Mapping[str, str] | None = None,
    settle_seconds: float | None = None,
    online: bool = True,
) -> Move:
    """:func:`move_merchant` on the platform at ``path`` (what ``blocks platform move`` runs)."""
    with open_platform(path, environ=environ) as platform:
        return move_merchant(platform, merchant_id, to_database, settle_seconds=settle_seconds, online=online)


# -- one move at a time -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _only_move(platform: Platform, merchant_id: str) -> Iterator[None]:
    """Hold the merchant's move lock: a second ``move`` run at once is refused, not interleaved."""
    home = platform.home
    busy = InvalidInput(f"another move of merchant {merchant_id!r} is running; wait for it to end")
    if home.dialect.name == "postgresql":
        with home.connect() as connection:
            name = f"rb_platform.move:{merchant_id}"
            got = connection.execute(sa.text("SELECT pg_try_advisory_lock(hashtext(:n))"), {"n": name}).scalar()
            connection.commit()
            if not got:
                raise busy
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": name})
                connection.commit()
        return
    directory = platform.manifest.home.directory
    assert directory is not None
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"_move-{merchant_id}.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- the storage on either side -----------------------------------------------------------------------------


def _same_kind(platform: Platform, entry: MerchantEntry, source: str, target: str) -> None:
    source_db = platform.placement.database(source, entry.id)
    target_db = platform.placement.database(target, entry.id)
    if source_db.is_sqlite != target_db.is_sqlite:
        kinds = {True: "SQLite", False: "PostgreSQL"}
        raise InvalidInput(
            f"merchant {entry.id!r} lives on {source!r} ({kinds[source_db.is_sqlite]}) and {target!r} is "
            f"{kinds[target_db.is_sqlite]}: a merchant moves between databases of one kind"
        )


@attrs.frozen
class _Side:
    """One side of a move: an engine and the schema its tables are named in (None for a SQLite file)."""

    engine: sa.Engine
    schema: str | None

    def name(self, table: str) -> str:
        return quoted(table) if self.schema is None else f"{quoted(self.schema)}.{quoted(table)}"

    def tables(self) -> list[sa.Table]:
        """The merchant's tables, parents before children (the order rows can be inserted in)."""
        metadata = sa.MetaData()
        with self.engine.connect() as connection:
            metadata.reflect(bind=connection, schema=self.schema)
            connection.rollback()
        return [table for table in metadata.sorted_tables if not table.name.startswith("sqlite_")]


def _side(platform: Platform, entry: MerchantEntry, database_name: str) -> _Side:
    database = platform.placement.database(database_name, entry.id)
    if database.directory is not None:
        return _Side(platform.placement.sqlite_file(database, entry.id), None)
    # The platform's own login (a member of the merchant's role) with the schema named in every query:
    # reflection and sequences are read from the catalog, where a search path does not reach.
    return _Side(platform.placement.server(database), entry.schema)


def _reason(error: BaseException) -> str:
    """An error in one line: the database's own message, never the statement (a subscription's statement
    holds the source's password)."""
    original = getattr(error, "orig", None) or error
    return " ".join(str(original).split()) or type(error).__name__


def _failure(entry: MerchantEntry, database: DatabaseServer, doing: str, error: Exception) -> EnvironmentFailure:
    reason = _reason(error)
    return EnvironmentFailure(
        f"cannot move merchant {entry.id!r}: {doing} on {database.describe()}: {reason}; "
        "run the move again to finish it (the merchant stays where it was until the switch)"
    )


def _clear_target(platform: Platform, entry: MerchantEntry, database: DatabaseServer) -> None:
    """Remove what a crashed attempt left on the target: nothing was ever served from it."""
    if database.directory is not None:
        platform.placement.forget(entry, database.name)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database.directory / f'{entry.id}.db'}{suffix}").unlink(missing_ok=True)
        return
    with platform.placement.server(database).begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted(entry.schema)} CASCADE")


def _prepare_target(
    platform: Platform, entry: MerchantEntry, source: str, target: str
) -> tuple[list[sa.Table], dict[str, sa.Table]]:
    """The target cleared and migrated like an assembly; the source's tables (parents first) and the
    target's by name."""
    target_db = platform.placement.database(target, entry.id)
    try:
        _clear_target(platform, entry, target_db)
        engine = platform.placement.merchant_engine(entry, target)
        # The merchant's tables on the target, by its locked blocks' own migrations (as `add` would).
        assemble(
            entry.manifest, environ=platform.environ, installed=platform.installed, engine=engine, require_lock=True
        ).close()
        from_tables = _side(platform, entry, source).tables()
        to_tables = {table.name: table for table in _side(platform, entry, target).tables()}
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, target_db, "preparing the target", error) from None
    missing = [table.name for table in from_tables if table.name not in to_tables]
    if missing:
        raise InvalidInput(
            f"cannot move merchant {entry.id!r}: the target has no table {', '.join(sorted(missing))} after "
            "migrating; is the merchant's blocks.lock the one its source was assembled with?"
        )
    return from_tables, to_tables


def _copy(platform: Platform, entry: MerchantEntry, source: str, target: str) -> dict[str, int]:
    target_db = platform.placement.database(target, entry.id)
    from_tables, to_tables = _prepare_target(platform, entry, source, target)
    from_side, to_side = _side(platform, entry, source), _side(platform, entry, target)
    try:
        counts: dict[str, int] = {}
        with from_side.engine.connect() as reading, to_side.engine.begin() as writing:
            if reading.dialect.name == "postgresql":
                # One snapshot of every table (nothing writes the source now; this makes sure of it).
                reading.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # Rows a migration seeded on the target are replaced by the source's: children first.
            for table in reversed(list(to_tables.values())):
                writing.execute(table.delete())
            raw = reading.dialect.name == "sqlite"
            for table in from_tables:
                into: sa.TableClause = to_tables[table.name]
                read: sa.TableClause = table
                if raw:
                    # SQLite keeps what a block's types wrote (text for times, say); copied untyped, as is.
                    read = sa.table(table.name, *(sa.column(column.name) for column in table.columns))
                    into = sa.table(table.name, *(sa.column(column.name) for column in table.columns))
                counts[table.name] = 0
                result = reading.execution_options(yield_per=BATCH_ROWS).execute(sa.select(read))
                for batch in result.partitions():
                    writing.execute(into.insert(), [dict(row._mapping) for row in batch])
                    counts[table.name] += len(batch)
            if writing.dialect.name == "postgresql":
                _copy_sequences(reading, writing, from_side, to_side)
            reading.rollback()
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, target_db, "copying the rows", error) from None
    return counts


def _copy_sequences(reading: sa.Connection, writing: sa.Connection, from_side: _Side, to_side: _Side) -> None:
    """Each sequence of the schema where the source left it, so new ids never meet copied ones."""
    found = reading.execute(
        sa.text("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = :s"), {"s": from_side.schema}
    ).all()
    for name, last_value in found:
        if last_value is not None:
            writing.execute(sa.text("SELECT setval(:q, :v, true)"), {"q": to_side.name(name), "v": last_value})


def _digests(side: _Side) -> dict[str, tuple[int, str]]:
    """Each table's row count and a checksum of its rows: the sum of every row's SHA-256, independent of
    the order rows come back in (collations may differ between servers)."""
    found: dict[str, tuple[int, str]] = {}
    with side.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for table in side.tables():
            columns = ", ".join(quoted(column.name) for column in table.columns)
            total, count = 0, 0
            for row in connection.exec_driver_sql(f"SELECT {columns} FROM {side.name(table.name)}"):
                total += int.from_bytes(hashlib.sha256(repr(tuple(row)).encode()).digest(), "big")
                count += 1
            found[table.name] = (count, format(total % (1 << 256), "064x"))
        connection.rollback()
    return found


def _verify(platform: Platform, entry: MerchantEntry, source: str, target: str) -> dict[str, int]:
    """The target's rows the same as the source's, table by table; returns each table's row count."""
    target_db = platform.placement.database(target, entry.id)
    try:
        before = _digests(_side(platform, entry, source))
        after = _digests(_side(platform, entry, target))
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, target_db, "comparing the copy", error) from None
    # Every table on both sides: a source with fewer tables than its migrations make (storage gone, say)
    # is not a merchant to switch to an emptier copy of.
    differing = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    if differing:
        raise EnvironmentFailure(
            f"cannot move merchant {entry.id!r}: the copy on {target!r} differs from {source!r} in "
            f"{', '.join(differing)}; nothing was switched (run the move again to copy afresh)"
        )
    return {name: count for name, (count, _digest) in after.items()}


def _drop(platform: Platform, entry: MerchantEntry, source: str) -> None:
    """Drop the merchant's storage on ``source``, which serves nothing since the switch."""
    database = platform.placement.database(source, entry.id)
    try:
        if database.directory is not None:
            platform.placement.forget(entry, database.name)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database.directory / f'{entry.id}.db'}{suffix}").unlink(missing_ok=True)
            return
        server = platform.placement.server(database)
        with server.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted(entry.schema)} CASCADE")
        if database.roles:
            with server.begin() as connection:
                exists = connection.execute(
                    sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": entry.schema}
                ).first()
            if exists is not None:
                try:
                    with server.begin() as connection:
                        connection.exec_driver_sql(f"DROP ROLE {quoted(entry.schema)}")
                except sa.exc.DBAPIError:
                    # Roles are the cluster's: when the target is another database of the same cluster,
                    # the role owns the merchant's schema there and stays.
                    pass
    except (OSError, sa.exc.SQLAlchemyError) as error:
        raise _failure(
            entry, database, "dropping the source (the merchant already lives on the target)", error
        ) from None


# -- the online copy: logical replication from the source server to the target server ----------------------


def _replication_name(entry: MerchantEntry) -> str:
    """The publication's, subscription's and slot's name: one per merchant, so a run finds what an
    earlier run of its move left (slot names are the cluster's: lower-case letters, digits, ``_``)."""
    return f"rb_move_{entry.schema}"


def _why_not_online(platform: Platform, entry: MerchantEntry, source: str, target: str) -> str | None:
    """Why this move must pause the merchant for its whole copy, or None when it can copy online."""
    source_db = platform.placement.database(source, entry.id)
    target_db = platform.placement.database(target, entry.id)
    if source_db.is_sqlite:
        return "SQLite files have no logical replication: the file is copied with the merchant paused"
    if source_db.url is not None and pool_mode(sa.make_url(source_db.url)) != "session":
        return (
            f"the platform reaches {source!r} through a connection pooler (pool_mode="
            f"{pool_mode(sa.make_url(source_db.url))}), which replication connections cannot pass"
        )
    try:
        with platform.placement.server(source_db).connect() as connection:
            wal_level = connection.exec_driver_sql("SHOW wal_level").scalar()
            free_slots = connection.execute(
                sa.text(
                    "SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)"
                )
            ).scalar()
            senders = connection.exec_driver_sql("SHOW max_wal_senders").scalar()
            may_replicate = connection.execute(
                sa.text("SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user")
            ).scalar()
            connection.rollback()
        with platform.placement.server(target_db).connect() as connection:
            may_subscribe = connection.execute(
                sa.text(
                    "SELECT rolsuper OR (current_setting('server_version_num')::int >= 160000 AND "
                    "pg_has_role(current_user, 'pg_create_subscription', 'MEMBER')) "
                    "FROM pg_roles WHERE rolname = current_user"
                )
            ).scalar()
            connection.rollback()
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, source_db, "reading the servers' replication settings", error) from None
    if wal_level != "logical":
        return (
            f"the source server has wal_level={wal_level}, logical replication needs wal_level=logical "
            "(a setting read at the server's start)"
        )
    if not free_slots or int(free_slots) < 1 or not senders or int(str(senders)) < 1:
        return "the source server has no free replication slot or WAL sender (max_replication_slots, max_wal_senders)"
    if not may_replicate:
        return f"the platform's login on {source!r} may not replicate (it needs REPLICATION or superuser)"
    if not may_subscribe:
        return (
            f"the platform's login on {target!r} may not create a subscription (it needs superuser, or "
            "pg_create_subscription on PostgreSQL 16 and later)"
        )
    return None


def _conninfo(database: DatabaseServer) -> str:
    """The libpq connection string the target server uses to reach the source: the platform's own."""
    assert database.url is not None
    url = sa.make_url(database.url)
    parts = {
        "host": url.host,
        "port": str(url.port) if url.port else None,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    for key, value in url.query.items():
        if key in LIBPQ_KEYS:
            parts.setdefault(key, value if isinstance(value, str) else value[-1])
    # An unreachable source fails the subscription's creation within this, not the system's TCP timeout.
    parts.setdefault("connect_timeout", "10")
    return " ".join(
        f"{key}='{value.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
        for key, value in parts.items()
        if value
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _move_online(
    platform: Platform,
    entry: MerchantEntry,
    source: str,
    target: str,
    settle: float,
    catch_up: float,
    done: Callable[[str], None],
) -> tuple[dict[str, int], float]:
    """Copy while the merchant serves, pause it for the last changes, verify, switch. Returns the rows of
    each table (as verified) and how long the merchant was paused."""
    source_db = platform.placement.database(source, entry.id)
    target_db = platform.placement.database(target, entry.id)
    publisher = platform.placement.server(source_db).execution_options(isolation_level="AUTOCOMMIT")
    subscriber = platform.placement.server(target_db).execution_options(isolation_level="AUTOCOMMIT")
    name = _replication_name(entry)
    from_tables, to_tables = _prepare_target(platform, entry, source, target)
    doing = "starting replication"
    try:
        with subscriber.connect() as connection:
            # Rows the target's migrations seeded come from the source like every other row.
            listed = ", ".join(_side(platform, entry, target).name(table) for table in to_tables)
            connection.exec_driver_sql(f"TRUNCATE {listed}")
        with publisher.connect() as connection:
            _replica_identity(connection, entry.schema)
            version = int(connection.exec_driver_sql("SHOW server_version_num").scalar() or 0)
            if version >= 150000:
                tables = f"TABLES IN SCHEMA {quoted(entry.schema)}"
            else:
                tables = "TABLE " + ", ".join(_side(platform, entry, source).name(t.name) for t in from_tables)
            connection.exec_driver_sql(f"CREATE PUBLICATION {quoted(name)} FOR {tables}")
            # The slot made here, not by CREATE SUBSCRIPTION: that would wait forever for itself when both
            # databases are on one cluster.
            connection.execute(sa.text("SELECT pg_create_logical_replication_slot(:n, 'pgoutput')"), {"n": name})
        with subscriber.connect() as connection:
            connection.exec_driver_sql(
                f"CREATE SUBSCRIPTION {quoted(name)} CONNECTION {_literal(_conninfo(source_db))} "
                f"PUBLICATION {quoted(name)} WITH (create_slot = false, slot_name = {_literal(name)}, "
                "copy_data = true)"
            )
        doing = "copying the rows (the target server copies them from the source)"
        _wait_copied(subscriber, name, entry, target_db)
        doing = "catching up with the changes made while copying"
        _wait_applied(publisher, subscriber, name, None, entry, target_db)
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, target_db, doing, error) from None
    done("copied")

    before = registry.pause_move(platform.home, entry.id, target, SystemClock().now())
    paused_at = time.monotonic()
    platform.statuses(fresh=True)
    # As for a paused copy: the workers' caches and a request's grace, then nothing writes the source.
    time.sleep(settle)
    done("paused")
    try:
        doing = "applying the last changes"
        _wait_applied(publisher, subscriber, name, catch_up, entry, target_db)
        doing = "copying the sequences (replication does not carry them)"
        from_side, to_side = _side(platform, entry, source), _side(platform, entry, target)
        with from_side.engine.connect() as reading, to_side.engine.begin() as writing:
            _copy_sequences(reading, writing, from_side, to_side)
            reading.rollback()
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, target_db, doing, error) from None
    rows = _verify(platform, entry, source, target)
    done("verified")
    # Replication is removed before the switch: nothing is left on either server once the target serves.
    _forget_replication(platform, entry, source, target)
    registry.switch(platform.home, entry.id, source, target, before, SystemClock().now())
    paused_for = time.monotonic() - paused_at
    platform.statuses(fresh=True)
    return rows, paused_for


def _replica_identity(connection: sa.Connection, schema: str) -> None:
    """Replication finds a changed or deleted row on the target by its primary key: a table without one
    (a block's, say) is replicated with its whole row as the key instead."""
    bare = connection.execute(
        sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND c.relreplident = 'd' "
            "AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"
        ),
        {"s": schema},
    ).scalars()
    for table in list(bare):
        connection.exec_driver_sql(f"ALTER TABLE {quoted(schema)}.{quoted(table)} REPLICA IDENTITY FULL")


def _subscription_errors(connection: sa.Connection, name: str) -> int:
    found = connection.execute(
        sa.text(
            "SELECT coalesce(sum(apply_error_count + sync_error_count), 0) FROM pg_stat_subscription_stats "
            "WHERE subname = :n"
        ),
        {"n": name},
    ).scalar()
    return int(found or 0)


class _Watch:
    """Ends a wait on replication that has no worker running for :data:`STALL_SECONDS` (the target
    server cannot reach the source, say: such failures are retried by PostgreSQL, not counted)."""

    def __init__(self, entry: MerchantEntry, target_db: DatabaseServer, name: str) -> None:
        self.entry, self.target_db, self.name = entry, target_db, name
        self.running_at = time.monotonic()

    def check(self, subscriber: sa.Connection, doing: str) -> None:
        if _subscription_errors(subscriber, self.name):
            raise _stalled(self.entry, self.target_db, f"failed {doing}")
        running = subscriber.execute(
            sa.text("SELECT count(pid) FROM pg_stat_subscription WHERE subname = :n"), {"n": self.name}
        ).scalar()
        now = time.monotonic()
        if running:
            self.running_at = now
        elif now - self.running_at > STALL_SECONDS:
            raise _stalled(
                self.entry,
                self.target_db,
                f"has had no worker running for {STALL_SECONDS:g} s {doing} (can the target server reach the source?)",
            )


def _stalled(entry: MerchantEntry, target_db: DatabaseServer, what: str) -> EnvironmentFailure:
    return EnvironmentFailure(
        f"cannot move merchant {entry.id!r}: replication to {target_db.describe()} {what} (the target "
        "server's log says why); the merchant stays on its source"
    )


def _wait_copied(subscriber: sa.Engine, name: str, entry: MerchantEntry, target_db: DatabaseServer) -> None:
    """Until every table's initial copy is done (the merchant serves meanwhile, so this is not bounded
    in time); an error replicating ends the move."""
    watch = _Watch(entry, target_db, name)
    with subscriber.connect() as connection:
        while True:
            pending = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid "
                    "WHERE s.subname = :n AND r.srsubstate <> 'r'"
                ),
                {"n": name},
            ).scalar()
            if pending == 0:
                return
            watch.check(connection, "while copying the rows")
            time.sleep(POLL_SECONDS)


def _wait_applied(
    publisher: sa.Engine,
    subscriber: sa.Engine,
    name: str,
    limit: float | None,
    entry: MerchantEntry,
    target_db: DatabaseServer,
) -> None:
    """Until the target confirms it applied the source's WAL up to where it ends now (the slot's
    ``confirmed_flush_lsn`` past ``pg_current_wal_lsn()``); bounded by ``limit`` seconds when given."""
    started = time.monotonic()
    watch = _Watch(entry, target_db, name)
    with publisher.connect() as source, subscriber.connect() as target:
        end = source.exec_driver_sql("SELECT pg_current_wal_lsn()").scalar()
        while True:
            behind = source.execute(
                sa.text(
                    "SELECT confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < CAST(:end AS pg_lsn) "
                    "FROM pg_replication_slots WHERE slot_name = :n"
                ),
                {"n": name, "end": str(end)},
            ).scalar()
            if behind is None:
                raise _stalled(entry, target_db, "lost its slot on the source")
            if not behind:
                return
            watch.check(target, "while applying changes")
            if limit is not None and time.monotonic() - started > limit:
                raise _stalled(entry, target_db, f"did not catch up within {limit:g} s of the pause")
            time.sleep(POLL_SECONDS)


def _forget_replication(platform: Platform, entry: MerchantEntry, source: str, target: str) -> None:
    """Remove the move's subscription (target), slots and publication (source), whatever a run left: a
    slot left behind would keep the source's WAL forever. Nothing there when the databases are SQLite."""
    source_db = platform.placement.database(source, entry.id)
    target_db = platform.placement.database(target, entry.id)
    if source_db.is_sqlite or target_db.is_sqlite:
        return
    name = _replication_name(entry)
    subscription: int | None = None
    try:
        with platform.placement.server(target_db).execution_options(isolation_level="AUTOCOMMIT").connect() as c:
            subscription = c.execute(
                sa.text("SELECT oid FROM pg_subscription WHERE subname = :n"), {"n": name}
            ).scalar()
            if subscription is not None:
                # Detached from its slot first, so dropping it needs no connection to the source (which
                # may be what failed); the slots are dropped on the source below.
                c.exec_driver_sql(f"ALTER SUBSCRIPTION {quoted(name)} DISABLE")
                c.exec_driver_sql(f"ALTER SUBSCRIPTION {quoted(name)} SET (slot_name = NONE)")
                c.exec_driver_sql(f"DROP SUBSCRIPTION {quoted(name)}")
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, target_db, "removing the move's subscription", error) from None
    try:
        with platform.placement.server(source_db).execution_options(isolation_level="AUTOCOMMIT").connect() as c:
            # The slot, and those of tables whose copy was under way (named by PostgreSQL after the
            # subscription's oid); a slot still held by the subscription's stopping sender is waited for.
            deadline = time.monotonic() + CATCH_UP_SECONDS
            while True:
                slots = c.execute(
                    sa.text(
                        "SELECT slot_name, active_pid FROM pg_replication_slots WHERE slot_name = :n "
                        "OR (CAST(:sub AS text) IS NOT NULL AND slot_name LIKE 'pg\\_' || :sub || '\\_sync\\_%')"
                    ),
                    {"n": name, "sub": None if subscription is None else str(subscription)},
                ).all()
                if not slots:
                    break
                for slot, pid in slots:
                    if pid is not None:
                        c.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                        continue
                    with contextlib.suppress(sa.exc.OperationalError, sa.exc.ProgrammingError):
                        # Taken again by a sender that had not stopped yet: the next round drops it.
                        c.execute(sa.text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
                if time.monotonic() > deadline:
                    raise EnvironmentFailure(
                        f"cannot drop replication slot(s) {', '.join(slot for slot, _pid in slots)} of merchant "
                        f"{entry.id!r} on {source_db.describe()}: still in use"
                    )
                time.sleep(POLL_SECONDS)
            c.exec_driver_sql(f"DROP PUBLICATION IF EXISTS {quoted(name)}")
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, source_db, "removing the move's replication slot and publication", error) from None
