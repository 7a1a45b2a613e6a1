"""The logistics block's tables: shipments, their parcels and their tracking history."""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks.storage import Migration, create_tables

metadata = sa.MetaData()

shipments = sa.Table(
    "logistics_shipments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # The block instance that booked it: instances sharing these tables never touch each other's.
    sa.Column("block", sa.String(64), nullable=False),
    sa.Column("order_id", sa.String(64), nullable=False, index=True),
    sa.Column("option", sa.String(64), nullable=False),
    sa.Column("carrier", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("tracking", sa.String(100), nullable=False, server_default=""),
    # The idempotency key of the arrange call: a replay finds the shipment instead of booking again.
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("currency", sa.String(3), nullable=False),
    # Shipping charged to the shopper, and the carrier's surcharge for extra parcels (minor units).
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("extra_charge", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("ready_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

parcels = sa.Table(
    "logistics_parcels",
    metadata,
    sa.Column("shipment_id", sa.String(64), sa.ForeignKey("logistics_shipments.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("location", sa.String(64), nullable=False),
    # [[sku, quantity], ...] as the parcel was handed over.
    sa.Column("lines", sa.JSON, nullable=False),
)

tracking = sa.Table(
    "logistics_tracking",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "shipment_id",
        sa.String(64),
        sa.ForeignKey("logistics_shipments.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

MIGRATIONS: list[Migration] = [
    create_tables(1, "shipments, parcels and tracking history", shipments, parcels, tracking),
]


def insert_ignore(connection: sa.Connection, table: sa.Table, values: dict[str, object]) -> bool:
    """Insert a row unless it clashes with a unique key; True if it was inserted.

    ``INSERT … ON CONFLICT DO NOTHING`` rather than catching IntegrityError, because on PostgreSQL a
    failed insert aborts the whole unit of work. Whether a row went in is read from ``RETURNING``:
    psycopg reports no row count for these statements.
    """
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: sa.Executable = (
            pg_insert(table).values(values).on_conflict_do_nothing().returning(*table.primary_key)
        )
    else:  # SQLite, the only other database the stack runs on
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).values(values).on_conflict_do_nothing().returning(*table.primary_key)
    return connection.execute(statement).first() is not None
