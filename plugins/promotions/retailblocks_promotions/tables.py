"""The promotions block's tables: issued coupons, usage counters, per-member counters and
redemptions.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks.storage import Migration, create_tables

PREFIX = "promotions"

metadata = sa.MetaData()

#: Single-member coupon codes issued for a promotion (codes written in the config are not stored).
coupons = sa.Table(
    f"{PREFIX}_coupons",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),  # normalized: stripped, upper case
    sa.Column("promotion_id", sa.String(100), nullable=False, index=True),
    sa.Column("member_id", sa.String(64)),
    sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_uses", sa.Integer, nullable=False, server_default="1"),
    # The caller's key: issuing again with the same key returns the same codes.
    sa.Column("issue_key", sa.String(200), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("issue_key", "member_id", name=f"uq_{PREFIX}_coupons_issue_member"),
    sa.CheckConstraint("uses >= 0 AND uses <= max_uses", name=f"ck_{PREFIX}_coupons_uses"),
)

#: Orders and budget used per promotion; the conditional updates on this row keep the limits.
usage = sa.Table(
    f"{PREFIX}_usage",
    metadata,
    sa.Column("promotion_id", sa.String(100), primary_key=True),
    sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("budget_spent", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("uses >= 0 AND budget_spent >= 0", name=f"ck_{PREFIX}_usage_not_negative"),
)

#: Orders per member and promotion, for ``per_member_limit``.
member_usage = sa.Table(
    f"{PREFIX}_member_usage",
    metadata,
    sa.Column("promotion_id", sa.String(100), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint("uses >= 0", name=f"ck_{PREFIX}_member_usage_not_negative"),
)

#: One row per order and promotion: what was given, to whom, paid by whom, for which campaign.
redemptions = sa.Table(
    f"{PREFIX}_redemptions",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("promotion_id", sa.String(100), primary_key=True),
    sa.Column("member_id", sa.String(64), index=True),
    sa.Column("coupon", sa.String(64)),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("funder", sa.String(100), nullable=False),
    sa.Column("campaign", sa.String(100), index=True),
    sa.Column("released", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("released_at", sa.DateTime(timezone=True)),
)

MIGRATIONS: tuple[Migration, ...] = (
    create_tables(1, "coupons, usage, member usage and redemptions", coupons, usage, member_usage, redemptions),
)
