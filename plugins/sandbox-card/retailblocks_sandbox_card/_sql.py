"""Dialect-aware SQL helpers: insert-if-absent keyed by a unique column, and UTC timestamps."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from retailblocks.storage.prepared import Prepared

#: One compiled statement per table and set of columns, built on first use and kept for the process.
_INSERTS: dict[tuple[str, tuple[str, ...]], Prepared] = {}


def insert_or_ignore(connection: sa.Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert a row unless one with the same unique key exists; True if this call inserted it.

    A plain INSERT that fails would abort a PostgreSQL transaction; ON CONFLICT DO NOTHING does not,
    and a concurrent inserter of the same key waits for the first to commit, then does nothing.
    The statement runs through Prepared on the driver's cursor, where the row count of a skipped insert
    is 0 on both databases (through SQLAlchemy, psycopg reports -1 and RETURNING was needed).
    """
    key = (table.name, tuple(values))
    statement = _INSERTS.get(key)
    if statement is None:
        # PostgreSQL's construct serves SQLite too: both spell ON CONFLICT DO NOTHING alike.
        built = postgresql.insert(table).values({name: sa.bindparam(name) for name in values}).on_conflict_do_nothing()
        statement = _INSERTS.setdefault(key, Prepared(built))
    return statement.execute(connection, values) == 1
