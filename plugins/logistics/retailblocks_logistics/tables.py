"""The logistics block's tables: shipments, their parcels and their tracking history."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from retailblocks.storage import Migration, Prepared, create_tables

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


# The statements of arranging, cancelling and tracking a shipment, built once at import
# (docs/block-storage.md).
INSERT_PARCEL = Prepared.insert(parcels, "shipment_id", "seq", "location", "lines")
INSERT_TRACKING = Prepared.insert(tracking, "shipment_id", "status", "note", "at")
SHIPMENT_BY_ID = sa.select(shipments).where(
    shipments.c.id == sa.bindparam("shipment_id"), shipments.c.block == sa.bindparam("block")
)
SHIPMENT_BY_KEY = sa.select(shipments).where(
    shipments.c.key == sa.bindparam("key"), shipments.c.block == sa.bindparam("block")
)
PARCELS_OF = (
    sa.select(parcels)
    .where(parcels.c.shipment_id.in_(sa.bindparam("shipment_ids", expanding=True)))
    .order_by(parcels.c.seq)
)
SHIPMENT_STATE = sa.select(shipments.c.status, shipments.c.order_id).where(
    shipments.c.id == sa.bindparam("shipment_id"), shipments.c.block == sa.bindparam("block")
)
LOCK_SHIPMENT = (
    sa.select(shipments.c.status, shipments.c.order_id, shipments.c.carrier, shipments.c.tracking)
    .where(shipments.c.id == sa.bindparam("shipment_id"), shipments.c.block == sa.bindparam("block"))
    .with_for_update()
)
MOVE_SHIPMENT = Prepared(
    shipments.update()
    .where(shipments.c.id == sa.bindparam("shipment_id"), shipments.c.status == sa.bindparam("from_status"))
    .values(status=sa.bindparam("to_status"), updated_at=sa.bindparam("now"))
)


def cancel_shipment(statuses: Sequence[str]) -> Prepared:
    """Move a shipment of one block to 'cancelled' if its status is one of ``statuses``; the statuses are
    parameters ``from_0``, ``from_1``… (a Prepared statement takes no literals and no expanding lists)."""
    return Prepared(
        shipments.update()
        .where(
            shipments.c.id == sa.bindparam("shipment_id"),
            shipments.c.block == sa.bindparam("block"),
            shipments.c.status.in_([sa.bindparam(f"from_{n}") for n in range(len(statuses))]),
        )
        .values(status=sa.bindparam("to_status"), updated_at=sa.bindparam("now"))
    )
