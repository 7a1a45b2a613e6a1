"""Small dialect-aware SQL helpers: insert-or-ignore that never aborts a PostgreSQL transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(connection: sa.Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert ``values`` unless a unique constraint holds them already; True if the row went in.

    On PostgreSQL a plain INSERT that hits a constraint aborts the whole transaction, so the conflict
    is left to the database (``ON CONFLICT DO NOTHING``); a concurrent inserter of the same key waits
    for the first to commit and then sees the conflict. Whether the row went in is read from
    ``RETURNING``, because the driver's rowcount is not reliable for this statement (-1 on psycopg).
    """
    statement: Any
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    return connection.execute(statement.returning(sa.literal_column("1"))).first() is not None
