"""Statements on stock balances: each change is a conditional UPDATE whose row count says it held.

Callers touch rows in a fixed order — reservation rows, then allocation rows, then level rows sorted
by (SKU, location), then back-order rows sorted by SKU — so concurrent transactions on PostgreSQL
queue behind each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import attrs
import sqlalchemy as sa

from retailblocks.errors import InvalidValue
from retailblocks.model import StockLevel
from retailblocks_sql_inventory.sql import aware, insert_if_absent
from retailblocks_sql_inventory.tables import allocations, backorders, levels, movements

Pair = tuple[str, str]  # (sku, location)


@attrs.frozen
class Movement:
    """One row of the ledger: a signed change of on hand at one location."""

    id: int
    sku: str
    location: str
    delta: int
    kind: str
    reason: str
    order_id: str | None
    key: str
    at: datetime


def _level(sku: str, location: str) -> sa.ColumnElement[bool]:
    return sa.and_(levels.c.sku == sku, levels.c.location == location)


def _available() -> sa.ColumnElement[int]:
    return levels.c.on_hand - levels.c.reserved - levels.c.allocated


def ensure_level(connection: sa.Connection, sku: str, location: str) -> None:
    insert_if_absent(
        connection,
        levels,
        {"sku": sku, "location": location, "on_hand": 0, "reserved": 0, "allocated": 0},
    )


def read_available(connection: sa.Connection, skus: Iterable[str], locations: Iterable[str]) -> dict[Pair, int]:
    """Availability before safety stock per (SKU, location); a snapshot, for planning only."""
    rows = connection.execute(
        sa.select(levels.c.sku, levels.c.location, _available().label("available")).where(
            levels.c.sku.in_(list(skus)), levels.c.location.in_(list(locations))
        )
    )
    return {(row.sku, row.location): int(row.available) for row in rows}


def read_outstanding(connection: sa.Connection, skus: Iterable[str]) -> dict[str, int]:
    rows = connection.execute(
        sa.select(backorders.c.sku, backorders.c.outstanding).where(backorders.c.sku.in_(list(skus)))
    )
    return {row.sku: int(row.outstanding) for row in rows}


def take(
    connection: sa.Connection,
    sku: str,
    location: str,
    *,
    units: int,
    from_stock: int,
    safety: int,
    column: str,
) -> bool:
    """Add ``units`` to ``column`` (reserved or allocated) if ``from_stock`` of them are available
    after ``safety``; the rest are back-ordered and need no stock. False when the stock is gone."""
    if from_stock > 0:
        where = sa.and_(_level(sku, location), _available() - safety >= from_stock)
    else:
        ensure_level(connection, sku, location)
        where = _level(sku, location)
    target = levels.c[column]
    result = connection.execute(levels.update().where(where).values({target: target + units}))
    return result.rowcount == 1


def shift(connection: sa.Connection, sku: str, location: str, **deltas: int) -> None:
    """Move units between the columns of one level row by signed ``deltas`` that the caller holds
    (its own reservation or allocation), so no availability condition applies; the table's CHECK
    constraint is the backstop against a bug making a column negative."""
    values = {levels.c[name]: levels.c[name] + delta for name, delta in deltas.items() if delta}
    if values:
        connection.execute(levels.update().where(_level(sku, location)).values(values))


def ship(connection: sa.Connection, sku: str, location: str, units: int) -> None:
    """Allocated units leave: on hand and allocated both fall, if the units are physically there."""
    result = connection.execute(
        levels.update()
        .where(_level(sku, location), levels.c.on_hand >= units, levels.c.allocated >= units)
        .values(on_hand=levels.c.on_hand - units, allocated=levels.c.allocated - units)
    )
    if result.rowcount != 1:
        level = read_level(connection, sku, location)
        raise InvalidValue(
            f"cannot ship {units} units of {sku!r} from {location!r}: only {level.on_hand} on hand "
            "(receive the back-ordered units first)"
        )


def change_on_hand(connection: sa.Connection, sku: str, location: str, delta: int) -> int:
    """Add ``delta`` to on hand, never below what is reserved and allocated; returns on hand."""
    ensure_level(connection, sku, location)
    where = _level(sku, location)
    if delta < 0:
        where = sa.and_(where, levels.c.on_hand + delta >= levels.c.reserved + levels.c.allocated)
    result = connection.execute(levels.update().where(where).values(on_hand=levels.c.on_hand + delta))
    level = read_level(connection, sku, location)
    if result.rowcount != 1:
        held = level.reserved + level.allocated
        raise InvalidValue(
            f"cannot remove {-delta} units of {sku!r} at {location!r}: {level.on_hand} on hand, "
            f"of which {min(held, level.on_hand)} are reserved or allocated (at most "
            f"{max(0, level.on_hand - held)} can be removed)"
        )
    return level.on_hand


def read_level(connection: sa.Connection, sku: str, location: str, *, lock: bool = False) -> StockLevel:
    query = sa.select(levels).where(_level(sku, location))
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        return StockLevel(sku, location, 0, 0, 0)
    return StockLevel(sku, location, row.on_hand, row.reserved, row.allocated)


def read_levels(connection: sa.Connection, skus: Iterable[str] = (), locations: Iterable[str] = ()) -> list[StockLevel]:
    query = sa.select(levels).order_by(levels.c.sku, levels.c.location)
    skus, locations = list(skus), list(locations)
    if skus:
        query = query.where(levels.c.sku.in_(skus))
    if locations:
        query = query.where(levels.c.location.in_(locations))
    return [
        StockLevel(row.sku, row.location, row.on_hand, row.reserved, row.allocated) for row in connection.execute(query)
    ]


def add_backorders(connection: sa.Connection, units: Mapping[str, int], limits: Mapping[str, int]) -> bool:
    """Count ``units`` more back-ordered units per SKU, within each SKU's allowance; False if one
    would exceed it (a concurrent checkout took the room)."""
    for sku in sorted(units):
        if units[sku] <= 0:
            continue
        insert_if_absent(connection, backorders, {"sku": sku, "outstanding": 0})
        result = connection.execute(
            backorders.update()
            .where(
                backorders.c.sku == sku,
                backorders.c.outstanding + units[sku] <= limits.get(sku, 0),
            )
            .values(outstanding=backorders.c.outstanding + units[sku])
        )
        if result.rowcount != 1:
            return False
    return True


def settle_backorders(connection: sa.Connection, units: Mapping[str, int]) -> None:
    """Back-ordered units that shipped, were released or came back no longer count."""
    for sku in sorted(units):
        if units[sku] > 0:
            connection.execute(
                backorders.update()
                .where(backorders.c.sku == sku)
                .values(outstanding=backorders.c.outstanding - units[sku])
            )


def record_movement(
    connection: sa.Connection,
    *,
    sku: str,
    location: str,
    delta: int,
    kind: str,
    reason: str,
    key: str,
    at: datetime,
    order_id: str | None = None,
) -> None:
    connection.execute(
        movements.insert().values(
            sku=sku,
            location=location,
            delta=delta,
            kind=kind,
            reason=reason,
            order_id=order_id,
            key=key,
            at=at,
        )
    )


def read_movements(connection: sa.Connection, skus: Iterable[str] = (), *, limit: int | None = None) -> list[Movement]:
    query = sa.select(movements).order_by(movements.c.id)
    skus = list(skus)
    if skus:
        query = query.where(movements.c.sku.in_(skus))
    if limit is not None:
        query = query.order_by(None).order_by(movements.c.id.desc()).limit(limit)
    rows = list(connection.execute(query))
    if limit is not None:
        rows.reverse()
    return [
        Movement(
            row.id,
            row.sku,
            row.location,
            row.delta,
            row.kind,
            row.reason,
            row.order_id,
            row.key,
            aware(row.at),
        )
        for row in rows
    ]


@attrs.frozen
class Held:
    """Units of one order per SKU and location: allocated (some back-ordered), shipped, returned."""

    allocated: int
    backordered: int
    fulfilled: int
    returned: int


def lock_allocation(connection: sa.Connection, order_id: str, sku: str, location: str) -> Held | None:
    row = connection.execute(
        sa.select(
            allocations.c.allocated,
            allocations.c.backordered,
            allocations.c.fulfilled,
            allocations.c.returned,
        )
        .where(
            allocations.c.order_id == order_id,
            allocations.c.sku == sku,
            allocations.c.location == location,
        )
        .with_for_update()
    ).first()
    return None if row is None else Held(*(int(value) for value in row))


def change_allocation(connection: sa.Connection, order_id: str, sku: str, location: str, **deltas: int) -> None:
    insert_if_absent(
        connection,
        allocations,
        {
            "order_id": order_id,
            "sku": sku,
            "location": location,
            "allocated": 0,
            "backordered": 0,
            "fulfilled": 0,
            "returned": 0,
        },
    )
    values = {allocations.c[name]: allocations.c[name] + delta for name, delta in deltas.items() if delta}
    if values:
        connection.execute(
            allocations.update()
            .where(
                allocations.c.order_id == order_id,
                allocations.c.sku == sku,
                allocations.c.location == location,
            )
            .values(values)
        )
