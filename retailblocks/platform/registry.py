"""The platform's own table: each merchant's live status, read by every serving worker.

A pause, a resume or a merchant added is one row written here; workers read the table (with a short
cache, see retailblocks.platform.runtime) and so see it without a restart. On PostgreSQL the table is in
the ``rb_platform`` schema of the platform's first database; on SQLite in ``_platform.db`` of its directory.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from retailblocks.platform.manifest import MerchantStatus

SCHEMA = "rb_platform"

merchants = sa.Table(
    "merchants",
    sa.MetaData(),
    sa.Column("merchant_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    schema=SCHEMA,
)


def _on(engine: sa.Engine) -> sa.Engine:
    # SQLite has no schemas: the table lives in a file of its own there.
    if engine.dialect.name == "sqlite":
        return engine.execution_options(schema_translate_map={SCHEMA: None})
    return engine


def create(engine: sa.Engine) -> None:
    merchants.create(_on(engine), checkfirst=True)


def statuses(engine: sa.Engine) -> dict[str, MerchantStatus]:
    """Every registered merchant's status."""
    with _on(engine).connect() as connection:
        rows = connection.execute(sa.select(merchants.c.merchant_id, merchants.c.status)).all()
        connection.rollback()
    return {str(row.merchant_id): MerchantStatus(row.status) for row in rows}


def register(engine: sa.Engine, merchant_id: str, status: MerchantStatus, at: datetime) -> MerchantStatus:
    """Register a merchant with ``status`` unless it already is; returns the status it has now."""
    with _on(engine).begin() as connection:
        found = connection.execute(
            sa.select(merchants.c.status).where(merchants.c.merchant_id == merchant_id).with_for_update()
        ).scalar()
        if found is not None:
            return MerchantStatus(found)
        if connection.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            connection.execute(
                insert(merchants)
                .values(merchant_id=merchant_id, status=status.value, updated_at=at)
                .on_conflict_do_nothing()
            )
        else:
            connection.execute(
                merchants.insert()
                .prefix_with("OR IGNORE")
                .values(merchant_id=merchant_id, status=status.value, updated_at=at)
            )
        found = connection.execute(
            sa.select(merchants.c.status).where(merchants.c.merchant_id == merchant_id)
        ).scalar_one()
    return MerchantStatus(found)


def set_status(engine: sa.Engine, merchant_id: str, status: MerchantStatus, at: datetime) -> bool:
    """Set a registered merchant's status; False when it is not registered."""
    with _on(engine).begin() as connection:
        changed = connection.execute(
            merchants.update().where(merchants.c.merchant_id == merchant_id).values(status=status.value, updated_at=at)
        ).rowcount
    return bool(changed)


def remove(engine: sa.Engine, merchant_id: str) -> None:
    with _on(engine).begin() as connection:
        connection.execute(merchants.delete().where(merchants.c.merchant_id == merchant_id))
