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
        for table in tables:
            table.create(connection, checkfirst=True)

    return Migration(version, description, upgrade, tuple(table.name for table in tables))


def migrate(engine: sa.Engine, owners: Mapping[str, Sequence[Migration]]) -> dict[str, tuple[int, int]]:
    """Bring every owner's tables to its newest version; returns ``owner -> (from, to)``.

    Each migration runs in its own transaction together with the version bump, so a crash leaves every
    owner at a version it fully reached. Concurrent assemblers serialize on the owner's schema row.
    """
    SCHEMA_TABLE.create(engine, checkfirst=True)
    changes: dict[str, tuple[int, int]] = {}
    for owner, migrations in owners.items():
        versions = [m.version for m in migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise AssemblyError(
                f"migrations of {owner!r} must be numbered 1, 2, 3… without gaps (got {versions})",
                block=owner,
            )
        newest = len(migrations)
        start = _current_version(engine, owner)
        if start > newest:
            raise AssemblyError(
                f"the database holds {owner!r} at schema version {start}, but the installed block knows "
                f"only up to version {newest}; install a newer version of the block (downgrades are "
                "not supported)",
                block=owner,
            )
        for migration in migrations[start:]:
            with engine.begin() as connection:
                current = _lock_version(connection, owner)
                if current >= migration.version:
                    continue  # another assembler got here first
                migration.upgrade(connection)
                connection.execute(
                    SCHEMA_TABLE.update().where(SCHEMA_TABLE.c.owner == owner).values(version=migration.version)
                )
        if newest > start:
            changes[owner] = (start, newest)
    return changes


def _current_version(engine: sa.Engine, owner: str) -> int:
    with reading(engine) as connection:
        version = connection.execute(sa.select(SCHEMA_TABLE.c.version).where(SCHEMA_TABLE.c.owner == owner)).scalar()
    return int(version or 0)


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
