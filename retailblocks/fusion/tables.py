"""The fusion tables: one timeline of what each member did across channels, and the coupons campaigns issued.

Both belong to the core (owner ``fusion``) and are written only by inserts keyed for idempotency, so an
event delivered twice or a file ingested twice adds nothing the second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from retailblocks.storage.migrations import Migration, create_tables

metadata = sa.MetaData()

timeline = sa.Table(
    "fusion_timeline",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # "event:<outbox id>" for facts from the outbox, "signal:<id or content hash>" for ingested ones.
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("member_id", sa.String(64), index=True),
    # The identity an external signal came with ("phone:+86…"), so a signal that arrived before its
    # member was known joins the member's timeline as soon as the identity is linked.
    sa.Column("identity", sa.String(300), index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(64)),
    sa.Column("order_id", sa.String(64), index=True),
    sa.Column("amount", sa.BigInteger),
    sa.Column("currency", sa.String(3)),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # event | signal
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

campaign_coupons = sa.Table(
    "fusion_campaign_coupons",
    metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("code", sa.String(64), nullable=False, index=True),
    sa.Column("promotion_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
)

MIGRATIONS: list[Migration] = [create_tables(1, "member timeline and campaign coupons", timeline, campaign_coupons)]


def insert_new(connection: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert unless a unique key already holds the row; True when inserted.

    ``ON CONFLICT DO NOTHING`` rather than catching IntegrityError, which on PostgreSQL would abort the
    transaction the listener shares with the dispatcher's cursor.
    """
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing()
    # RETURNING rather than rowcount, which psycopg does not report reliably for this statement.
    key = next(iter(table.primary_key.columns))
    return connection.execute(statement.returning(key)).first() is not None
