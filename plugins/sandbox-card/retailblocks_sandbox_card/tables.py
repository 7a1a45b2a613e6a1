"""The tables of the block (its view of its payments) and of the sandbox gateway (the remote).

The two sets live in the same database only because the sandbox has nowhere else to live; the block
never reads the gateway's tables, and the gateway writes them on its own connection, as a remote
service would.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks.storage import Migration, create_tables

metadata = sa.MetaData()

# --- the block's own view, written through ctx.db -------------------------------------------------

payments = sa.Table(
    "sandbox_card_payments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the gateway's authorization id
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("flow_id", sa.String(64), index=True),
    sa.Column("channel", sa.String(64)),
    sa.Column("member_id", sa.String(64)),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("captured", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("voided", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("card_last4", sa.String(4), nullable=False),
    sa.Column("brand", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("refunded <= captured AND captured <= amount", name="sandbox_card_payments_totals"),
)

operations = sa.Table(
    "sandbox_card_operations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the gateway's operation id
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("payment_id", sa.String(64), sa.ForeignKey("sandbox_card_payments.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("flow_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Authorization attempts, written *before* the gateway call on a connection of their own, so that an
# attempt whose outcome never came back (time-out, crash) is known to stack_maintain.
attempts = sa.Table(
    "sandbox_card_attempts",
    metadata,
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("flow_id", sa.String(64)),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    # pending → authorized | not_authorized | declined
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
)

# --- the sandbox gateway, written on the gateway's own connection -------------------------------

gateway_charges = sa.Table(
    "sandbox_card_gateway_charges",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("request_fingerprint", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("captured", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("voided", sa.Boolean, nullable=False, server_default=sa.false()),
    # authorized | declined | failed (a time-out that never authorized)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decline_reason", sa.String(32)),
    sa.Column("card_last4", sa.String(4), nullable=False),
    sa.Column("brand", sa.String(16), nullable=False),
    # Set for time-outs: until then the gateway itself cannot say what happened.
    sa.Column("resolves_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("refunded <= captured AND captured <= amount", name="sandbox_card_gateway_charges_totals"),
)

gateway_operations = sa.Table(
    "sandbox_card_gateway_operations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("charge_id", sa.String(64), sa.ForeignKey("sandbox_card_gateway_charges.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Notifications the gateway sends about authorizations whose answer was lost (a time-out), as real gateways
# do by webhook: queued with the charge, delivered (signed) to the block's route by ``blocks sandbox-card
# notify`` (retailblocks_sandbox_card.notify), marked delivered once the route accepted one.
gateway_notifications = sa.Table(
    "sandbox_card_gateway_notifications",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),  # the authorization's
    sa.Column("body", sa.Text, nullable=False),  # the JSON document sent, fixed when queued
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delivered_at", sa.DateTime(timezone=True), index=True),
)

MIGRATIONS: list[Migration] = [
    create_tables(
        1,
        "payments, operations and attempts; the sandbox gateway's charges and operations",
        payments,
        operations,
        attempts,
        gateway_charges,
        gateway_operations,
    ),
    create_tables(2, "the sandbox gateway's notifications of timed-out authorizations", gateway_notifications),
]
