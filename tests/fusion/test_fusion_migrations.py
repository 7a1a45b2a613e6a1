"""The fusion owner's schema steps: partner statements are version 2 and the segment store version 3, so a
database already at 2 (statements in use) gets the store on its next assembly, marked to be rebuilt when it
already holds a timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from retailblocks.fusion.tables import MIGRATIONS, aggregate_store, segment_store, timeline
from retailblocks.storage import create_engine, migrate
from retailblocks.storage.migrations import SCHEMA_TABLE

SEGMENT_TABLES = {"fusion_order_facts", "fusion_segment_members", "fusion_segment_store"}
AGGREGATE_TABLES = {
    "fusion_member_totals",
    "fusion_settlement_items",
    "fusion_campaign_orders",
    "fusion_campaign_totals",
    "fusion_campaign_results",
    "fusion_campaign_arms",
    "fusion_aggregate_store",
}


def fusion_version(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(SCHEMA_TABLE.c.version).where(SCHEMA_TABLE.c.owner == "fusion")).scalar_one()
        )


def test_the_steps_are_statements_the_segment_store_then_campaign_messages_each_naming_its_tables() -> None:
    assert [(m.version, set(m.tables)) for m in MIGRATIONS] == [
        (1, {"fusion_timeline", "fusion_campaign_coupons"}),
        (2, {"fusion_statements", "fusion_statement_lines"}),
        (3, SEGMENT_TABLES),
        (4, {"fusion_campaign_members", "fusion_campaign_sends", "fusion_reach_members"}),
        (5, {"fusion_consents"}),
        (6, AGGREGATE_TABLES),
    ]


def test_a_database_at_version_2_with_history_gets_the_store_marked_for_a_rebuild(database_url: str) -> None:
    engine = create_engine(database_url)
    assert migrate(engine, {"fusion": MIGRATIONS[:2]}) == {"fusion": (0, 2)}
    with engine.begin() as connection:
        connection.execute(
            timeline.insert().values(
                key="signal:before-the-store",
                kind="social.like",
                detail={},
                source="signal",
                occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
            )
        )
        assert SEGMENT_TABLES.isdisjoint(sa.inspect(connection).get_table_names())
    assert migrate(engine, {"fusion": MIGRATIONS}) == {"fusion": (2, 6)}
    assert fusion_version(engine) == 6
    with engine.connect() as connection:
        assert SEGMENT_TABLES | AGGREGATE_TABLES | {"fusion_statements"} <= set(
            sa.inspect(connection).get_table_names()
        )
        assert connection.execute(sa.select(segment_store.c.needs_rebuild)).scalars().all() == [True]
        # The aggregates too: until rebuilt, profiles, reports and settlements are computed from the orders.
        assert connection.execute(sa.select(aggregate_store.c.needs_rebuild)).scalars().all() == [True]
    engine.dispose()


def test_a_new_database_needs_no_rebuild(database_url: str) -> None:
    engine = create_engine(database_url)
    assert migrate(engine, {"fusion": MIGRATIONS}) == {"fusion": (0, 6)}
    with engine.connect() as connection:
        assert connection.execute(sa.select(segment_store.c.needs_rebuild)).scalars().all() == [False]
        assert connection.execute(sa.select(aggregate_store.c.needs_rebuild)).scalars().all() == [False]
    engine.dispose()
