"""Reservations: stock held for a checkout until it is committed to the order, released or expired.

Planned from a snapshot and applied with conditional updates, so two channels selling the last unit never
both get it; committed reservations become the order's allocations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from retailblocks import FlowContext
from retailblocks.errors import InvalidValue, OutOfStock
from retailblocks.model import Reservation, StockDemand
from retailblocks.storage import Prepared, PreparedQuery, together
from retailblocks_sql_inventory import stock
from retailblocks_sql_inventory.engine import PlannedLine, Shortfall, plan_reservation, sum_demands
from retailblocks_sql_inventory.rules import StockRules, backordered_by_sku, lines_payload, reserved_stock
from retailblocks_sql_inventory.stock import Pair
from retailblocks_sql_inventory.tables import reservation_lines, reservations

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


class Reservations:
    def __init__(self, rules: StockRules):
        self.rules = rules

    def reserve(
        self,
        ctx: FlowContext,
        demands: Sequence[StockDemand],
        locations: Sequence[str],
        allow_split: bool,
        ttl: timedelta,
    ) -> Reservation:
        totals = sum_demands(demands)
        candidates = list(dict.fromkeys(locations)) or self.rules.channel_locations(ctx.channel)
        self.rules.check_locations(candidates)
        ttl = ttl if ttl is not None else self.rules.config.reservation_ttl
        if ttl <= timedelta(0):
            raise InvalidValue(f"a reservation's ttl must be a positive duration (got {ttl})")
        safety = self.rules.safety_stock(ctx.channel)
        connection = ctx.db
        plan = self._reserve_plan(connection, totals, candidates, safety, allow_split=allow_split)
        now = ctx.clock.now()
        reservation = Reservation(id=ctx.ids.new_id("res"), lines=reserved_stock(plan), expires_at=now + ttl)
        with together(connection):  # (the reservation and its lines: one round trip)
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
                "lines": lines_payload(plan),
                "expires_at": reservation.expires_at.isoformat(),
            },
        )
        self.rules.record_low(ctx, {(line.sku, line.location): line.quantity for line in plan})
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
                self.rules.backorder_room(connection, skus),
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
            if stock.add_backorders(connection, backordered_by_sku(plan), self.rules.config.backorders):
                return True
        # Our own units, just taken in this transaction: no availability condition applies.
        stock.shift_many(
            connection, [stock.shift_values(line.sku, line.location, reserved=-line.quantity) for line in taken]
        )
        return False

    def commit(self, ctx: FlowContext, reservation_id: str, order_id: str) -> None:
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
                return self.commit(ctx, reservation_id, order_id)
            lines = self._lines_of(connection, [reservation_id])[reservation_id]
            self._retake(connection, lines, self.rules.safety_stock(ctx.channel))
            self._allocate(connection, order_id, lines, from_reservation=False)
        ctx.record(
            "stock.allocated",
            {
                "reservation_id": reservation_id,
                "order_id": order_id,
                "lines": lines_payload(lines),
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
        if not stock.add_backorders(connection, backordered_by_sku(lines), self.rules.config.backorders):
            sku = next(iter(backordered_by_sku(lines)))
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
        # concurrent checkouts from deadlocking. One driver call per table, both in one round trip.
        allocations = [
            stock.allocation_values(
                order_id, line.sku, line.location, allocated=line.quantity, backordered=line.backordered
            )
            for line in ordered
        ]
        shifts = [
            stock.shift_values(
                line.sku, line.location, reserved=-line.quantity if from_reservation else 0, allocated=line.quantity
            )
            for line in ordered
        ]
        with together(connection):
            stock.allocate_many(connection, allocations)
            stock.shift_many(connection, shifts)

    def release(self, ctx: FlowContext, reservation_id: str) -> None:
        connection = ctx.db
        if not self._transition(connection, reservation_id, ACTIVE, RELEASED, ctx.clock.now()):
            return  # committed, released, expired or never made: nothing to give back
        lines = self._lines_of(connection, [reservation_id])[reservation_id]
        self._unreserve(connection, lines)
        ctx.record("stock.released", {"reservation_id": reservation_id, "lines": lines_payload(lines)})

    def expire_batch(self, ctx: FlowContext) -> int:
        connection = ctx.db
        now = ctx.clock.now()
        due = connection.execute(_DUE_RESERVATIONS, {"now": now}).scalars().all()
        # Conditional on 'active': a commit racing the expiry wins or loses as a whole.
        expired = [rid for rid in due if self._transition(connection, rid, ACTIVE, EXPIRED, now)]
        lines = self._lines_of(connection, expired)
        self._unreserve(connection, [line for rid in expired for line in lines[rid]])
        for rid in expired:
            ctx.record("stock.expired", {"reservation_id": rid, "lines": lines_payload(lines[rid])})
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
        stock.settle_backorders(connection, backordered_by_sku(lines))

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
