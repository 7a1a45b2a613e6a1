"""The block's tables: stock balances, the movement ledger, reservations, allocations to orders.

``levels`` is the fast, locked balance per SKU and location; ``movements`` is the ledger every
on-hand change is written to in the same transaction, so on hand always equals the sum of movements.

Every unit count is a 64-bit column: positions stay within MAX_QUANTITY, checked by the statements that
change them, and PostgreSQL's 32-bit INTEGER would refuse some of them.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks.storage import Migration, create_tables

PREFIX = "sql_inventory"

metadata = sa.MetaData()

levels = sa.Table(
    f"{PREFIX}_levels",
    metadata,
    sa.Column("sku", sa.String(100), primary_key=True),
    sa.Column("location", sa.String(64), primary_key=True),
    sa.Column("on_hand", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("allocated", sa.BigInteger, nullable=False, server_default="0"),
    # Back-ordered units make reserved exceed on hand (availability < 0), never on hand negative.
    sa.CheckConstraint("reserved >= 0 AND allocated >= 0 AND on_hand >= 0", name="levels_non_negative"),
)

movements = sa.Table(
    f"{PREFIX}_movements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sku", sa.String(100), nullable=False),
    sa.Column("location", sa.String(64), nullable=False),
    sa.Column("delta", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # receive | adjust | count | ship | return
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("order_id", sa.String(64), index=True),
    sa.Column("key", sa.String(255), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(f"ix_{PREFIX}_movements_sku_location", "sku", "location"),
)

# Back-ordered units outstanding per SKU, bounded by the allowance with a conditional update.
backorders = sa.Table(
    f"{PREFIX}_backorders",
    metadata,
    sa.Column("sku", sa.String(100), primary_key=True),
    sa.Column("outstanding", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("outstanding >= 0", name="backorders_non_negative"),
)

reservations = sa.Table(
    f"{PREFIX}_reservations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # active -> committed | released | expired; every transition is conditional on 'active'.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(64)),
    sa.Column("order_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(f"ix_{PREFIX}_reservations_status_expires", "status", "expires_at"),
)

reservation_lines = sa.Table(
    f"{PREFIX}_reservation_lines",
    metadata,
    sa.Column("reservation_id", sa.String(64), sa.ForeignKey(reservations.c.id), primary_key=True),
    sa.Column("sku", sa.String(100), primary_key=True),
    sa.Column("location", sa.String(64), primary_key=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    # Of ``quantity``, the units taken beyond stock under the SKU's back-order allowance.
    sa.Column("backordered", sa.BigInteger, nullable=False, server_default="0"),
)

# Units of an order per SKU and location: allocated (not shipped), shipped, shipped then returned.
allocations = sa.Table(
    f"{PREFIX}_allocations",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(100), primary_key=True),
    sa.Column("location", sa.String(64), primary_key=True),
    sa.Column("allocated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("backordered", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("fulfilled", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("returned", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint(
        "allocated >= 0 AND backordered >= 0 AND backordered <= allocated AND returned <= fulfilled",
        name="allocations_consistent",
    ),
)

# Idempotency claims of keyed operations (adjust, return, fulfil): the first insert wins.
operations = sa.Table(
    f"{PREFIX}_operations",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("result", sa.BigInteger),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

MIGRATIONS: list[Migration] = [
    create_tables(
        1,
        "stock levels, movements, back-orders, reservations, allocations, operation keys",
        levels,
        movements,
        backorders,
        reservations,
        reservation_lines,
        allocations,
        operations,
    ),
]
