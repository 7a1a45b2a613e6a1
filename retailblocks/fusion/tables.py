"""The fusion tables: one timeline of what each member did across channels, the coupons campaigns issued,
partners' statements, and the facts and memberships segments are kept up to date with.

All belong to the core (owner ``fusion``). The timeline and the coupons are written only by inserts keyed
for idempotency, so an event delivered twice or a file ingested twice adds nothing the second time; issued
statements are only moved along their lifecycle (retailblocks.fusion.statements); the facts and answers
segments use are rewritten whole from their sources (retailblocks.fusion.memberships).
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

# Partner statements (fusion/statements.py): issued ones are never changed, only moved along their lifecycle.
statements = sa.Table(
    "fusion_statements",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("partner", sa.String(64), nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    sa.Column("paid_at", sa.DateTime(timezone=True)),
    sa.Column("payment_reference", sa.String(200)),
    # Statements with a partner follow each other; two issuers of one period cannot both succeed.
    sa.UniqueConstraint("partner", "period_start", name="fusion_statements_one_per_period"),
)

statement_lines = sa.Table(
    "fusion_statement_lines",
    metadata,
    sa.Column("statement_id", sa.String(64), sa.ForeignKey("fusion_statements.id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("partner", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    # What a correction corrects (the original line's kind); empty on an original line.
    sa.Column("corrects", sa.String(32), nullable=False, server_default=""),
    sa.Column("reference", sa.String(200), nullable=False),
    sa.Column("member_id", sa.String(64)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    # Each funded adjustment, point exchange or marketplace sale is billed in exactly one statement;
    # later changes to it are corrections, which may come in several.
    sa.Index(
        "fusion_statement_lines_billed_once",
        "partner",
        "kind",
        "reference",
        unique=True,
        sqlite_where=sa.text("corrects = ''"),
        postgresql_where=sa.text("corrects = ''"),
    ),
)

# What segments are evaluated over, kept as events arrive (retailblocks.fusion.memberships): one row per
# order of a member, recomputed whole from the order each time one of its events is delivered, so a
# redelivered event rewrites the same row.
order_facts = sa.Table(
    "fusion_order_facts",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),
    # The member the order counts for now: the survivor, once the member who placed it was merged.
    sa.Column("member_id", sa.String(64), nullable=False, index=True),
    sa.Column("placed_by", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sale", sa.Boolean, nullable=False),
    sa.Column("spend", sa.BigInteger, nullable=False),
    sa.Column("units", sa.BigInteger, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    # [{sku, units, spend, points}] in line order: category filters read the catalog at evaluation time.
    sa.Column("lines", sa.JSON, nullable=False),
)

# Each member's answer for each segment as of ``evaluated_at``; it stands until ``fresh_until`` (when
# time alone could change it, as a window slides) or until the segment's definition changes.
segment_answers = sa.Table(
    "fusion_segment_members",
    metadata,
    sa.Column("segment", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("definition", sa.String(64), nullable=False),
    sa.Column("member", sa.Boolean, nullable=False),
    # When the answer last changed (first evaluation included).
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fresh_until", sa.DateTime(timezone=True)),
)

# One row, "store": locked by whoever writes facts or memberships, so a rebuild and the listener never
# interleave; ``rebuilt_at`` is null while the store has not been built over data older than it.
segment_store = sa.Table(
    "fusion_segment_store",
    metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("needs_rebuild", sa.Boolean, nullable=False),
    sa.Column("rebuilt_at", sa.DateTime(timezone=True)),
)


def _segment_store(connection: sa.Connection) -> None:
    for table in (order_facts, segment_answers, segment_store):
        table.create(connection, checkfirst=True)
    # A database that already holds a timeline was written before the store existed: until a rebuild
    # fills it, segments are computed from the orders and signals themselves.
    had_history = connection.execute(sa.select(timeline.c.id).limit(1)).first() is not None
    connection.execute(segment_store.insert().values(name="store", needs_rebuild=had_history, rebuilt_at=None))


# Campaigns (fusion/campaigns.py): which arm each member reached was drawn into, once and for good, and the
# message each treated member was sent. Sends are what frequency caps count, across campaigns.
campaign_members = sa.Table(
    "fusion_campaign_members",
    metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("arm", sa.String(16), nullable=False),  # treated | holdout
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
)

campaign_sends = sa.Table(
    "fusion_campaign_sends",
    metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("medium", sa.String(32), nullable=False),
    sa.Column("block", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reference", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    # A failed send is tried again by a later run, under a new key: the block's idempotency answers a
    # replayed attempt with its first delivery.
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("fusion_campaign_sends_member_time", "member_id", "sent_at"),
)

# One row per member ever messaged: a send locks it, so two campaigns running at once cannot both pass a
# member's frequency cap.
reach_members = sa.Table(
    "fusion_reach_members",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    sa.Column("sent", sa.Integer, nullable=False),
)

# A member's consents, one row per grant or withdrawal, never updated: the history is the record a regulator
# asks for. The latest row per (member, purpose, medium) is the consent now.
consents = sa.Table(
    "fusion_consents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("member_id", sa.String(64), nullable=False, index=True),
    sa.Column("purpose", sa.String(32), nullable=False),  # marketing | profiling | sharing
    sa.Column("medium", sa.String(32), nullable=False),  # a reach medium, or "any"
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# Aggregates kept as events arrive (retailblocks.fusion.aggregates), so profiles, campaign reports and
# settlements read in time independent of the order history. Each row is a pure function of its sources
# (a member's order facts, an order, a campaign member's facts), recomputed whole when one of its events is
# delivered, so a redelivered event writes the same row; the sums over rows are moved by the difference
# between the row before and after, so they too are unchanged by a replay.

# One row per known member (canonical id): what their order facts sum to.
member_totals = sa.Table(
    "fusion_member_totals",
    metadata,
    sa.Column("member_id", sa.String(64), primary_key=True),
    # Every id the member's orders were placed under (more than one after a merge), the member's included.
    sa.Column("aliases", sa.JSON, nullable=False),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("spend", sa.BigInteger, nullable=False),
    sa.Column("first_purchase", sa.DateTime(timezone=True)),
    sa.Column("last_purchase", sa.DateTime(timezone=True)),
    sa.Column("channel_mix", sa.JSON, nullable=False),
    sa.Column("skus", sa.JSON, nullable=False),
)

# Every settlement line an order makes with each partner (funded discount, clawback per refund,
# marketplace sale), dated as the settlement dates it: a settlement reads one period's lines by index.
settlement_items = sa.Table(
    "fusion_settlement_items",
    metadata,
    sa.Column("partner", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("reference", sa.String(200), primary_key=True),
    sa.Column("order_id", sa.String(64), nullable=False, index=True),
    sa.Column("member_id", sa.String(64)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("fusion_settlement_items_period", "partner", "at"),
)

# Every order (a sale) that used a campaign's coupon, and what it brought.
campaign_orders = sa.Table(
    "fusion_campaign_orders",
    metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("order_id", sa.String(64), primary_key=True, index=True),
    sa.Column("member_id", sa.String(64)),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("coupon", sa.String(64), nullable=False),
    sa.Column("revenue", sa.BigInteger, nullable=False),
    sa.Column("discount", sa.JSON, nullable=False),  # {funder: minor units}
    sa.Index("fusion_campaign_orders_listing", "campaign", "placed_at", "order_id"),
)

# Per campaign: "" holds the redemptions (count) and their revenue (amount); "funder:<id>" the discount a
# funder gave (amount) over how many orders (count).
campaign_totals = sa.Table(
    "fusion_campaign_totals",
    metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
)

# Each member drawn into a campaign's arm: their sales (placed under their id) from the draw to the
# campaign's end, as the uplift counts them.
campaign_results = sa.Table(
    "fusion_campaign_results",
    metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("member_id", sa.String(64), primary_key=True, index=True),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("revenue", sa.BigInteger, nullable=False),
    sa.Column("bought", sa.Boolean, nullable=False),
)

# The sums the uplift is computed from, per campaign and arm. The sum of squares can pass 2**63, so it is
# kept exactly as decimal text and moved in Python under the store's lock.
campaign_arms = sa.Table(
    "fusion_campaign_arms",
    metadata,
    sa.Column("campaign", sa.String(64), primary_key=True),
    sa.Column("arm", sa.String(16), primary_key=True),
    sa.Column("members", sa.BigInteger, nullable=False),
    sa.Column("buyers", sa.BigInteger, nullable=False),
    sa.Column("revenue", sa.BigInteger, nullable=False),
    sa.Column("revenue_squares", sa.String(80), nullable=False),
)

# One row, "aggregates": ``needs_rebuild`` while the aggregates were not built over the data they sum (a
# database upgraded with history), ``digest`` the manifest they were built under (partners' refund policies,
# the channels marketplaces collect on, campaigns' ends): under another, reads compute from the raw data.
aggregate_store = sa.Table(
    "fusion_aggregate_store",
    metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("needs_rebuild", sa.Boolean, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("rebuilt_at", sa.DateTime(timezone=True)),
)

AGGREGATE_TABLES = (
    member_totals,
    settlement_items,
    campaign_orders,
    campaign_totals,
    campaign_results,
    campaign_arms,
    aggregate_store,
)


#: A member's signals counted without reading their whole timeline (a profile counts them at read time).
timeline_signals = sa.Index("fusion_timeline_member_source", timeline.c.member_id, timeline.c.source)


def _aggregates(connection: sa.Connection) -> None:
    for table in AGGREGATE_TABLES:
        table.create(connection, checkfirst=True)
    timeline_signals.create(connection, checkfirst=True)
    had_history = connection.execute(sa.select(timeline.c.id).limit(1)).first() is not None
    connection.execute(aggregate_store.insert().values(name="aggregates", needs_rebuild=had_history, digest=""))


MIGRATIONS: list[Migration] = [
    create_tables(1, "member timeline and campaign coupons", timeline, campaign_coupons),
    create_tables(2, "partner statements and their lines", statements, statement_lines),
    Migration(
        3,
        "order facts and segment memberships, kept as events arrive",
        _segment_store,
        tuple(table.name for table in (order_facts, segment_answers, segment_store)),
    ),
    create_tables(
        4, "campaign arms, campaign messages and members messaged", campaign_members, campaign_sends, reach_members
    ),
    create_tables(5, "members' consents per purpose and medium, with their history", consents),
    Migration(
        6,
        "member totals, settlement lines and campaign results, kept as events arrive",
        _aggregates,
        tuple(table.name for table in AGGREGATE_TABLES),
    ),
]


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
