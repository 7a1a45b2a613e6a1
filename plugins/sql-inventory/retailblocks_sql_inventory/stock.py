"""Statements on stock balances: each change is a conditional UPDATE whose row count says it held.

Callers touch rows in a fixed order — reservation rows, then allocation rows, then level rows sorted
by (SKU, location), then back-order rows sorted by SKU — so concurrent transactions on PostgreSQL
queue behind each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from retailblocks.clock import as_utc
from retailblocks.errors import InvalidValue
from retailblocks.model import StockLevel
from retailblocks.model.limits import MAX_QUANTITY
from retailblocks.storage import InsertIfAbsent, Prepared, PreparedQuery
from retailblocks_sql_inventory.tables import allocations, backorders, levels, movements

Pair = tuple[str, str]  # (sku, location)
ALLOCATION_COLUMNS = ("allocated", "backordered", "fulfilled", "returned")


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


# A constant written into the SQL: a plain 0 in ``.values()`` would become a bound parameter that every
# caller of a Prepared statement would have to pass.
_ZERO = sa.literal_column("0", sa.Integer)
_AVAILABLE = levels.c.on_hand - levels.c.reserved - levels.c.allocated
_THIS_LEVEL = sa.and_(levels.c.sku == sa.bindparam("sku"), levels.c.location == sa.bindparam("location"))

# Every statement of the checkout path is built once, at import (docs/block-storage.md says why): writes
# through Prepared, reads as plain statements with bound parameters, whose compiled form SQLAlchemy caches.

_READ_AVAILABLE = PreparedQuery(
    sa.select(levels.c.sku, levels.c.location, _AVAILABLE.label("available")).where(
        levels.c.sku.in_(sa.bindparam("skus", expanding=True)),
        levels.c.location.in_(sa.bindparam("locations", expanding=True)),
    )
)
_READ_OUTSTANDING = PreparedQuery(
    sa.select(backorders.c.sku, backorders.c.outstanding).where(
        backorders.c.sku.in_(sa.bindparam("skus", expanding=True))
    )
)
_LEVEL_SELECT = sa.select(levels.c.on_hand, levels.c.reserved, levels.c.allocated).where(_THIS_LEVEL)
_READ_LEVEL = PreparedQuery(_LEVEL_SELECT)
_LOCK_LEVEL = PreparedQuery(_LEVEL_SELECT.with_for_update())

# A level or back-order row made on first use: insert-if-absent (retailblocks.storage), on either database.
_ENSURE_LEVEL = InsertIfAbsent(levels, ("sku", "location", "on_hand", "reserved", "allocated"))
#: Units into ``reserved`` or ``allocated`` if ``from_stock`` of them are available after safety stock.
_TAKE_FROM_STOCK = {
    column: Prepared(
        levels.update()
        .where(_THIS_LEVEL, _AVAILABLE - sa.bindparam("safety") >= sa.bindparam("from_stock"))
        .values({levels.c[column]: levels.c[column] + sa.bindparam("units")})
    )
    for column in ("reserved", "allocated")
}
#: The same without the availability condition: every unit is back-ordered.
_TAKE_BACKORDERED = {
    column: Prepared(
        levels.update().where(_THIS_LEVEL).values({levels.c[column]: levels.c[column] + sa.bindparam("units")})
    )
    for column in ("reserved", "allocated")
}
# One statement for every shift: a column that does not move is written with + 0, which changes nothing
# and saves a statement per combination of columns.
_SHIFT = Prepared(
    levels.update()
    .where(_THIS_LEVEL)
    .values(
        on_hand=levels.c.on_hand + sa.bindparam("on_hand"),
        reserved=levels.c.reserved + sa.bindparam("reserved"),
        allocated=levels.c.allocated + sa.bindparam("allocated"),
    )
)
_SHIP = Prepared(
    levels.update()
    .where(_THIS_LEVEL, levels.c.on_hand >= sa.bindparam("units"), levels.c.allocated >= sa.bindparam("units"))
    .values(
        on_hand=levels.c.on_hand - sa.bindparam("units"),
        allocated=levels.c.allocated - sa.bindparam("units"),
    )
)
# The bound is a condition of the update itself, so two concurrent receipts cannot both pass a check made
# on a stale read; written as on_hand <= MAX - delta, the sum is never computed past it.
_ADD_ON_HAND = Prepared(
    levels.update()
    .where(_THIS_LEVEL, levels.c.on_hand <= sa.literal_column(str(MAX_QUANTITY), sa.BigInteger) - sa.bindparam("delta"))
    .values(on_hand=levels.c.on_hand + sa.bindparam("delta"))
)
_REMOVE_ON_HAND = Prepared(
    levels.update()
    .where(_THIS_LEVEL, levels.c.on_hand + sa.bindparam("delta") >= levels.c.reserved + levels.c.allocated)
    .values(on_hand=levels.c.on_hand + sa.bindparam("delta"))
)
_ENSURE_BACKORDERS = InsertIfAbsent(backorders, ("sku", "outstanding"))
_ADD_BACKORDERS = Prepared(
    backorders.update()
    .where(
        backorders.c.sku == sa.bindparam("sku"),
        backorders.c.outstanding + sa.bindparam("units") <= sa.bindparam("limit"),
    )
    .values(outstanding=backorders.c.outstanding + sa.bindparam("units"))
)
_SETTLE_BACKORDERS = Prepared(
    backorders.update()
    .where(backorders.c.sku == sa.bindparam("sku"))
    .values(outstanding=backorders.c.outstanding - sa.bindparam("units"))
)
_RECORD_MOVEMENT = Prepared(
    movements.insert().values(
        {name: sa.bindparam(name) for name in ("sku", "location", "delta", "kind", "reason", "order_id", "key", "at")}
    )
)
_THIS_ALLOCATION = sa.and_(
    allocations.c.order_id == sa.bindparam("order_id"),
    allocations.c.sku == sa.bindparam("sku"),
    allocations.c.location == sa.bindparam("location"),
)
# Every allocation row of one order, locked in one statement in a fixed order (a shipment moves several).
_LOCK_ORDER_ALLOCATIONS = PreparedQuery(
    sa.select(
        allocations.c.sku,
        allocations.c.location,
        allocations.c.allocated,
        allocations.c.backordered,
        allocations.c.fulfilled,
        allocations.c.returned,
    )
    .where(allocations.c.order_id == sa.bindparam("order_id"))
    .order_by(allocations.c.sku, allocations.c.location)
    .with_for_update()
)
_LOCK_ALLOCATION = PreparedQuery(
    sa.select(allocations.c.allocated, allocations.c.backordered, allocations.c.fulfilled, allocations.c.returned)
    .where(_THIS_ALLOCATION)
    .with_for_update()
)
# Allocating adds to the order's row, creating it on first use: one upsert instead of an insert-if-absent
# and an update. Only for units added: PostgreSQL checks the proposed row's CHECK constraint before it
# detects the conflict, so negative values must go through _CHANGE_ALLOCATION on the existing row.
_allocate_insert = postgresql.insert(allocations).values(
    order_id=sa.bindparam("order_id"),
    sku=sa.bindparam("sku"),
    location=sa.bindparam("location"),
    allocated=sa.bindparam("allocated"),
    backordered=sa.bindparam("backordered"),
    fulfilled=_ZERO,
    returned=_ZERO,
)
_ALLOCATE = Prepared(
    _allocate_insert.on_conflict_do_update(
        index_elements=list(allocations.primary_key.columns),
        set_={
            "allocated": allocations.c.allocated + _allocate_insert.excluded.allocated,
            "backordered": allocations.c.backordered + _allocate_insert.excluded.backordered,
        },
    )
)
_CHANGE_ALLOCATION = Prepared(
    allocations.update()
    .where(_THIS_ALLOCATION)
    .values({name: allocations.c[name] + sa.bindparam(name) for name in ALLOCATION_COLUMNS})
)


def ensure_level(connection: sa.Connection, sku: str, location: str) -> None:
    _ENSURE_LEVEL(connection, {"sku": sku, "location": location, "on_hand": 0, "reserved": 0, "allocated": 0})


def read_available(connection: sa.Connection, skus: Iterable[str], locations: Iterable[str]) -> dict[Pair, int]:
    """Availability before safety stock per (SKU, location); a snapshot, for planning only."""
    rows = _READ_AVAILABLE.all(connection, skus=list(skus), locations=list(locations))
    return {(sku, location): int(available) for sku, location, available in rows}


def read_outstanding(connection: sa.Connection, skus: Iterable[str]) -> dict[str, int]:
    rows = _READ_OUTSTANDING.all(connection, skus=list(skus))
    return {sku: int(outstanding) for sku, outstanding in rows}


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
        changed = _TAKE_FROM_STOCK[column].execute(
            connection, sku=sku, location=location, units=units, from_stock=from_stock, safety=safety
        )
    else:
        ensure_level(connection, sku, location)
        changed = _TAKE_BACKORDERED[column].execute(connection, sku=sku, location=location, units=units)
    return changed == 1


def shift_values(sku: str, location: str, *, on_hand: int = 0, reserved: int = 0, allocated: int = 0) -> dict[str, Any]:
    """The parameters of one :func:`shift`, for :func:`shift_many`."""
    return {"sku": sku, "location": location, "on_hand": on_hand, "reserved": reserved, "allocated": allocated}


def shift(connection: sa.Connection, sku: str, location: str, **deltas: int) -> None:
    """Move units between the columns of one level row by signed ``deltas`` that the caller holds
    (its own reservation or allocation), so no availability condition applies; the table's CHECK
    constraint is the backstop against a bug making a column negative."""
    if any(deltas.values()):
        _SHIFT.execute(connection, shift_values(sku, location, **deltas))


def shift_many(connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Several :func:`shift` calls (rows from :func:`shift_values`) in one driver call, in the given order."""
    _SHIFT.execute_many(connection, rows)


def ship(connection: sa.Connection, sku: str, location: str, units: int) -> None:
    """Allocated units leave: on hand and allocated both fall, if the units are physically there."""
    if _SHIP.execute(connection, sku=sku, location=location, units=units) != 1:
        level = read_level(connection, sku, location)
        raise InvalidValue(
            f"cannot ship {units} units of {sku!r} from {location!r}: only {level.on_hand} on hand "
            "(receive the back-ordered units first)"
        )


def change_on_hand(connection: sa.Connection, sku: str, location: str, delta: int) -> int:
    """Add ``delta`` to on hand, never below what is reserved and allocated nor above MAX_QUANTITY;
    returns on hand."""
    ensure_level(connection, sku, location)
    statement = _REMOVE_ON_HAND if delta < 0 else _ADD_ON_HAND
    changed = statement.execute(connection, sku=sku, location=location, delta=delta)
    level = read_level(connection, sku, location)
    if changed != 1 and delta > 0:
        raise InvalidValue(
            f"cannot add {delta} units of {sku!r} at {location!r}: {level.on_hand} on hand, and a stock "
            f"position may hold at most {MAX_QUANTITY} units (at most {MAX_QUANTITY - level.on_hand} more)"
        )
    if changed != 1:
        held = level.reserved + level.allocated
        raise InvalidValue(
            f"cannot remove {-delta} units of {sku!r} at {location!r}: {level.on_hand} on hand, "
            f"of which {min(held, level.on_hand)} are reserved or allocated (at most "
            f"{max(0, level.on_hand - held)} can be removed)"
        )
    return level.on_hand


def read_level(connection: sa.Connection, sku: str, location: str, *, lock: bool = False) -> StockLevel:
    row = (_LOCK_LEVEL if lock else _READ_LEVEL).first(connection, sku=sku, location=location)
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
    """Count ``units`` more back-ordered units per SKU, within each SKU's allowance; all or nothing: False
    (and nothing counted) if one would exceed it (a concurrent checkout took the room)."""
    added: dict[str, int] = {}
    for sku in sorted(units):
        if units[sku] <= 0:
            continue
        _ENSURE_BACKORDERS(connection, {"sku": sku, "outstanding": 0})
        if _ADD_BACKORDERS.execute(connection, sku=sku, units=units[sku], limit=limits.get(sku, 0)) != 1:
            settle_backorders(connection, added)
            return False
        added[sku] = units[sku]
    return True


def settle_backorders(connection: sa.Connection, units: Mapping[str, int]) -> None:
    """Back-ordered units that shipped, were released or came back no longer count."""
    for sku in sorted(units):
        if units[sku] > 0:
            _SETTLE_BACKORDERS.execute(connection, sku=sku, units=units[sku])


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
    _RECORD_MOVEMENT.execute(
        connection,
        sku=sku,
        location=location,
        delta=delta,
        kind=kind,
        reason=reason,
        order_id=order_id,
        key=key,
        at=at,
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
            as_utc(row.at),
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
    row = _LOCK_ALLOCATION.first(connection, order_id=order_id, sku=sku, location=location)
    return None if row is None else Held(*(int(value) for value in row))


def lock_allocations(connection: sa.Connection, order_id: str) -> dict[Pair, Held]:
    """Every allocation row of ``order_id``, locked, by (SKU, location)."""
    return {
        (row[0], row[1]): Held(*(int(value) for value in row[2:]))
        for row in _LOCK_ORDER_ALLOCATIONS.all(connection, order_id=order_id)
    }


def change_allocations(connection: sa.Connection, order_id: str, changes: Mapping[Pair, Mapping[str, int]]) -> None:
    """:func:`change_allocation` for several rows the caller has locked, in one driver call."""
    rows = [
        {"order_id": order_id, "sku": sku, "location": location, **{n: deltas.get(n, 0) for n in ALLOCATION_COLUMNS}}
        for (sku, location), deltas in changes.items()
        if any(deltas.values())
    ]
    _CHANGE_ALLOCATION.execute_many(connection, rows)


def ship_many(connection: sa.Connection, units: Mapping[Pair, int]) -> None:
    """:func:`ship` for units none of which is back-ordered, in one driver call.

    Units that were allocated from stock are on hand (no adjustment may take on hand below what is
    reserved and allocated), so every row matches; if one does not, nothing of the shipment stands.
    """
    rows = [{"sku": sku, "location": location, "units": quantity} for (sku, location), quantity in units.items()]
    if _SHIP.execute_many(connection, rows) != len(rows):
        listed = ", ".join(f"{quantity} of {sku!r} at {location!r}" for (sku, location), quantity in units.items())
        raise InvalidValue(f"cannot ship {listed}: on hand or allocated no longer covers every line")


def record_movements(connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """:func:`record_movement` for several rows (the same keys), in one driver call."""
    _RECORD_MOVEMENT.execute_many(connection, rows)


def allocation_values(order_id: str, sku: str, location: str, *, allocated: int, backordered: int) -> dict[str, Any]:
    """The parameters of one :func:`allocate_many` row."""
    return {"order_id": order_id, "sku": sku, "location": location, "allocated": allocated, "backordered": backordered}


def allocate_many(connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add allocated (and back-ordered) units to orders' rows, creating them; one driver call, in order."""
    _ALLOCATE.execute_many(connection, rows)


def change_allocation(connection: sa.Connection, order_id: str, sku: str, location: str, **deltas: int) -> None:
    """Move the units of an allocation row the caller has locked (:func:`lock_allocation` found it)."""
    if any(deltas.values()):
        values = {name: deltas.get(name, 0) for name in ALLOCATION_COLUMNS}
        _CHANGE_ALLOCATION.execute(connection, values, order_id=order_id, sku=sku, location=location)
