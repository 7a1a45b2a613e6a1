"""Dialect-aware SQL helpers: insert-if-absent keyed by a unique column, and UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_or_ignore(connection: sa.Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert a row unless one with the same unique key exists; True if this call inserted it.

    A plain INSERT that fails would abort a PostgreSQL transaction; ON CONFLICT DO NOTHING does not,
    and a concurrent inserter of the same key waits for the first to commit, then does nothing.
    RETURNING tells whether a row went in (the driver's rowcount is not reliable for this).
    """
    statement: Any
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif connection.dialect.name == "sqlite":
        statement = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - the stack supports only these two
        raise NotImplementedError(f"sandbox-card does not support {connection.dialect.name}")
    key = next(iter(table.primary_key.columns))
    return connection.execute(statement.returning(key)).first() is not None


def as_utc(moment: datetime) -> datetime:
    """A timestamp read back from the database as tz-aware UTC (SQLite returns it naive)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
