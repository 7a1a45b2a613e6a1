"""The sandbox's records: every message it was asked to send, and who opted out of what."""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks.storage import Migration, create_tables

PREFIX = "reach_sandbox"

metadata = sa.MetaData()

#: One row per request key: what was asked, and what the sandbox answered (a replay answers the same).
deliveries = sa.Table(
    f"{PREFIX}_deliveries",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("member_id", sa.String(64), nullable=False, index=True),
    sa.Column("medium", sa.String(32), nullable=False),
    # The address is kept as a keyed hash: what a receipt needs to match, not the member's phone or e-mail.
    sa.Column("address_digest", sa.String(64), nullable=False),
    sa.Column("campaign", sa.String(64)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reference", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

opt_outs = sa.Table(
    f"{PREFIX}_opt_outs",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("medium", sa.String(32), primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

MIGRATIONS: tuple[Migration, ...] = (create_tables(1, "deliveries and opt-outs", deliveries, opt_outs),)
