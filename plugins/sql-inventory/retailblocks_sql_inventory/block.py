"""The ``sql-inventory`` block: stock per location in the stack's database, reserved, allocated,
shipped and returned with conditional updates, every on-hand change written to a movement ledger."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from retailblocks import AuditFinding, Block, Capability, FlowContext, StackView, hookimpl
from retailblocks.assembly.references import unknown
from retailblocks.errors import InvalidValue, OutOfStock, UnknownSku
from retailblocks.manifest.readers import suggestion
from retailblocks.model import (
    Channel,
    ChannelType,
    Merchant,
    Parcel,
    Reservation,
    ReservedStock,
    StockDemand,
    StockLevel,
)
from retailblocks.model.limits import MAX_ID_LENGTH, MAX_QUANTITY, check_quantity, check_text
from retailblocks.storage import Prepared, PreparedQuery
from retailblocks_sql_inventory import stock
from retailblocks_sql_inventory.audit import audit
from retailblocks_sql_inventory.config import SqlInventoryConfig
from retailblocks_sql_inventory.engine import PlannedLine, Shortfall, plan_reservation, sum_demands
from retailblocks_sql_inventory.sql import check_key, claim, request_hash, settle
from retailblocks_sql_inventory.stock import Movement, Pair
from retailblocks_sql_inventory.tables import MIGRATIONS, allocations, reservation_lines, reservations

if TYPE_CHECKING:
    from retailblocks.storage import Migration

#: How often a reservation re-plans after concurrent checkouts took the stock it planned on.
MAX_PLAN_ATTEMPTS = 8
#: Reservations expired per batch by ``stack_maintain``.
EXPIRY_BATCH = 500

ACTIVE, COMMITTED, RELEASED, EXPIRED = "active", "committed", "released", "expired"

# The statements of the checkout path, built once (see stock.py for why).
_INSERT_RESERVATION = Prepared(
    reservations.insert().values(
        {name: sa.bindparam(name) for name in ("id", "status", "channel", "created_at", "expires_at", "updated_at")}
    )
)
_INSERT_RESERVATION_LINE = Prepared(
    reservation_lines.insert().values(
        {name: sa.bindparam(name) for name in ("reservation_id", "sku", "location", "quantity", "backordered")}
    )
)
_THIS_RESERVATION_IN = sa.and_(
    reservations.c.id == sa.bindparam("reservation_id"), reservations.c.status == sa.bindparam("from_status")
)
_TRANSITION = Prepared(
    reservations.update()
    .where(_THIS_RESERVATION_IN)
    .values(status=sa.bindparam("to_status"), updated_at=sa.bindparam("now"))
)
_TRANSITION_TO_ORDER = Prepared(
    reservations.update()
    .where(_THIS_RESERVATION_IN)
    .values(status=sa.bindparam("to_status"), updated_at=sa.bindparam("now"), order_id=sa.bindparam("order_id"))
)
_READ_RESERVATION = PreparedQuery(sa.select(reservations).where(reservations.c.id == sa.bindparam("reservation_id")))
_READ_LINES = PreparedQuery(
    sa.select(
        reservation_lines.c.reservation_id,
        reservation_lines.c.sku,
        reservation_lines.c.location,
        reservation_lines.c.quantity,
        reservation_lines.c.backordered,
    )
    .where(reservation_lines.c.reservation_id.in_(sa.bindparam("reservation_ids", expanding=True)))
    .order_by(reservation_lines.c.sku, reservation_lines.c.location)
)
_DUE_RESERVATIONS = (
    sa.select(reservations.c.id)
    .where(reservations.c.status == ACTIVE, reservations.c.expires_at <= sa.bindparam("now"))
    .order_by(reservations.c.id)
    .limit(EXPIRY_BATCH)
)

_COMMITTED_LINES = (
    sa.select(reservation_lines.c.sku, reservation_lines.c.quantity)
    .join(reservations, reservations.c.id == reservation_lines.c.reservation_id)
    .where(reservations.c.order_id == sa.bindparam("order_id"), reservations.c.status == COMMITTED)
)
_HELD = sa.select(
    allocations.c.sku, (allocations.c.allocated + allocations.c.fulfilled - allocations.c.returned).label("held")
).where(allocations.c.order_id == sa.bindparam("order_id"))


class SqlInventory(Block):
    """Stock per location with reservations, allocations, back-orders and a movement ledger."""

    name: ClassVar[str] = "sql-inventory"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.INVENTORY})
    core_api: ClassVar[str] = "1.1"
    Config: ClassVar[type[Any]] = SqlInventoryConfig
    description: ClassVar[str] = (
        "Stock per warehouse and store in the stack's database: per-channel sourcing and safety "
        "stock, reservations that expire, back-orders, and a movement ledger."
    )

    config: SqlInventoryConfig

    def __init__(self, config: SqlInventoryConfig, *, block_id: str | None = None):
        if not isinstance(config, SqlInventoryConfig):
            raise InvalidValue(f"sql-inventory needs a SqlInventoryConfig (got {type(config).__name__})")
        super().__init__(config, block_id=block_id)
        #: The SKUs stock may be held of: the stack's catalog once ``stack_startup`` has run; None for a
        #: block used on its own, which then takes any SKU.
        self.catalog: frozenset[str] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def stack_names(self) -> Mapping[str, Sequence[str]]:
        return {"location": sorted(self.config.location_ids)}

    @hookimpl
    def stack_check(
        self, merchant: Merchant, channels: Sequence[Channel], names: Mapping[str, frozenset[str]]
    ) -> Sequence[str]:
        """References the configuration makes to the rest of the manifest that lead nowhere.

        A channel the manifest does not declare would have its sourcing never apply; a back-order
        allowance for a SKU the catalog lacks could never be sold; a store channel selling from a
        location this block does not hold would fail its first checkout.
        """
        declared = [channel.id for channel in channels]
        problems = []
        for channel_id in self.config.channels:
            if channel_id not in declared:
                close = difflib.get_close_matches(channel_id, declared, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(
                    f"channels.{channel_id}: the manifest declares no channel {channel_id!r} "
                    f"(channels: {', '.join(declared) or 'none'}){hint}"
                )
        for sku in self.config.backorders:
            if sku not in names["sku"]:
                problems.append(unknown(f"backorders.{sku}", "sku", sku, names["sku"]))
        for channel in channels:
            sourcing = self.config.channels.get(channel.id)
            if sourcing is not None and sourcing.locations:
                continue
            if channel.type == ChannelType.STORE and channel.location not in self.config.location_ids:
                problems.append(
                    f"locations: store channel {channel.id!r} sells from location {channel.location!r}, which is "
                    f"not among this block's locations ({', '.join(sorted(self.config.location_ids))})"
                    f"{suggestion(channel.location or '', sorted(self.config.location_ids))}; add it, or give the "
                    f"channel its locations under 'channels:'"
                )
        return problems

    @hookimpl
    def stack_startup(self, stack: StackView) -> None:
        # Stock of a SKU the catalog lacks could never be sold; the stack's catalog says what exists.
        self.catalog = frozenset(stack.catalog)

    @hookimpl
    def stack_audit(self, ctx: FlowContext) -> Sequence[AuditFinding]:
        return audit(ctx.db)

    @hookimpl
    def stack_maintain(self, ctx: FlowContext) -> None:
        """Release active reservations whose time is up, a batch at a time."""
        while self._expire_batch(ctx) == EXPIRY_BATCH:
            pass

    # -- where a channel sells from ------------------------------------------------------------

    def channel_locations(self, channel: Channel | None) -> list[str]:
        """The locations ``channel`` sells from, most preferred first."""
        if channel is not None:
            sourcing = self.config.channels.get(channel.id)
            if sourcing is not None and sourcing.locations:
                return list(sourcing.locations)
            if channel.type == ChannelType.STORE and channel.location:
                return [channel.location]
        return self.config.warehouses

    def safety_stock(self, channel: Channel | None) -> int:
        sourcing = self.config.channels.get(channel.id) if channel is not None else None
        return sourcing.safety_stock if sourcing is not None else 0

    @hookimpl
    def inventory_locations(self, ctx: FlowContext) -> Sequence[str]:
        return self.channel_locations(ctx.channel)

    @hookimpl
    def inventory_available(self, ctx: FlowContext, skus: Sequence[str]) -> Mapping[str, int]:
        """Units per SKU the channel can sell: stock over its locations after its safety stock, plus
        what the SKU's back-order allowance still has room for."""
        wanted = list(dict.fromkeys(skus))
        if not wanted:
            return {}
        locations = self.channel_locations(ctx.channel)
        safety = self.safety_stock(ctx.channel)
        available = stock.read_available(ctx.db, wanted, locations)
        room = self._backorder_room(ctx.db, wanted)
        totals = {sku: room.get(sku, 0) for sku in wanted}
        for (sku, _location), units in available.items():
            totals[sku] += max(0, units - safety)
        return totals

    # -- reservations --------------------------------------------------------------------------

    @hookimpl
    def inventory_reserve(
        self,
        ctx: FlowContext,
        demands: Sequence[StockDemand],
        locations: Sequence[str],
        allow_split: bool,
        ttl: timedelta,
    ) -> Reservation:
        totals = sum_demands(demands)
        candidates = list(dict.fromkeys(locations)) or self.channel_locations(ctx.channel)
        self._check_locations(candidates)
        ttl = ttl if ttl is not None else self.config.reservation_ttl
        if ttl <= timedelta(0):
            raise InvalidValue(f"a reservation's ttl must be a positive duration (got {ttl})")
        safety = self.safety_stock(ctx.channel)
        connection = ctx.db
        plan = self._reserve_plan(connection, totals, candidates, safety, allow_split=allow_split)
        now = ctx.clock.now()
        reservation = Reservation(id=ctx.ids.new_id("res"), lines=_reserved_stock(plan), expires_at=now + ttl)
        _INSERT_RESERVATION.execute(
            connection,
            id=reservation.id,
            status=ACTIVE,
            channel=ctx.channel.id if ctx.channel else None,
            created_at=now,
            expires_at=reservation.expires_at,
            updated_at=now,
        )
        if plan:
            _INSERT_RESERVATION_LINE.execute_many(
                connection,
                [
                    {
                        "reservation_id": reservation.id,
                        "sku": line.sku,
                        "location": line.location,
                        "quantity": line.quantity,
                        "backordered": line.backordered,
                    }
                    for line in plan
                ],
            )
        ctx.record(
            "stock.reserved",
            {
                "reservation_id": reservation.id,
                "lines": _lines_payload(plan),
                "expires_at": reservation.expires_at.isoformat(),
            },
        )
        self._record_low(ctx, {(line.sku, line.location): line.quantity for line in plan})
        return reservation

    def _reserve_plan(
        self,
        connection: sa.Connection,
        totals: Mapping[str, int],
        locations: Sequence[str],
        safety: int,
        *,
        allow_split: bool,
    ) -> list[PlannedLine]:
        """Plan from a snapshot and apply with conditional updates; when a concurrent checkout won a
        row between the two, this attempt is given back and planned again from fresh numbers."""
        skus = list(totals)
        outcome: list[PlannedLine] | Shortfall | None = None
        for _attempt in range(MAX_PLAN_ATTEMPTS):
            available = stock.read_available(connection, skus, locations)
            channel_facing = {pair: units - safety for pair, units in available.items()}
            outcome = plan_reservation(
                totals,
                locations,
                channel_facing,
                self._backorder_room(connection, skus),
                allow_split=allow_split,
            )
            if isinstance(outcome, Shortfall):
                raise OutOfStock(
                    outcome.message,
                    sku=outcome.sku,
                    requested=outcome.requested,
                    available=outcome.available,
                )
            if self._apply_plan(connection, outcome, safety):
                return outcome
        sku = next(iter(totals))
        raise OutOfStock(
            f"{sku!r} kept being taken by concurrent checkouts ({MAX_PLAN_ATTEMPTS} attempts); try again",
            sku=sku,
            requested=totals[sku],
            available=0,
        )

    def _apply_plan(self, connection: sa.Connection, plan: Sequence[PlannedLine], safety: int) -> bool:
        """Take every line of ``plan``, or nothing: when a line's stock is gone (a concurrent checkout won
        it since the snapshot), the lines taken so far are given back and the result is False.

        Giving back by hand rather than rolling back a savepoint: the lost race is rare, and a savepoint
        would cost two statements (and a flush of the step's events) on every multi-line checkout.
        """
        taken: list[PlannedLine] = []
        for line in sorted(plan, key=lambda line: (line.sku, line.location)):
            if not stock.take(
                connection,
                line.sku,
                line.location,
                units=line.quantity,
                from_stock=line.from_stock,
                safety=safety,
                column="reserved",
            ):
                break
            taken.append(line)
        else:
            if stock.add_backorders(connection, _backordered_by_sku(plan), self.config.backorders):
                return True
        # Our own units, just taken in this transaction: no availability condition applies.
        stock.shift_many(
            connection, [stock.shift_values(line.sku, line.location, reserved=-line.quantity) for line in taken]
        )
        return False

    @hookimpl
    def inventory_commit(self, ctx: FlowContext, reservation_id: str, order_id: str) -> None:
        connection = ctx.db
        now = ctx.clock.now()
        if self._transition(connection, reservation_id, ACTIVE, COMMITTED, now, order_id=order_id):
            lines = self._lines_of(connection, [reservation_id])[reservation_id]
            self._allocate(connection, order_id, lines, from_reservation=True)
        else:
            row = self._reservation(connection, reservation_id)
            if row.status == COMMITTED:
                if row.order_id != order_id:
                    raise InvalidValue(
                        f"reservation {reservation_id!r} is already committed to order "
                        f"{row.order_id!r}, not {order_id!r}"
                    )
                return
            if row.status == RELEASED:
                raise InvalidValue(f"reservation {reservation_id!r} was released; reserve the stock again")
            # Expired while the customer paid: take the same stock again if it is still there.
            if not self._transition(connection, reservation_id, EXPIRED, COMMITTED, now, order_id=order_id):
                return self.inventory_commit(ctx, reservation_id, order_id)
            lines = self._lines_of(connection, [reservation_id])[reservation_id]
            self._retake(connection, lines, self.safety_stock(ctx.channel))
            self._allocate(connection, order_id, lines, from_reservation=False)
        ctx.record(
            "stock.allocated",
            {
                "reservation_id": reservation_id,
                "order_id": order_id,
                "lines": _lines_payload(lines),
            },
            order_id=order_id,
        )
        return None

    def _retake(self, connection: sa.Connection, lines: Sequence[PlannedLine], safety: int) -> None:
        for line in sorted(lines, key=lambda line: (line.sku, line.location)):
            if not stock.take(
                connection,
                line.sku,
                line.location,
                units=0,
                from_stock=line.from_stock,
                safety=safety,
                column="reserved",
            ):
                level = stock.read_level(connection, line.sku, line.location)
                raise OutOfStock(
                    f"the reservation expired and only {max(0, level.available - safety)} units of "
                    f"{line.sku!r} are left at {line.location!r} (needed {line.from_stock})",
                    sku=line.sku,
                    requested=line.quantity,
                    available=max(0, level.available - safety),
                )
        if not stock.add_backorders(connection, _backordered_by_sku(lines), self.config.backorders):
            sku = next(iter(_backordered_by_sku(lines)))
            raise OutOfStock(
                f"the reservation expired and the back-order allowance of {sku!r} is used up",
                sku=sku,
                requested=sum(line.quantity for line in lines if line.sku == sku),
            )

    def _allocate(
        self,
        connection: sa.Connection,
        order_id: str,
        lines: Sequence[PlannedLine],
        *,
        from_reservation: bool,
    ) -> None:
        ordered = sorted(lines, key=lambda line: (line.sku, line.location))
        # All allocation rows, then all level rows, each in (SKU, location) order: the lock order that keeps
        # concurrent checkouts from deadlocking. One driver call per table.
        stock.allocate_many(
            connection,
            [
                stock.allocation_values(
                    order_id, line.sku, line.location, allocated=line.quantity, backordered=line.backordered
                )
                for line in ordered
            ],
        )
        stock.shift_many(
            connection,
            [
                stock.shift_values(
                    line.sku,
                    line.location,
                    reserved=-line.quantity if from_reservation else 0,
                    allocated=line.quantity,
                )
                for line in ordered
            ],
        )

    @hookimpl
    def inventory_release(self, ctx: FlowContext, reservation_id: str) -> None:
        connection = ctx.db
        if not self._transition(connection, reservation_id, ACTIVE, RELEASED, ctx.clock.now()):
            return  # committed, released, expired or never made: nothing to give back
        lines = self._lines_of(connection, [reservation_id])[reservation_id]
        self._unreserve(connection, lines)
        ctx.record("stock.released", {"reservation_id": reservation_id, "lines": _lines_payload(lines)})

    def _expire_batch(self, ctx: FlowContext) -> int:
        connection = ctx.db
        now = ctx.clock.now()
        due = connection.execute(_DUE_RESERVATIONS, {"now": now}).scalars().all()
        # Conditional on 'active': a commit racing the expiry wins or loses as a whole.
        expired = [rid for rid in due if self._transition(connection, rid, ACTIVE, EXPIRED, now)]
        lines = self._lines_of(connection, expired)
        self._unreserve(connection, [line for rid in expired for line in lines[rid]])
        for rid in expired:
            ctx.record("stock.expired", {"reservation_id": rid, "lines": _lines_payload(lines[rid])})
        return len(due)

    def _unreserve(self, connection: sa.Connection, lines: Iterable[PlannedLine]) -> None:
        units: dict[Pair, int] = defaultdict(int)
        for line in lines:
            units[(line.sku, line.location)] += line.quantity
        stock.shift_many(
            connection,
            [
                stock.shift_values(sku, location, reserved=-quantity)
                for (sku, location), quantity in sorted(units.items())
            ],
        )
        stock.settle_backorders(connection, _backordered_by_sku(lines))

    def _transition(
        self,
        connection: sa.Connection,
        reservation_id: str,
        from_status: str,
        to_status: str,
        now: datetime,
        *,
        order_id: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {
            "reservation_id": reservation_id,
            "from_status": from_status,
            "to_status": to_status,
            "now": now,
        }
        if order_id is None:
            return _TRANSITION.execute(connection, values) == 1
        return _TRANSITION_TO_ORDER.execute(connection, values, order_id=order_id) == 1

    def _reservation(self, connection: sa.Connection, reservation_id: str) -> Any:
        row = _READ_RESERVATION.first(connection, reservation_id=reservation_id)
        if row is None:
            raise InvalidValue(f"no reservation {reservation_id!r}")
        return row

    def _lines_of(self, connection: sa.Connection, reservation_ids: Sequence[str]) -> dict[str, list[PlannedLine]]:
        lines: dict[str, list[PlannedLine]] = {rid: [] for rid in reservation_ids}
        if not reservation_ids:
            return lines
        rows = _READ_LINES.all(connection, reservation_ids=list(reservation_ids))
        for reservation_id, sku, location, quantity, backordered in rows:
            lines[reservation_id].append(PlannedLine(sku, location, quantity, backordered))
        return lines

    # -- orders: shipping and returns ----------------------------------------------------------

    @hookimpl
    def inventory_fulfil(self, ctx: FlowContext, order_id: str, parcels: Sequence[Parcel]) -> None:
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
        shipped_backordered: dict[str, int] = defaultdict(int)
        for (sku, location), quantity in units.items():
            held = stock.lock_allocation(connection, order_id, sku, location)
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
            stock.change_allocation(
                connection,
                order_id,
                sku,
                location,
                allocated=-quantity,
                backordered=-backordered,
                fulfilled=quantity,
            )
        for (sku, location), quantity in units.items():
            stock.ship(connection, sku, location, quantity)
            stock.record_movement(
                connection,
                sku=sku,
                location=location,
                delta=-quantity,
                kind="ship",
                reason="shipped",
                key=f"{key}:{sku}:{location}",
                at=now,
                order_id=order_id,
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

    @hookimpl
    def inventory_returned(self, ctx: FlowContext, order_id: str) -> Mapping[str, int]:
        # What the order took (its committed reservation) less what it still holds (allocated, or shipped
        # and not back): the units inventory_return gave back, restocked or de-allocated.
        connection = ctx.db
        taken: dict[str, int] = defaultdict(int)
        for row in connection.execute(_COMMITTED_LINES, {"order_id": order_id}):
            taken[row.sku] += int(row.quantity)
        for row in connection.execute(_HELD, {"order_id": order_id}):
            taken[row.sku] -= int(row.held)
        return {sku: units for sku, units in sorted(taken.items()) if units}

    @hookimpl
    def inventory_return(self, ctx: FlowContext, order_id: str, items: Sequence[ReservedStock], key: str) -> None:
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
            self._check_item(sku, location)
            check_quantity(quantity, f"the units of {sku!r} at {location!r}", minimum=1)
        return dict(sorted(units.items()))

    # -- operator movements --------------------------------------------------------------------

    @hookimpl
    def inventory_adjust(self, ctx: FlowContext, sku: str, location: str, delta: int, reason: str, key: str) -> int:
        kind = "receive" if isinstance(delta, int) and delta > 0 else "adjust"
        return self._move(ctx, sku, location, delta, kind=kind, reason=reason, key=key)

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
        return self._move(
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
        return self._move(
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
        self._check_item(sku, location)
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

    @hookimpl
    def inventory_levels(self, ctx: FlowContext, skus: Sequence[str]) -> Sequence[StockLevel]:
        return stock.read_levels(ctx.db, skus)

    def _move(
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
        self._check_item(sku, location)
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
            self._record_low(ctx, {(sku, location): -delta})
        return on_hand

    # -- helpers -------------------------------------------------------------------------------

    def _check_locations(self, locations: Iterable[str]) -> None:
        unknown = [location for location in locations if location not in self.config.location_ids]
        if unknown:
            raise InvalidValue(
                f"unknown stock location(s) {', '.join(map(repr, unknown))}; known locations: "
                f"{', '.join(sorted(self.config.location_ids))}"
            )

    def _check_item(self, sku: str, location: str) -> None:
        check_text(sku, "a SKU", max_length=MAX_ID_LENGTH, allow_empty=False)
        if self.catalog is not None and sku not in self.catalog:
            known = sorted(self.catalog)
            raise UnknownSku(
                f"unknown SKU {sku!r}{suggestion(sku, known)}: the catalog does not have it "
                f"(add it to the manifest's 'catalog:' first)"
            )
        self._check_locations([location])

    def _backorder_room(self, connection: sa.Connection, skus: Sequence[str]) -> dict[str, int]:
        limits = {sku: self.config.backorders[sku] for sku in skus if sku in self.config.backorders}
        if not limits:
            return {}
        outstanding = stock.read_outstanding(connection, limits)
        return {sku: max(0, limit - outstanding.get(sku, 0)) for sku, limit in limits.items()}

    def _record_low(self, ctx: FlowContext, decreases: Mapping[Pair, int]) -> None:
        """Record ``stock.low`` where availability just crossed down to the threshold."""
        threshold = self.config.low_stock_threshold
        if threshold <= 0:
            return
        for (sku, location), decrease in sorted(decreases.items()):
            after = stock.read_level(ctx.db, sku, location).available
            if after + decrease > threshold >= after:
                ctx.record(
                    "stock.low",
                    {"sku": sku, "location": location, "available": after, "threshold": threshold},
                )


def _backordered_by_sku(lines: Iterable[PlannedLine]) -> dict[str, int]:
    units: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.backordered:
            units[line.sku] += line.backordered
    return dict(units)


def _reserved_stock(plan: Sequence[PlannedLine]) -> tuple[ReservedStock, ...]:
    lines: list[ReservedStock] = []
    for line in plan:
        if line.from_stock:
            lines.append(ReservedStock(line.sku, line.location, line.from_stock))
        if line.backordered:
            lines.append(ReservedStock(line.sku, line.location, line.backordered, backordered=True))
    return tuple(lines)


def _lines_payload(lines: Iterable[PlannedLine]) -> list[dict[str, Any]]:
    return [
        {
            "sku": line.sku,
            "location": line.location,
            "quantity": line.quantity,
            "backordered": line.backordered,
        }
        for line in lines
    ]
