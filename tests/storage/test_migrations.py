"""Migrations are kept per owner: upgrading one block migrates only its tables, and downgrades are refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from retailblocks.errors import AssemblyError
from retailblocks.storage import Migration, create_engine, create_tables, migrate
from retailblocks.storage.migrations import SCHEMA_TABLE

metadata = sa.MetaData()
shelf = sa.Table("shelf_items", metadata, sa.Column("id", sa.Integer, primary_key=True))
till = sa.Table("till_rolls", metadata, sa.Column("id", sa.Integer, primary_key=True))


def add_column(connection: sa.Connection) -> None:
    connection.execute(sa.text("ALTER TABLE shelf_items ADD COLUMN colour VARCHAR(20)"))


def versions(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(SCHEMA_TABLE.c.owner, SCHEMA_TABLE.c.version)).all())


def test_upgrading_one_owner_runs_only_its_new_migrations(database_url: str) -> None:
    engine = create_engine(database_url)
    shelf_v1 = [create_tables(1, "shelf", shelf)]
    till_v1 = [create_tables(1, "till", till)]
    assert migrate(engine, {"shelf": shelf_v1, "till": till_v1}) == {"shelf": (0, 1), "till": (0, 1)}
    calls: list[str] = []

    def till_v2(connection: sa.Connection) -> None:
        calls.append("till v2")

    shelf_v2 = [*shelf_v1, Migration(2, "shelf colours", add_column)]
    changes = migrate(engine, {"shelf": shelf_v2, "till": till_v1})
    assert changes == {"shelf": (1, 2)} and calls == []
    assert versions(engine) == {"shelf": 2, "till": 1}
    assert migrate(engine, {"shelf": shelf_v2, "till": [*till_v1, Migration(2, "noop", till_v2)]}) == {"till": (1, 2)}
    assert calls == ["till v2"]
    with engine.connect() as connection:
        assert "colour" in {c["name"] for c in sa.inspect(connection).get_columns("shelf_items")}
    engine.dispose()


def test_a_database_newer_than_the_installed_block_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    migrate(engine, {"shelf": [create_tables(1, "shelf", shelf), Migration(2, "colours", add_column)]})
    with pytest.raises(AssemblyError, match=r"version 2.*only up to version 1"):
        migrate(engine, {"shelf": [create_tables(1, "shelf", shelf)]})
    engine.dispose()


def test_a_failing_migration_leaves_the_owner_at_the_version_it_fully_reached(database_url: str) -> None:
    engine = create_engine(database_url)

    def broken(connection: sa.Connection) -> None:
        connection.execute(sa.text("ALTER TABLE shelf_items ADD COLUMN size INTEGER"))
        raise RuntimeError("the migration's author made a mistake")

    with pytest.raises(RuntimeError):
        migrate(engine, {"shelf": [create_tables(1, "shelf", shelf), Migration(2, "broken", broken)]})
    assert versions(engine) == {"shelf": 1}
    engine.dispose()
