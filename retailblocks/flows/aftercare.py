"""Cancel and refund: undoing what checkout did, as forward-only sagas that recovery resumes.

Cancel stops delivery, puts the stock back, gives back coupon uses, takes back points and returns the
money (void what was only authorized, refund what was captured). Refund does the same for some units of
some lines: the money for exactly those units, their points, and — when asked — their stock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import InvalidValue, NotRefundable
from retailblocks.flows.capabilities import release_adjustments
from retailblocks.flows.orders import load_order, order_details, set_order, update_order
from retailblocks.flows.saga import SagaRun, Step, insert_saga, numbered
from retailblocks.flows.state import (
    CancelState,
    CancelStep,
    CheckoutState,
    FlowKind,
    RefundedLine,
    RefundState,
    RefundStep,
    RefundUnit,
    data_of,
    load_state,
)
from retailblocks.hookspecs import inventory, logistics, membership, payment
from retailblocks.model import Money, Order, OrderStatus, ReservedStock, Shipment, ShipmentStatus, allocate_integer
from retailblocks.model.serialize import from_data
from retailblocks.storage.tables import order_lines, orders, sagas

if TYPE_CHECKING:
    from retailblocks.flows.api import OrderFlows

CANCELLABLE = {OrderStatus.PLACED, OrderStatus.PAID, OrderStatus.FULFILLED}
REFUNDABLE = {OrderStatus.PLACED, OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.PARTIALLY_REFUNDED}


def unit_amounts(line_total: int, quantity: int) -> list[int]:
    """A line's total split into its units so that any run of units is refunded exactly once."""
    return allocate_integer(line_total, [1] * quantity)


# Built once (SQLAlchemy caches its compiled form).
_CHECKOUT_STATE = sa.select(sagas.c.state).where(
    sagas.c.order_id == sa.bindparam("order_id"), sagas.c.flow == FlowKind.CHECKOUT.value
)


def checkout_state(connection: sa.Connection, order_id: str) -> CheckoutState | None:
    """What the order's checkout settled — its authorizations, captures and reservation — as its saga row
    holds it; None for an order no checkout saga placed."""
    document = connection.execute(_CHECKOUT_STATE, {"order_id": order_id}).scalar()
    return None if document is None else load_state(CheckoutState, document)


CancelRun = SagaRun[CancelState]
RefundRun = SagaRun[RefundState]


class AftercareSteps:
    def __init__(self, flows: OrderFlows):
        self.flows = flows
        self.stack = flows.stack
        self.hooks = flows.stack.hooks

    # -- shared -----------------------------------------------------------------------------------

    def _begin_saga(self, ctx: FlowContext, run: SagaRun[Any]) -> None:
        # A concurrent request for the same cancel or refund fails here with the IntegrityError the flow expects.
        insert_saga(ctx.db, run, ctx.clock.now(), self.stack.lease_until())

    def _return_money(self, run: SagaRun[Any], ctx: FlowContext, amounts: Mapping[int, int], void_rest: bool) -> None:
        # Read apart from the step: providers are called before the step's own transaction opens.
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            checkout = checkout_state(connection, run.order_id)
            connection.rollback()
        authorizations = checkout.authorizations if checkout is not None else {}
        for index, authorization in sorted(authorizations.items()):
            amount = amounts.get(index, 0)
            # One unit of work per provider call: see OrderFlows.outside_call.
            if amount:
                with self.flows.outside_call(run, ctx) as call:
                    self.hooks.call(
                        payment.payment_refund,
                        call,
                        authorization,
                        Money(amount, authorization.amount.currency),
                        ctx.key_for(f"refund-{index}"),
                    )
            if void_rest:
                with self.flows.outside_call(run, ctx) as call:
                    self.hooks.call(payment.payment_void, call, authorization, ctx.key_for(f"void-{index}"))

    # -- cancel -----------------------------------------------------------------------------------

    def cancel_steps(self) -> list[Step]:
        return [
            Step(CancelStep.BEGIN, self.begin_cancel),
            Step(CancelStep.STOP_DELIVERY, self.stop_delivery),
            Step(CancelStep.RETURN_STOCK, self.return_all_stock),
            Step(CancelStep.RELEASE_PROMOTIONS, self.release_promotions),
            Step(CancelStep.REVERSE_POINTS, self.reverse_all_points),
            Step(CancelStep.RETURN_MONEY, self.return_all_money),
            Step(CancelStep.FINISH, self.finish_cancel, completes=True),
        ]

    def begin_cancel(self, run: CancelRun, ctx: FlowContext) -> None:
        order = load_order(ctx.db, run.order_id, for_update=True)
        if order.status not in CANCELLABLE:
            raise NotRefundable(
                f"order {order.id} is {order.status.value}; only placed, paid or fulfilled orders "
                "without refunds can be cancelled"
            )
        left = [s for s in order.shipments if s.status not in (ShipmentStatus.PENDING, ShipmentStatus.READY_FOR_PICKUP)]
        if left:
            raise NotRefundable(
                f"order {order.id}: shipment {left[0].id} is {left[0].status.value} (it has already left); refund "
                "its lines instead"
            )
        checkout = checkout_state(ctx.db, order.id)
        captures = checkout.captures if checkout is not None else {}
        run.state = attrs.evolve(run.state, captures=captures, member_id=order.member_id, total=order.total.amount)
        self._begin_saga(ctx, run)

    def stop_delivery(self, run: CancelRun, ctx: FlowContext) -> None:
        details = order_details(ctx.db, run.order_id)
        for number, data in enumerate(details.get("shipments", [])):
            shipment = from_data(data, Shipment)
            # One shipment per way the order leaves, each cancelled under a key of its own.
            key = ctx.key_for(numbered("cancel-shipment", number))
            if not self.hooks.call(logistics.logistics_cancel, ctx, shipment, key):
                raise NotRefundable(
                    f"order {run.order_id}: shipment {shipment.id} has already left; refund its lines instead"
                )

    def return_all_stock(self, run: CancelRun, ctx: FlowContext) -> None:
        checkout = checkout_state(ctx.db, run.order_id)
        reservations = checkout.reservations() if checkout is not None else ()
        if reservations:
            # Every way the order left, in one return: each unit goes back to the location it came from.
            lines = tuple(line for reservation in reservations for line in reservation.lines)
            self.hooks.call(inventory.inventory_return, ctx, run.order_id, lines, ctx.key_for("return-stock"))

    def release_promotions(self, run: CancelRun, ctx: FlowContext) -> None:
        release_adjustments(self.hooks, ctx, load_order(ctx.db, run.order_id))

    def reverse_all_points(self, run: CancelRun, ctx: FlowContext) -> None:
        member_id = run.state.member_id
        if member_id:
            total = Money(run.state.total, self.stack.currency)
            self.hooks.maybe(
                membership.membership_reverse, ctx, member_id, run.order_id, total, total, ctx.key_for("reverse-points")
            )

    def return_all_money(self, run: CancelRun, ctx: FlowContext) -> None:
        captures = run.state.captures
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            refunds = order_details(connection, run.order_id).get("refunds", {})
            connection.rollback()
        refunded_before = {int(k): int(v) for k, v in refunds.items()}
        remaining = {k: v - refunded_before.get(k, 0) for k, v in captures.items()}
        self._return_money(run, ctx, remaining, void_rest=True)
        details = order_details(ctx.db, run.order_id)
        details["refunds"] = data_of(captures)
        update_order(ctx.db, run.order_id, refunded=orders.c.refunded + sum(remaining.values()), details=details)

    def finish_cancel(self, run: CancelRun, ctx: FlowContext) -> None:
        set_order(ctx.db, run.order_id, status=OrderStatus.CANCELLED, updated_at=ctx.clock.now())
        ctx.record("order.cancelled", {"reason": run.state.reason}, member_id=run.state.member_id)
        # The saga is marked completed by this step's progress record (Step.completes).

    # -- refund -----------------------------------------------------------------------------------

    def refund_steps(self) -> list[Step]:
        return [
            Step(RefundStep.BEGIN, self.begin_refund, self.unbegin_refund),
            Step(RefundStep.RETURN_MONEY, self.refund_money),
            Step(RefundStep.RESTOCK, self.restock),
            Step(RefundStep.REVERSE_POINTS, self.reverse_some_points),
            Step(RefundStep.FINISH, self.finish_refund, completes=True),
        ]

    def begin_refund(self, run: RefundRun, ctx: FlowContext) -> None:
        order = load_order(ctx.db, run.order_id, for_update=True)
        if order.status not in REFUNDABLE:
            raise NotRefundable(f"order {order.id} is {order.status.value} and cannot be refunded")
        requested: dict[int, int] = (
            dict(run.state.lines)
            if run.state.lines is not None
            else {line.index: line.quantity - line.refunded_quantity for line in order.lines}
        )
        amount = 0
        units: list[RefundUnit] = []
        counted: list[RefundedLine] = []
        by_index = {line.index: line for line in order.lines}
        for index, quantity in sorted(requested.items()):
            line = by_index.get(index)
            if line is None:
                raise InvalidValue(f"order {order.id} has no line {index} (lines 0–{len(order.lines) - 1})")
            if quantity <= 0:
                continue
            if quantity > line.quantity - line.refunded_quantity:
                raise NotRefundable(
                    f"line {index} ({line.sku}) has {line.quantity - line.refunded_quantity} refundable units, "
                    f"{quantity} requested"
                )
            parts = unit_amounts(line.total.amount, line.quantity)
            amount += sum(parts[line.refunded_quantity : line.refunded_quantity + quantity])
            # Conditional: two refunds racing for the same units cannot both pass.
            updated = ctx.db.execute(
                order_lines.update()
                .where(
                    order_lines.c.order_id == order.id,
                    order_lines.c.line_index == index,
                    order_lines.c.refunded_quantity + quantity <= order_lines.c.quantity,
                )
                .values(refunded_quantity=order_lines.c.refunded_quantity + quantity)
            ).rowcount
            if updated != 1:
                raise NotRefundable(f"line {index} ({line.sku}) was refunded concurrently")
            units.append(RefundUnit(line.sku, quantity))
            counted.append(RefundedLine(index, quantity))
        if not units:
            raise InvalidValue("nothing to refund: every requested quantity is 0")
        remaining_units = sum(line.quantity - line.refunded_quantity for line in order.lines) - sum(
            u.quantity for u in units
        )
        if remaining_units == 0:
            amount += order.shipping.amount  # a full refund gives the delivery charge back too
        # Keyed as the order's details key them (plan indexes as text), in their order.
        checkout = checkout_state(ctx.db, order.id)
        captures = {str(k): v for k, v in checkout.captures.items()} if checkout is not None else {}
        details = order_details(ctx.db, order.id)
        refunds_so_far = {k: int(v) for k, v in details.get("refunds", {}).items()}
        refundable = {k: captures[k] - refunds_so_far.get(k, 0) for k in sorted(captures)}
        if amount > sum(refundable.values()):
            raise NotRefundable(f"refund of {amount} exceeds what is left to refund ({sum(refundable.values())})")
        keys = list(refundable)
        shares = allocate_integer(amount, [refundable[k] for k in keys]) if keys and amount else []
        plan = {k: share for k, share in zip(keys, shares, strict=True) if share}
        for k, share in plan.items():
            refunds_so_far[k] = refunds_so_far.get(k, 0) + share
        details["refunds"] = refunds_so_far
        fully = remaining_units == 0
        update_order(ctx.db, order.id, refunded=orders.c.refunded + amount, details=details, updated_at=ctx.clock.now())
        run.state = attrs.evolve(
            run.state,
            amount=amount,
            plan={int(k): share for k, share in plan.items()},
            units=tuple(units),
            lines_refunded=tuple(counted),
            member_id=order.member_id,
            total=order.total.amount,
            fully=fully,
        )
        self._begin_saga(ctx, run)

    def unbegin_refund(self, run: RefundRun, ctx: FlowContext) -> None:
        """Take back what begin counted, when the refund was refused before any money or stock moved."""
        for unit in run.state.lines_refunded:
            ctx.db.execute(
                order_lines.update()
                .where(order_lines.c.order_id == run.order_id, order_lines.c.line_index == unit.index)
                .values(refunded_quantity=order_lines.c.refunded_quantity - unit.quantity)
            )
        details = order_details(ctx.db, run.order_id)
        refunds = {k: int(v) for k, v in details.get("refunds", {}).items()}
        for index, share in run.state.plan.items():
            refunds[str(index)] = refunds.get(str(index), 0) - share
        details["refunds"] = {k: v for k, v in refunds.items() if v}
        update_order(
            ctx.db,
            run.order_id,
            refunded=orders.c.refunded - run.state.amount,
            details=details,
            updated_at=ctx.clock.now(),
        )

    def refund_money(self, run: RefundRun, ctx: FlowContext) -> None:
        self._return_money(run, ctx, run.state.plan, void_rest=False)

    def restock(self, run: RefundRun, ctx: FlowContext) -> None:
        if not run.state.restock:
            return
        checkout = checkout_state(ctx.db, run.order_id)
        reservations = checkout.reservations() if checkout is not None else ()
        if not reservations:
            return
        reserved = [line for reservation in reservations for line in reservation.lines]
        items: list[ReservedStock] = []
        for unit in run.state.units:
            wanted = unit.quantity
            for line in reserved:
                if line.sku != unit.sku or wanted == 0:
                    continue
                take = min(wanted, line.quantity)
                items.append(ReservedStock(line.sku, line.location, take))
                wanted -= take
        if items:
            self.hooks.call(inventory.inventory_return, ctx, run.order_id, items, ctx.key_for("restock"))

    def reverse_some_points(self, run: RefundRun, ctx: FlowContext) -> None:
        member_id = run.state.member_id
        if member_id:
            currency = self.stack.currency
            self.hooks.maybe(
                membership.membership_reverse,
                ctx,
                member_id,
                run.order_id,
                Money(run.state.amount, currency),
                Money(run.state.total, currency),
                ctx.key_for("reverse-points"),
            )

    def finish_refund(self, run: RefundRun, ctx: FlowContext) -> None:
        order: Order = load_order(ctx.db, run.order_id)
        all_refunded = all(line.refunded_quantity == line.quantity for line in order.lines)
        status = OrderStatus.REFUNDED if all_refunded else OrderStatus.PARTIALLY_REFUNDED
        set_order(ctx.db, run.order_id, status=status, updated_at=ctx.clock.now())
        ctx.record(
            "order.refunded",
            {
                "amount": run.state.amount,
                "currency": self.stack.currency,
                "units": data_of(run.state.units),
                "restocked": run.state.restock,
                "reason": run.state.reason,
            },
            member_id=run.state.member_id,
        )
        # The saga is marked completed by this step's progress record (Step.completes).
