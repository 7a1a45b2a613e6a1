"""What moves stock on hand: orders shipping and coming back, and operators receiving, adjusting and
counting — each movement written to the ledger, once per key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa

from retailblocks import FlowContext
from retailblocks.errors import InvalidValue
from retailblocks.model import Parcel, ReservedStock, StockLevel
from retailblocks.model.limits import MAX_QUANTITY, check_quantity, check_text
from retailblocks.storage import together
from retailblocks_sql_inventory import stock
from retailblocks_sql_inventory.reservations import COMMITTED
from retailblocks_sql_inventory.rules import StockRules
from retailblocks_sql_inventory.sql import check_key, claim, request_hash, settle
from retailblocks_sql_inventory.stock import Movement, Pair
from retailblocks_sql_inventory.tables import allocations, reservation_lines, reservations

_COMMITTED_LINES = (
    sa.select(reservation_lines.c.sku, reservation_lines.c.quantity)
    .join(reservations, reservations.c.id == reservation_lines.c.reservation_id)
    .where(reservations.c.order_id == sa.bindparam("order_id"), reservations.c.status == COMMITTED)
)
_HELD = sa.select(
    allocations.c.sku, (allocations.c.allocated + allocations.c.fulfilled - allocations.c.returned).label("held")
).where(allocations.c.order_id == sa.bindparam("order_id"))


class Ledger:
    def __init__(self, rules: StockRules):
        self.rules = rules

    def fulfil(self, ctx: FlowContext, order_id: str, parcels: Sequence[Parcel]) -> None:
        """Allocated units leave. A replay (same order, flow and parcels) changes nothing; a second
        shipment of the same order is a new call from another flow, or with other parcels."""
        units = self._units_by_pair(((p.location, sku, qty) for p in parcels for sku, qty in p.lines))
        if not units:
            return
        connection = ctx.db
        now = ctx.clock.now()
        request = {
            "order_id": order_id,
            "units": sorted([*pair, qty] for pair, qty in units.items()),
        }
        key = f"fulfil:{order_id}:{ctx.flow_id}:{request_hash(request)[:24]}"
        if not claim(connection, key, "fulfil", request, now).fresh:
            return
        # One statement locks the order's rows and one driver call makes each kind of change, whatever the
        # number of lines: a shipment is on every checkout's path.
        held_by_pair = stock.lock_allocations(connection, order_id)
        shipped_backordered: dict[str, int] = defaultdict(int)
        changes: dict[Pair, dict[str, int]] = {}
        for (sku, location), quantity in units.items():
            held = held_by_pair.get((sku, location))
            allocated = held.allocated if held is not None else 0
            if allocated < quantity:
                raise InvalidValue(
                    f"order {order_id!r} has {allocated} units of {sku!r} allocated at "
                    f"{location!r}; cannot ship {quantity}"
                )
            assert held is not None
            # Units from stock ship first; back-ordered ones as the stock received for them allows.
            backordered = max(0, quantity - (held.allocated - held.backordered))
            shipped_backordered[sku] += backordered
            changes[(sku, location)] = {"allocated": -quantity, "backordered": -backordered, "fulfilled": quantity}
        stock.change_allocations(connection, order_id, changes)
        if any(shipped_backordered.values()):
            # Back-ordered units leave only once received: each line is checked, and a shortfall named.
            for (sku, location), quantity in units.items():
                stock.ship(connection, sku, location, quantity)
        else:
            stock.ship_many(connection, units)
        # What is left writes and reads nothing back: one round trip.
        with together(connection):
            stock.record_movements(
                connection,
                [
                    {
                        "sku": sku,
                        "location": location,
                        "delta": -quantity,
                        "kind": "ship",
                        "reason": "shipped",
                        "order_id": order_id,
                        "key": f"{key}:{sku}:{location}",
                        "at": now,
                    }
                    for (sku, location), quantity in units.items()
                ],
            )
            stock.settle_backorders(connection, shipped_backordered)
            settle(connection, key, sum(units.values()))
        ctx.record(
            "stock.fulfilled",
            {
                "order_id": order_id,
                "lines": [
                    {"sku": sku, "location": location, "quantity": quantity}
                    for (sku, location), quantity in units.items()
                ],
            },
            order_id=order_id,
        )

    def returned(self, ctx: FlowContext, order_id: str) -> Mapping[str, int]:
        # What the order took (its committed reservation) less what it still holds (allocated, or shipped
        # and not back): the units inventory_return gave back, restocked or de-allocated.
        connection = ctx.db
        taken: dict[str, int] = defaultdict(int)
        for row in connection.execute(_COMMITTED_LINES, {"order_id": order_id}):
            taken[row.sku] += int(row.quantity)
        for row in connection.execute(_HELD, {"order_id": order_id}):
            taken[row.sku] -= int(row.held)
        return {sku: units for sku, units in sorted(taken.items()) if units}

    def give_back(self, ctx: FlowContext, order_id: str, items: Sequence[ReservedStock], key: str) -> None:
        units = self._units_by_pair((item.location, item.sku, item.quantity) for item in items)
        connection = ctx.db
        now = ctx.clock.now()
        request = {
            "order_id": order_id,
            "units": sorted([*pair, qty] for pair, qty in units.items()),
        }
        operation = f"return:{check_key(key)}"
        if not units or not claim(connection, operation, "return", request, now).fresh:
            return
        changes: dict[Pair, tuple[int, int]] = {}
        released_backorders: dict[str, int] = defaultdict(int)
        for (sku, location), quantity in units.items():
            held = stock.lock_allocation(connection, order_id, sku, location)
            if held is None:
                raise InvalidValue(f"order {order_id!r} has no {sku!r} from {location!r} to return")
            # Units still waiting to ship are de-allocated; only shipped ones come back on hand.
            deallocate = min(quantity, held.allocated)
            restock = quantity - deallocate
            if restock > held.fulfilled - held.returned:
                raise InvalidValue(
                    f"order {order_id!r} has {held.allocated} units of {sku!r} allocated and "
                    f"{held.fulfilled - held.returned} shipped and not yet returned at "
                    f"{location!r}; cannot return {quantity}"
                )
            backordered = min(deallocate, held.backordered)
            released_backorders[sku] += backordered
            changes[(sku, location)] = (deallocate, restock)
            stock.change_allocation(
                connection,
                order_id,
                sku,
                location,
                allocated=-deallocate,
                backordered=-backordered,
                returned=restock,
            )
        for (sku, location), (deallocate, restock) in changes.items():
            stock.shift(connection, sku, location, allocated=-deallocate, on_hand=restock)
            if restock:
                stock.record_movement(
                    connection,
                    sku=sku,
                    location=location,
                    delta=restock,
                    kind="return",
                    reason="returned",
                    key=f"{operation}:{sku}:{location}",
                    at=now,
                    order_id=order_id,
                )
        stock.settle_backorders(connection, released_backorders)
        settle(connection, operation, sum(units.values()))
        ctx.record(
            "stock.returned",
            {
                "order_id": order_id,
                "key": key,
                "lines": [
                    {
                        "sku": sku,
                        "location": location,
                        "deallocated": deallocate,
                        "restocked": restock,
                    }
                    for (sku, location), (deallocate, restock) in changes.items()
                ],
            },
            order_id=order_id,
        )

    def _units_by_pair(self, entries: Iterable[tuple[str, str, int]]) -> dict[Pair, int]:
        """Units per (SKU, location), sorted, from (location, SKU, quantity) entries; checked."""
        units: dict[Pair, int] = defaultdict(int)
        for location, sku, quantity in entries:
            check_quantity(quantity, f"the quantity of {sku!r}", minimum=1)
            units[(sku, location)] += quantity
        for (sku, location), quantity in units.items():
            self.rules.check_item(sku, location)
            check_quantity(quantity, f"the units of {sku!r} at {location!r}", minimum=1)
        return dict(sorted(units.items()))

    def receive(
        self,
        ctx: FlowContext,
        sku: str,
        location: str,
        quantity: int,
        *,
        reason: str = "",
        key: str | None = None,
    ) -> int:
        """Goods arrived: ``quantity`` more on hand. Returns the new on hand."""
        check_quantity(quantity, "a received quantity", minimum=1)
        return self.move(
            ctx,
            sku,
            location,
            quantity,
            kind="receive",
            reason=reason or "received",
            key=key or ctx.ids.new_id("receive"),
        )

    def adjust(
        self,
        ctx: FlowContext,
        sku: str,
        location: str,
        delta: int,
        *,
        reason: str,
        key: str | None = None,
    ) -> int:
        """A correction (damage, loss, found goods) with a reason. Returns the new on hand."""
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidValue("an adjustment needs a reason (e.g. 'damaged in transit')")
        return self.move(
            ctx,
            sku,
            location,
            delta,
            kind="adjust",
            reason=reason,
            key=key or ctx.ids.new_id("adjust"),
        )

    def count(
        self,
        ctx: FlowContext,
        sku: str,
        location: str,
        counted: int,
        *,
        reason: str = "",
        key: str | None = None,
    ) -> int:
        """A stock count: the difference from on hand is recorded as a ``count`` movement.

        Returns the new on hand; a count below what is reserved and allocated is refused (release
        those first).
        """
        check_quantity(counted, "a counted quantity")
        check_text(reason, "a stock count's reason")
        self.rules.check_item(sku, location)
        connection = ctx.db
        operation = f"move:{check_key(key or ctx.ids.new_id('count'))}"
        request = {"sku": sku, "location": location, "counted": counted}
        claimed = claim(connection, operation, "count", request, ctx.clock.now())
        if not claimed.fresh:
            return claimed.result if claimed.result is not None else counted
        stock.ensure_level(connection, sku, location)
        level = stock.read_level(connection, sku, location, lock=True)
        delta = counted - level.on_hand
        if delta == 0:
            settle(connection, operation, level.on_hand)
            return level.on_hand
        return self._apply_move(ctx, operation, sku, location, delta, "count", reason or "counted")

    def levels(self, ctx: FlowContext, skus: Sequence[str] = ()) -> list[StockLevel]:
        """Stock of ``skus`` (all when empty) at every location."""
        return stock.read_levels(ctx.db, skus)

    def movements(self, ctx: FlowContext, skus: Sequence[str] = (), *, limit: int | None = None) -> list[Movement]:
        """The ledger, oldest first; the newest ``limit`` rows when given."""
        return stock.read_movements(ctx.db, skus, limit=limit)

    def move(
        self,
        ctx: FlowContext,
        sku: str,
        location: str,
        delta: int,
        *,
        kind: str,
        reason: str,
        key: str,
    ) -> int:
        check_quantity(delta, "a stock movement", minimum=-MAX_QUANTITY)
        if delta == 0:
            raise InvalidValue("a stock movement must be a non-zero integer (got 0)")
        check_text(reason, "a stock movement's reason")
        self.rules.check_item(sku, location)
        operation = f"move:{check_key(key)}"
        request = {"sku": sku, "location": location, "delta": delta, "kind": kind}
        claimed = claim(ctx.db, operation, kind, request, ctx.clock.now())
        if not claimed.fresh:
            assert claimed.result is not None
            return claimed.result
        return self._apply_move(ctx, operation, sku, location, delta, kind, reason)

    def _apply_move(
        self,
        ctx: FlowContext,
        operation: str,
        sku: str,
        location: str,
        delta: int,
        kind: str,
        reason: str,
    ) -> int:
        connection = ctx.db
        on_hand = stock.change_on_hand(connection, sku, location, delta)
        stock.record_movement(
            connection,
            sku=sku,
            location=location,
            delta=delta,
            kind=kind,
            reason=reason,
            key=operation,
            at=ctx.clock.now(),
        )
        settle(connection, operation, on_hand)
        ctx.record(
            "stock.adjusted",
            {
                "sku": sku,
                "location": location,
                "delta": delta,
                "kind": kind,
                "reason": reason,
                "on_hand": on_hand,
            },
        )
        if delta < 0:
            self.rules.record_low(ctx, {(sku, location): -delta})
        return on_hand
