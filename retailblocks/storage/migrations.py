"""Schema migrations kept per owner (the core and each block), so upgrading one block migrates only its tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs
import sqlalchemy as sa

from retailblocks.errors import AssemblyError
from retailblocks.storage.engine import reading

SCHEMA_TABLE = sa.Table(
    "retailblocks_schema",
    sa.MetaData(),
    sa.Column("owner", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


@attrs.frozen
class Migration:
    """One step of an owner's schema: ``upgrade`` takes the database from ``version - 1`` to ``version``."""

    version: int
    description: str
    upgrade: Callable[[sa.Connection], None]
    #: The tables this step creates, by name (:func:`create_tables` fills it in): what the owner owns, for
    #: the table permissions (see :attr:`retailblocks.hookspecs.blocks.Block.owns_tables`).
    tables: tuple[str, ...] = ()


def create_tables(version: int, description: str, *tables: sa.Table) -> Migration:
    """A migration that creates ``tables`` (for an owner's first version, or new tables later)."""

    def upgrade(connection: sa.Connection) -> None:
        # One catalogue query for the step rather than one per table: assembling a platform creates a few
        # thousand tables, and the per-table check was a third of its round trips.
        existing = _table_names(connection)
        for table in tables:
            if table.name not in existing:
                table.create(connection, checkfirst=False)

    return Migration(version, description, upgrade, tuple(table.name for table in tables))


def _table_names(connection: sa.Connection) -> set[str]:
    """The tables visible to ``connection`` unqualified: on PostgreSQL those of the schema it writes to (a
    merchant's, under the platform's per-transaction ``search_path``), on SQLite the file's."""
    if connection.dialect.name == "postgresql":
        query = "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {name for (name,) in connection.exec_driver_sql(query)}


def migrate(engine: sa.Engine, owners: Mapping[str, Sequence[Migration]]) -> dict[str, tuple[int, int]]:
    """Bring every owner's tables to its newest version; returns ``owner -> (from, to)``.

    Every pending migration runs in one transaction, each inside a savepoint with its version bump: one
    commit for the whole assembly (a platform assembles dozens of merchants, and a commit per step was most
    of the time), while a migration that fails is rolled back alone and the steps before it are committed,
    so the owner is left at the version it fully reached. Concurrent assemblers serialize on the owners'
    schema rows.
    """
    for owner, migrations in owners.items():
        versions = [m.version for m in migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise AssemblyError(
                f"migrations of {owner!r} must be numbered 1, 2, 3… without gaps (got {versions})",
                block=owner,
            )
    SCHEMA_TABLE.create(engine, checkfirst=True)
    reached = _current_versions(engine)
    for owner, migrations in owners.items():
        if reached.get(owner, 0) > len(migrations):
            raise AssemblyError(
                f"the database holds {owner!r} at schema version {reached[owner]}, but the installed block "
                f"knows only up to version {len(migrations)}; install a newer version of the block "
                "(downgrades are not supported)",
                block=owner,
            )
    pending = {owner: migrations for owner, migrations in owners.items() if reached.get(owner, 0) < len(migrations)}
    changes: dict[str, tuple[int, int]] = {}
    if not pending:
        return changes
    failure: BaseException | None = None
    with engine.begin() as connection:
        for owner, migrations in pending.items():
            start = current = _lock_version(connection, owner)
            for migration in migrations[current:]:
                step = connection.begin_nested()
                try:
                    migration.upgrade(connection)
                    connection.execute(
                        SCHEMA_TABLE.update().where(SCHEMA_TABLE.c.owner == owner).values(version=migration.version)
                    )
                except BaseException as error:
                    step.rollback()
                    failure = error
                    break
                step.commit()
                current = migration.version
            if current > start:
                changes[owner] = (start, current)
            if failure is not None:
                break
    if failure is not None:
        raise failure
    return changes


def _current_versions(engine: sa.Engine) -> dict[str, int]:
    with reading(engine) as connection:
        return {
            owner: int(version)
            for owner, version in connection.execute(sa.select(SCHEMA_TABLE.c.owner, SCHEMA_TABLE.c.version))
        }


def _lock_version(connection: sa.Connection, owner: str) -> int:
    exists = connection.execute(
        sa.select(SCHEMA_TABLE.c.version).where(SCHEMA_TABLE.c.owner == owner).with_for_update()
    ).scalar()
    if exists is None:
        if connection.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            connection.execute(pg_insert(SCHEMA_TABLE).values(owner=owner, version=0).on_conflict_do_nothing())
        else:
            connection.execute(SCHEMA_TABLE.insert().prefix_with("OR IGNORE").values(owner=owner, version=0))
        exists = connection.execute(
            sa.select(SCHEMA_TABLE.c.version).where(SCHEMA_TABLE.c.owner == owner).with_for_update()
        ).scalar()
    return int(exists or 0)
