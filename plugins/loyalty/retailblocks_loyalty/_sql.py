"""Small dialect-aware SQL helpers: insert-or-ignore that never aborts a PostgreSQL transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from retailblocks.storage.prepared import PreparedQuery


class InsertIgnore:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING 1`` on ``columns``, built once per dialect.

    On PostgreSQL a plain INSERT that hits a constraint aborts the whole transaction, so the conflict
    is left to the database; a concurrent inserter of the same key waits for the first to commit and
    then sees the conflict. Whether the row went in is read from ``RETURNING``, because the driver's
    rowcount is not reliable for this statement (-1 on psycopg), which is why it is a
    :class:`~retailblocks.storage.prepared.PreparedQuery` rather than a ``Prepared`` statement. Built at
    import time: building the statement per call cost more than running it.
    """

    def __init__(self, table: sa.Table, columns: Iterable[str]):
        values = {name: sa.bindparam(name, type_=table.c[name].type) for name in columns}
        self.columns = frozenset(values)
        one: sa.Label[Any] = sa.literal_column("1").label("inserted")
        self._statements: dict[str, PreparedQuery] = {
            name: PreparedQuery(dialect.insert(table).values(values).on_conflict_do_nothing().returning(one))
            for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
        }

    def __call__(self, connection: sa.Connection, values: Mapping[str, Any]) -> bool:
        """Insert ``values`` (exactly the columns given at construction); True if the row went in."""
        return self._statements[connection.dialect.name].first(connection, values) is not None


def insert_ignore(connection: sa.Connection, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert ``values`` unless a unique constraint holds them already; True if the row went in.

    For the rare paths (merges, partner accounts); the hot ones use an :class:`InsertIgnore` built once.
    """
    statement: Any
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    return connection.execute(statement.returning(sa.literal_column("1"))).first() is not None
