"""Moving one merchant to another of the platform's databases, its writes paused for the switch.

The steps, each safe to run again (a crashed move is finished by running it again):

1. ``moving``: the registry marks the merchant ``moving`` (served like a pause: 503 with Retry-After) and
   records the target; then the move waits out the workers' status cache and a request's grace, so no
   writer is left on the source.
2. The target is cleared (a schema or file left by a crashed attempt served nothing: the registry never
   pointed at it) and migrated like an assembly (the merchant's ``blocks.lock``, on the target's engine).
3. Every table's rows are copied in foreign-key order in one target transaction, ids kept (and on
   PostgreSQL the sequences' positions).
4. Each table's row count and a checksum of its rows (order-free) are compared on both sides.
5. The switch, one registry transaction: the merchant lives on the target and has its status from before
   the move back. Workers see both within their cache's life and assemble its stack on the target.
6. The source schema (or file) is dropped, then the move is marked done.

Before the switch the source is the merchant's only storage; after it, the target is. A run after a crash
before the switch starts again at step 2; after it, only step 6 is left.
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

#: How long a request that read the merchant as active just before the move may still be writing.
REQUEST_GRACE_SECONDS = 3.0
#: Rows per insert while copying.
BATCH_ROWS = 1000


@attrs.frozen
class Move:
    """What a move did: from and to which database, the rows copied per table (empty when an earlier run
    had copied them and only the source was left to drop), and whether it finished an earlier run's move."""

    id: str
    source: str
    target: str
    rows: Mapping[str, int]
    resumed: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.source,
            "to": self.target,
            "rows": dict(self.rows),
            "resumed": self.resumed,
        }


def move_merchant(
    platform: Platform,
    merchant_id: str,
    to_database: str,
    *,
    settle_seconds: float | None = None,
    step: Callable[[str], None] | None = None,
) -> Move:
    """Move ``merchant_id`` to ``to_database`` (a name of ``databases:``), or finish its move cut short.

    ``settle_seconds`` is how long the merchant is left ``moving`` before its rows are read (default: the
    workers' status cache plus a request's grace); ``step`` is called with each step's name once it is done
    (``paused``, ``copied``, ``verified``, ``switched``, ``dropped``), so tests can stop a move there.
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
            before = placed.status_before or MerchantStatus.ACTIVE
        else:
            source = placed.database if placed is not None else entry.database
            if source == to_database:
                raise InvalidInput(f"merchant {merchant_id!r} already lives on database {to_database!r}")
            _same_kind(platform, entry, source, to_database)
            before, found = registry.begin_move(home, merchant_id, source, to_database, clock.now())
            if found is not None and (found.moving_to is not None or found.moved_from is not None):
                # Cannot happen under the move lock; refused all the same rather than copied twice.
                raise InvalidInput(f"merchant {merchant_id!r} has a move under way; run the move again to see it")
        platform.statuses(fresh=True)
        # Every worker reads the merchant as moving within its cache's life; a request that read it active
        # just before has its grace to finish. After that nothing writes the source.
        time.sleep(settle)
        done("paused")
        rows = _copy(platform, entry, source, to_database)
        done("copied")
        _verify(platform, entry, source, to_database)
        done("verified")
        registry.switch(home, merchant_id, source, to_database, before, clock.now())
        platform.statuses(fresh=True)
        done("switched")
        _drop(platform, entry, source)
        registry.finish_move(home, merchant_id, clock.now())
        done("dropped")
        return Move(merchant_id, source, to_database, rows, resumed=resumed)


def move_merchant_at(
    path: str | os.PathLike[str],
    merchant_id: str,
    to_database: str,
    *,
    environ: Mapping[str, str] | None = None,
    settle_seconds: float | None = None,
) -> Move:
    """:func:`move_merchant` on the platform at ``path`` (what ``blocks platform move`` runs)."""
    with open_platform(path, environ=environ) as platform:
        return move_merchant(platform, merchant_id, to_database, settle_seconds=settle_seconds)


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


def _failure(entry: MerchantEntry, database: DatabaseServer, doing: str, error: Exception) -> EnvironmentFailure:
    original = getattr(error, "orig", None) or error
    reason = " ".join(str(original).split()) or type(error).__name__
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


def _copy(platform: Platform, entry: MerchantEntry, source: str, target: str) -> dict[str, int]:
    target_db = platform.placement.database(target, entry.id)
    try:
        _clear_target(platform, entry, target_db)
        engine = platform.placement.merchant_engine(entry, target)
        # The merchant's tables on the target, by its locked blocks' own migrations (as `add` would).
        assemble(
            entry.manifest, environ=platform.environ, installed=platform.installed, engine=engine, require_lock=True
        ).close()
    except sa.exc.SQLAlchemyError as error:
        raise _failure(entry, target_db, "preparing the target", error) from None
    from_side, to_side = _side(platform, entry, source), _side(platform, entry, target)
    try:
        from_tables = from_side.tables()
        to_tables = {table.name: table for table in to_side.tables()}
        missing = [table.name for table in from_tables if table.name not in to_tables]
        if missing:
            raise InvalidInput(
                f"cannot move merchant {entry.id!r}: the target has no table {', '.join(sorted(missing))} after "
                "migrating; is the merchant's blocks.lock the one its source was assembled with?"
            )
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


def _verify(platform: Platform, entry: MerchantEntry, source: str, target: str) -> None:
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
