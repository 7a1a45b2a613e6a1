"""The connectors' tables (owner ``connectors``): money marketplaces collected, and what each channel was
last told it may sell."""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks.storage.migrations import Migration, create_tables

metadata = sa.MetaData()

#: One row per marketplace order imported: the marketplace holds the buyer's money and owes it to the
#: merchant (less what it refunded), which partner settlement draws on.
marketplace_payments = sa.Table(
    "marketplace_payments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # The checkout's authorization key: asking again under it finds this row.
    sa.Column("key", sa.String(300), nullable=False, unique=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("partner", sa.String(64), nullable=False),
    sa.Column("order_number", sa.String(128), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("captured", sa.BigInteger, nullable=False),
    sa.Column("refunded", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # One marketplace order becomes at most one payment, whatever key a caller used.
    sa.UniqueConstraint("channel", "order_number", name="uq_marketplace_payments_order"),
)

#: Captures and refunds by their keys, so a retried call returns the first answer and moves nothing twice.
marketplace_operations = sa.Table(
    "marketplace_operations",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("payment_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

#: What each channel was last told it may sell of each SKU; a change against it is published.
channel_listings = sa.Table(
    "channel_listings",
    metadata,
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(128), primary_key=True),
    sa.Column("sellable", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

MIGRATIONS: list[Migration] = [
    create_tables(
        1,
        "marketplace payments and the channels' published stock",
        marketplace_payments,
        marketplace_operations,
        channel_listings,
    )
]
