"""The platform's own table: each merchant's live status, read by every serving worker.

A pause, a resume or a merchant added is one row written here; workers read the table (with a short
cache, see retailblocks.platform.runtime) and so see it without a restart. On PostgreSQL the table is in
the ``rb_platform`` schema of the platform's first database; on SQLite in ``_platform.db`` of its directory.
"""

from __future__ import annotations

from datetime import datetime

import attrs
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

#: Where each merchant lives when it was moved (``blocks platform move``), overriding ``database:`` of
#: ``platform.yaml``, and the move under way if any: ``moving_to`` set while the merchant's rows are copied
#: (``database`` still the source; ``status_before`` is the status to give back once the move has paused
#: it); ``moved_from`` set once switched, until the source storage is dropped.
#: A table of its own (not columns of ``merchants``) so a platform assembled before moves existed needs no
#: ALTER: it is created when first needed.
placements = sa.Table(
    "placements",
    sa.MetaData(),
    sa.Column("merchant_id", sa.String(64), primary_key=True),
    sa.Column("database", sa.String(64), nullable=False),
    sa.Column("moving_to", sa.String(64), nullable=True),
    sa.Column("moved_from", sa.String(64), nullable=True),
    sa.Column("status_before", sa.String(16), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    schema=SCHEMA,
)


def _on(engine: sa.Engine) -> sa.Engine:
    # SQLite has no schemas: the table lives in a file of its own there.
    if engine.dialect.name == "sqlite":
        return engine.execution_options(schema_translate_map={SCHEMA: None})
    return engine


on_home = _on


def create(engine: sa.Engine) -> None:
    with _on(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several assemblers (threads or processes) may open the platform at once: one creates the tables.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('rb_platform'))"))
        merchants.create(connection, checkfirst=True)
        placements.create(connection, checkfirst=True)


@attrs.frozen
class Placed:
    """A merchant's row of :data:`placements`."""

    database: str
    moving_to: str | None
    moved_from: str | None
    status_before: MerchantStatus | None


def locations(engine: sa.Engine) -> dict[str, Placed]:
    """Every moved (or moving) merchant's placement."""
    with _on(engine).connect() as connection:
        rows = connection.execute(sa.select(placements)).all()
        connection.rollback()
    return {
        str(row.merchant_id): Placed(
            row.database,
            row.moving_to,
            row.moved_from,
            MerchantStatus(row.status_before) if row.status_before else None,
        )
        for row in rows
    }


def begin_move(
    engine: sa.Engine, merchant_id: str, source: str, target: str, at: datetime, *, pause: bool = True
) -> tuple[MerchantStatus, Placed | None]:
    """Record the move towards ``target`` (one transaction), unless a move is already recorded; with
    ``pause`` the merchant is also marked ``moving`` (an online move pauses it later, see :func:`pause_move`).

    Returns the merchant's status and its placement row as they were: the caller decides from them whether
    this is a new move or a move to finish."""
    with _on(engine).begin() as connection:
        status = connection.execute(
            sa.select(merchants.c.status).where(merchants.c.merchant_id == merchant_id).with_for_update()
        ).scalar()
        if status is None:
            raise LookupError(merchant_id)
        row = connection.execute(
            sa.select(placements).where(placements.c.merchant_id == merchant_id).with_for_update()
        ).first()
        placed = (
            None
            if row is None
            else Placed(
                row.database,
                row.moving_to,
                row.moved_from,
                MerchantStatus(row.status_before) if row.status_before else None,
            )
        )
        if placed is not None and (placed.moving_to or placed.moved_from):
            return MerchantStatus(status), placed
        if source == target:
            return MerchantStatus(status), placed
        values = {"database": source, "moving_to": target, "moved_from": None,
                  "status_before": status if pause else None, "updated_at": at}  # fmt: skip
        if row is None:
            connection.execute(placements.insert().values(merchant_id=merchant_id, **values))
        else:
            connection.execute(placements.update().where(placements.c.merchant_id == merchant_id).values(**values))
        if pause:
            connection.execute(
                merchants.update()
                .where(merchants.c.merchant_id == merchant_id)
                .values(status=MerchantStatus.MOVING.value, updated_at=at)
            )
    return MerchantStatus(status), placed


def pause_move(engine: sa.Engine, merchant_id: str, target: str, at: datetime) -> MerchantStatus:
    """Mark a merchant whose move to ``target`` is recorded ``moving`` (served as paused), remembering the
    status it has now (an operator may have paused or resumed it while its rows were copied); returns that
    status. Already ``moving``: the status remembered then."""
    with _on(engine).begin() as connection:
        status = connection.execute(
            sa.select(merchants.c.status).where(merchants.c.merchant_id == merchant_id).with_for_update()
        ).scalar()
        row = connection.execute(
            sa.select(placements).where(placements.c.merchant_id == merchant_id).with_for_update()
        ).first()
        if status is None or row is None or row.moving_to != target:
            raise LookupError(merchant_id)
        if status == MerchantStatus.MOVING.value:
            return MerchantStatus(row.status_before or MerchantStatus.ACTIVE.value)
        connection.execute(
            placements.update()
            .where(placements.c.merchant_id == merchant_id)
            .values(status_before=status, updated_at=at)
        )
        connection.execute(
            merchants.update()
            .where(merchants.c.merchant_id == merchant_id)
            .values(status=MerchantStatus.MOVING.value, updated_at=at)
        )
    return MerchantStatus(status)


def abandon_move(engine: sa.Engine, merchant_id: str, target: str, at: datetime) -> bool:
    """Forget a move to ``target`` that was not switched: the merchant stays where it lives, with the status
    it had before the move paused it. False (and nothing changed) when no such move is recorded (switched
    already, say): the switch is the commit point and is never undone here."""
    with _on(engine).begin() as connection:
        row = connection.execute(
            sa.select(placements).where(placements.c.merchant_id == merchant_id).with_for_update()
        ).first()
        if row is None or row.moving_to != target:
            return False
        connection.execute(
            placements.update()
            .where(placements.c.merchant_id == merchant_id)
            .values(moving_to=None, status_before=None, updated_at=at)
        )
        connection.execute(
            merchants.update()
            .where(merchants.c.merchant_id == merchant_id, merchants.c.status == MerchantStatus.MOVING.value)
            .values(status=row.status_before or MerchantStatus.ACTIVE.value, updated_at=at)
        )
    return True


def switch(engine: sa.Engine, merchant_id: str, source: str, target: str, status: MerchantStatus, at: datetime) -> None:
    """The commit point of a move: the merchant lives on ``target`` and has ``status`` again, in one
    transaction; ``moved_from`` remembers the source until it is dropped."""
    with _on(engine).begin() as connection:
        connection.execute(
            placements.update()
            .where(placements.c.merchant_id == merchant_id)
            .values(database=target, moving_to=None, moved_from=source, status_before=None, updated_at=at)
        )
        connection.execute(
            merchants.update().where(merchants.c.merchant_id == merchant_id).values(status=status.value, updated_at=at)
        )


def finish_move(engine: sa.Engine, merchant_id: str, at: datetime) -> None:
    """The source storage is dropped: nothing of the move is left to do."""
    with _on(engine).begin() as connection:
        connection.execute(
            placements.update().where(placements.c.merchant_id == merchant_id).values(moved_from=None, updated_at=at)
        )


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
    """Set a registered merchant's status; False when it is not registered (or is being moved)."""
    with _on(engine).begin() as connection:
        changed = connection.execute(
            merchants.update()
            # A move owns the status until it is done: pausing or resuming then would let writes in.
            .where(merchants.c.merchant_id == merchant_id, merchants.c.status != MerchantStatus.MOVING.value)
            .values(status=status.value, updated_at=at)
        ).rowcount
    return bool(changed)


def remove(engine: sa.Engine, merchant_id: str) -> None:
    with _on(engine).begin() as connection:
        connection.execute(merchants.delete().where(merchants.c.merchant_id == merchant_id))
        connection.execute(placements.delete().where(placements.c.merchant_id == merchant_id))
