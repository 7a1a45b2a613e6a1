"""The checkout saga: price → reserve → authorize → place → capture → deliver → earn → complete.

Each step is declared next to its compensation. Placing the order is the point after which a crash is
resumed rather than compensated: the shopper's money is promised and the stock is allocated, so recovery
finishes the order (capture, delivery, points) instead of undoing it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import (
    BusinessRejection,
    InvalidValue,
    NotDeliverable,
    PaymentDeclined,
    PaymentOutcomeUnknown,
)
from retailblocks.flows.capabilities import place_adjustments, ranked_locations, release_adjustments, stock_locations
from retailblocks.flows.orders import load_order, order_details, order_from_rows, order_write, set_order
from retailblocks.flows.pricing import PricedCart, one_way, price_cart, price_lines
from retailblocks.flows.saga import SagaRun, Step, insert_saga, numbered
from retailblocks.flows.state import CheckoutState, CheckoutStep, FlowKind, GroupState, PaymentShare, data_of
from retailblocks.hookspecs import inventory, logistics, membership, payment
from retailblocks.model import (
    Cart,
    Fulfilment,
    FulfilmentGroup,
    FulfilmentKind,
    Money,
    Order,
    OrderStatus,
    Parcel,
    PaymentAuthorization,
    PaymentStatus,
    Reservation,
    ReservedStock,
    Shipment,
    ShippingQuote,
    StockDemand,
)
from retailblocks.model.serialize import from_data, to_data
from retailblocks.storage.json_text import JsonText
from retailblocks.storage.prepared import Prepared, together
from retailblocks.storage.tables import idempotency_keys, order_lines, orders

if TYPE_CHECKING:
    from retailblocks.flows.api import OrderFlows

#: How long stock stays reserved for a checkout that has not placed its order.
RESERVATION_TTL = timedelta(minutes=15)

#: What reserve writes in the order's details and no step changes afterwards.
_DETAILS_SETTLED = ("fulfilment", "adjustments", "reservation", "quote", "identities", "groups")
#: What the first step puts in the saga's state and no step changes afterwards (see SagaRunner.settled).
CHECKOUT_SETTLED = ("request_hash", "channel", "key", "member_id", "plan", "reservation", "quote", "total", "groups")

# The statements of every checkout, built once. A concurrent request with the same key fails on the key's
# INSERT with SQLAlchemy's IntegrityError, which prepared statements raise as any other statement would.
_INSERT_KEY = Prepared.insert(idempotency_keys, "key", "flow", "request_hash", "result_id", "created_at")
# The order, its lines and its saga are new rows under a fresh id: sent straight to the driver (see
# retailblocks.storage.prepared). Every column is named; ``failure`` stays NULL.
_ORDER_COLUMNS = (
    "id",
    "channel",
    "status",
    "currency",
    "member_id",
    "subtotal",
    "discount",
    "shipping",
    "total",
    "refunded",
    "idempotency_key",
    "attribution",
    "details",
    "created_at",
    "updated_at",
)
# The details arrive as JSON text, encoded by the run's details encoder (see CheckoutSteps._details).
_INSERT_ORDER = Prepared(
    orders.insert()
    .values({name: sa.bindparam(name, type_=JsonText() if name == "details" else None) for name in _ORDER_COLUMNS})
    .inline()
)
_LINE_COLUMNS = ("order_id", "line_index", "sku", "quantity", "unit_price", "discount", "refunded_quantity")
_INSERT_LINES = Prepared.insert(order_lines, *_LINE_COLUMNS)
_FAIL_ORDER = (
    orders.update()
    .where(orders.c.id == sa.bindparam("order_id"), orders.c.status != OrderStatus.FAILED.value)
    .values(status=OrderStatus.FAILED.value, failure=sa.bindparam("failure"), updated_at=sa.bindparam("updated_at"))
)


def plan_payments(cart: Cart, total: Money) -> tuple[PaymentShare, ...]:
    """Split ``total`` over the cart's payment requests; one request may leave its amount open."""
    if total.amount == 0:
        return ()
    if not cart.payments:
        raise InvalidValue(f"the cart needs a payment for {total} (give at least one payment method)")
    fixed = [p.amount for p in cart.payments if p.amount is not None]
    open_ended = [p for p in cart.payments if p.amount is None]
    if len(open_ended) > 1:
        raise InvalidValue("at most one payment may leave its amount open (it pays what is left)")
    for amount in fixed:
        if amount.currency != total.currency or amount.amount <= 0:
            raise InvalidValue(f"payment amounts must be positive {total.currency} amounts (got {amount})")
    paid = sum((a for a in fixed if a is not None), Money.zero(total.currency))
    rest = total - paid
    if rest.amount < 0 or (rest.amount > 0 and not open_ended) or (rest.amount == 0 and open_ended):
        raise InvalidValue(f"the payments add up to {paid} but the order total is {total}")
    return tuple(
        PaymentShare(request.method, request.amount if request.amount is not None else rest)
        for request in cart.payments
    )


Run = SagaRun[CheckoutState]


class CheckoutSteps:
    """The steps of checkout for one stack. Every action and compensation is idempotent."""

    def __init__(self, flows: OrderFlows):
        self.flows = flows
        self.stack = flows.stack
        self.hooks = flows.stack.hooks

    def steps(self) -> list[Step]:
        return [
            Step(CheckoutStep.RESERVE, self.reserve, self.release),
            Step(CheckoutStep.AUTHORIZE, self.authorize, self.void, outside=True),
            Step(CheckoutStep.PLACE, self.place, self.unplace),
            Step(CheckoutStep.CAPTURE, self.capture, self.refund_captures, outside=True),
            Step(CheckoutStep.DELIVER, self.deliver, self.cancel_delivery, outside=True),
            Step(CheckoutStep.EARN, self.earn, self.reverse_points),
            Step(CheckoutStep.COMPLETE, self.complete, completes=True),
        ]

    # -- reserve: the order, its price and its stock, in one transaction --------------------------

    def reserve(self, run: Run, ctx: FlowContext) -> None:
        cart = run.transient.cart
        assert cart is not None, "a checkout run begins with its cart"
        cart = one_way(cart)  # itself, unless every line names one other way to leave
        now = ctx.clock.now()
        # The key goes in first: a request with a key already used (a replay, or a concurrent request)
        # fails here, before reserving, and OrderFlows.checkout replays the first request's outcome.
        _INSERT_KEY.execute(
            ctx.db,
            {
                "key": run.key,
                "flow": FlowKind.CHECKOUT.value,
                "request_hash": run.state.request_hash,
                "result_id": run.order_id,
                "created_at": now,
            },
        )
        member = (
            self.hooks.maybe(membership.membership_identify, ctx, cart.identities, True) if cart.identities else None
        )
        lines = price_lines(cart, self.stack.catalog, self.stack.currency)
        priced = price_cart(ctx, self.hooks, cart, lines, member, self.stack.currency)
        plan = plan_payments(cart, priced.total)
        run.transient.member = member
        memo = run.transient.data
        groups: tuple[FulfilmentGroup, ...] = ()
        if priced.groups:
            # Lines that leave in several ways: a reservation and a quote per way (see _reserve_groups).
            run.state = state = attrs.evolve(
                run.state,
                member_id=member.id if member else None,
                plan=plan,
                total=priced.total.amount,
                authorizations={},
                captures={},
                groups=self._reserve_groups(ctx, cart, priced),
            )
            groups = tuple(
                FulfilmentGroup(
                    g.fulfilment,
                    g.lines,
                    Money(g.shipping, self.stack.currency),
                    g.quote.option_id if g.quote is not None else None,
                )
                for g in state.groups
            )
            details = {
                "fulfilment": to_data(cart.fulfilment),
                "adjustments": to_data(list(priced.adjustments)),
                "reservation": None,
                "quote": None,
                "identities": [str(i) for i in cart.identities],
                "groups": to_data(list(groups)),
                "authorizations": {},
                "shipments": [],
            }
        else:
            demands = [StockDemand(sku, quantity) for sku, quantity in sorted(cart.demand().items())]
            reservation = self._reserve_stock(ctx, cart.fulfilment, demands)
            run.state = state = attrs.evolve(
                run.state,
                member_id=member.id if member else None,
                plan=plan,
                reservation=reservation,
                quote=priced.quote,
                total=priced.total.amount,
                authorizations={},
                captures={},
            )
            # The settled keys first (see _DETAILS_SETTLED), in the order every later write keeps; the
            # reservation's and quote's data are the objects the saga's state is written with.
            details = {
                "fulfilment": to_data(cart.fulfilment),
                "adjustments": to_data(list(priced.adjustments)),
                "reservation": data_of(reservation, memo),
                "quote": None if state.quote is None else data_of(state.quote, memo),
                "identities": [str(i) for i in cart.identities],
                "authorizations": {},
                "shipments": [],
            }
        row = {
            "id": run.order_id,
            "channel": cart.channel,
            "status": OrderStatus.PENDING.value,
            "currency": self.stack.currency,
            "member_id": state.member_id,
            "subtotal": priced.subtotal.amount,
            "discount": priced.discount.amount,
            "shipping": priced.shipping.amount,
            "total": priced.total.amount,
            "refunded": 0,
            "idempotency_key": run.key,
            "attribution": cart.attribution,
            "details": details,
            "created_at": now,
            "updated_at": now,
        }
        line_rows = [
            {
                "order_id": run.order_id,
                "line_index": line.index,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price.amount,
                "discount": line.discount.amount if line.discount is not None else 0,
                "refunded_quantity": 0,
            }
            for line in priced.lines
        ]
        connection = ctx.db
        # Nothing is read back from these three: they leave in one round trip. (A second request for the
        # same saga still fails with IntegrityError, when the block ends.)
        with together(connection):
            # Encoded by the encoder later steps rewrite the details with: their settled part once per run.
            encoded = run.encoder("details", _DETAILS_SETTLED).encode(details)
            _INSERT_ORDER.execute(connection, {**row, "details": encoded})
            _INSERT_LINES.execute_many(connection, line_rows)
            insert_saga(connection, run, now, self.stack.lease_until(), CHECKOUT_SETTLED)
        # What later steps need of the order, kept in memory so that they neither read it back nor
        # read-modify-write its details. A saga resumed by recovery has none of it and reads the database.
        run.transient.order = (row, line_rows)
        # The order as inserted, for the steps that pass it to blocks (see _order); its fulfilment and
        # adjustments are the objects just priced rather than structured back from the details' data.
        run.transient.base_order = attrs.evolve(
            order_from_rows({**row, "details": {}, "failure": None}, line_rows),
            fulfilment=cart.fulfilment,
            adjustments=tuple(priced.adjustments),
            groups=groups,
        )
        ctx.record(
            "order.created",
            {
                "total": priced.total.amount,
                "currency": self.stack.currency,
                "lines": len(priced.lines),
                "discount": priced.discount.amount,
                "shipping": priced.shipping.amount,
                "attribution": cart.attribution,
            },
            member_id=state.member_id,
        )

    def _reserve_groups(self, ctx: FlowContext, cart: Cart, priced: PricedCart) -> tuple[GroupState, ...]:
        """A reservation per way the lines leave, each at that way's locations (the store a pick-up names,
        the locations logistics ranks for a delivery's address), in this step's one transaction.

        A group that cannot be reserved rejects the checkout with nothing half-applied: the groups
        reserved before it are released (an inventory block keeping its stock in the stack's database
        has them undone by the rollback as well; one that keeps it elsewhere needs the release)."""
        reserved: list[GroupState] = []
        try:
            for number, group in enumerate(priced.groups):
                reservation = self._reserve_stock(ctx, group.fulfilment, _demands(cart, group.lines))
                reserved.append(
                    GroupState(group.fulfilment, group.lines, reservation, group.quote, group.shipping.amount)
                )
                # A crash between two groups: the step's transaction never commits, so nothing stays held.
                self.flows.faults.check(FlowKind.CHECKOUT, f"{CheckoutStep.RESERVE}-group-{number}", "after")
        except BusinessRejection:
            for made in reserved:
                if made.reservation is not None:
                    self.hooks.call(inventory.inventory_release, ctx, made.reservation.id)
            raise
        return tuple(reserved)

    def _reserve_stock(self, ctx: FlowContext, fulfilment: Fulfilment, demands: list[StockDemand]) -> Reservation:
        if fulfilment.kind is FulfilmentKind.CARRY_OUT:
            location = ctx.channel.location if ctx.channel else None
            locations = [location] if location else stock_locations(self.hooks, ctx)
            allow_split = False
        elif fulfilment.kind is FulfilmentKind.PICKUP:
            if not fulfilment.pickup_location:
                raise InvalidValue("a pickup needs a pickup_location (the store to collect from)")
            locations, allow_split = [fulfilment.pickup_location], False
        else:
            locations = ranked_locations(self.hooks, ctx, fulfilment, stock_locations(self.hooks, ctx))
            allow_split = True
        return self.hooks.call(inventory.inventory_reserve, ctx, demands, locations, allow_split, RESERVATION_TTL)

    def release(self, run: Run, ctx: FlowContext) -> None:
        for reservation in run.state.reservations():
            self.hooks.call(inventory.inventory_release, ctx, reservation.id)
        failure = run.state.failure or "checkout failed"
        failed = ctx.db.execute(
            _FAIL_ORDER, {"order_id": run.order_id, "failure": failure, "updated_at": ctx.clock.now()}
        ).rowcount
        if failed:
            ctx.record("order.failed", {"reason": failure}, member_id=run.state.member_id)

    # -- authorize: outside calls, one per payment share ------------------------------------------

    def authorize(self, run: Run, ctx: FlowContext) -> None:
        details = run.transient.payment_details
        final = len(run.state.plan) - 1
        for index, share in enumerate(run.state.plan):
            if index in run.state.authorizations:
                continue
            key = ctx.key_for(f"authorize-{index}")
            amount = share.amount
            try:
                with self.flows.outside_call(run, ctx, last=index == final) as call:
                    authorization = self.hooks.call(
                        payment.payment_authorize,
                        call,
                        share.method,
                        amount,
                        details[index] if index < len(details) else {},
                        run.state.member_id,
                        key,
                    )
            except PaymentOutcomeUnknown:
                authorization = self._resolve_unknown(run, ctx, share.method, key, last=index == final)
            # Recorded at once: a later share failing undoes this one (see void).
            run.state = attrs.evolve(run.state, authorizations={**run.state.authorizations, index: authorization})
        made = data_of(run.state.authorizations, run.transient.data)
        details_now = self._details(run, ctx, authorizations=made)
        self._set_order(run, ctx, details=details_now)

    def _resolve_unknown(
        self, run: Run, ctx: FlowContext, method: str, key: str, *, last: bool
    ) -> PaymentAuthorization:
        try:
            with self.flows.outside_call(run, ctx, last=last) as call:
                resolved = self.hooks.call(payment.payment_status, call, method, key)
        except PaymentOutcomeUnknown:
            # The shopper is not kept waiting: the order is not placed, and recovery voids the
            # authorization if the provider later says there was one.
            raise PaymentDeclined(
                f"the {method} provider did not answer in time; the order was not placed and any hold will be released",
                reason="outcome_unknown",
            ) from None
        if resolved is None or resolved.status is not PaymentStatus.AUTHORIZED:
            raise PaymentDeclined(f"the {method} payment did not go through", reason="no_authorization")
        return resolved

    def void(self, run: Run, ctx: FlowContext) -> None:
        known = run.state.authorizations
        for index, share in enumerate(run.state.plan):
            key = ctx.key_for(f"authorize-{index}")
            authorization = known.get(index)
            if authorization is None:
                # The call may have reached the provider before the process died: ask under its key.
                with self.flows.outside_call(run, ctx) as call:
                    authorization = self.hooks.call(payment.payment_status, call, share.method, key)
            if authorization is not None:
                with self.flows.outside_call(run, ctx) as call:
                    self.hooks.call(payment.payment_void, call, authorization, ctx.key_for(f"void-{index}"))

    # -- place: the order exists from here on ---------------------------------------------------

    def place(self, run: Run, ctx: FlowContext) -> None:
        reservations = run.state.reservations()
        assert reservations, "reserve settled the order's stock"
        for reservation in reservations:
            self.hooks.call(inventory.inventory_commit, ctx, reservation.id, run.order_id)
        order = self._order(run, ctx, OrderStatus.PENDING)
        member = run.transient.member
        if member is None and order.member_id is not None and order.adjustments:
            # A saga resumed by recovery: the member as membership knows them now.
            member = self.hooks.maybe(membership.membership_member, ctx, order.member_id)
        place_adjustments(self.hooks, ctx, order, member)
        self._set_order(run, ctx, status=OrderStatus.PLACED)
        ctx.record(
            "order.placed",
            {
                "total": order.total.amount,
                "currency": order.currency,
                "lines": [
                    {"sku": line.sku, "quantity": line.quantity, "total": line.total.amount} for line in order.lines
                ],
                "coupons": [a.coupon for a in order.adjustments if a.coupon],
                "attribution": order.attribution,
            },
            member_id=order.member_id,
        )

    def unplace(self, run: Run, ctx: FlowContext) -> None:
        release_adjustments(self.hooks, ctx, self._order(run, ctx, OrderStatus.PLACED))
        reservations = run.state.reservations()
        if reservations:
            # Gives back allocated units (and units that already left, if delivery had started).
            lines = reservations[0].lines if len(reservations) == 1 else _reserved_lines(reservations)
            self.hooks.call(inventory.inventory_return, ctx, run.order_id, lines, ctx.key_for("undo-place"))

    # -- capture ----------------------------------------------------------------------------------

    def capture(self, run: Run, ctx: FlowContext) -> None:
        final = max(run.state.authorizations, default=-1)
        for index, authorization in sorted(run.state.authorizations.items()):
            if index in run.state.captures:
                continue
            with self.flows.outside_call(run, ctx, last=index == final) as call:
                capture = self.hooks.call(
                    payment.payment_capture, call, authorization, authorization.amount, ctx.key_for(f"capture-{index}")
                )
            # Recorded at once, as authorize records: the order now holds a captured payment.
            run.state = attrs.evolve(
                run.state,
                captures={**run.state.captures, index: capture.amount.amount},
                authorizations={
                    **run.state.authorizations,
                    index: attrs.evolve(authorization, status=PaymentStatus.CAPTURED),
                },
            )
        captures = run.state.captures
        details = self._details(run, ctx, captures=data_of(captures, run.transient.data))
        self._set_order(run, ctx, status=OrderStatus.PAID, details=details)
        ctx.record(
            "order.paid",
            {"captured": sum(captures.values()), "currency": self.stack.currency},
            member_id=run.state.member_id,
        )

    def refund_captures(self, run: Run, ctx: FlowContext) -> None:
        for index, authorization in sorted(run.state.authorizations.items()):
            key = ctx.key_for(f"capture-{index}")
            captured = run.state.captures.get(index)
            with self.flows.outside_call(run, ctx) as call:
                if captured is None:
                    # Unknown whether the capture happened: capturing again under the same key returns the
                    # provider's earlier answer without charging twice, and tells us what to refund.
                    captured = self.hooks.call(
                        payment.payment_capture, call, authorization, authorization.amount, key
                    ).amount.amount
                if captured:
                    self.hooks.call(
                        payment.payment_refund,
                        call,
                        authorization,
                        Money(captured, authorization.amount.currency),
                        ctx.key_for(f"undo-capture-{index}"),
                    )

    # -- deliver ----------------------------------------------------------------------------------

    def deliver(self, run: Run, ctx: FlowContext) -> None:
        if run.state.groups:
            self._deliver_groups(run, ctx)
            return
        reservation = run.state.reservation
        assert reservation is not None
        # Back-ordered units stay allocated to the order until they are received; the rest leave now.
        parcels = parcels_from([line for line in reservation.lines if not line.backordered])
        backordered = [to_data(line) for line in reservation.lines if line.backordered]
        quote = run.state.quote
        if quote is not None and parcels:
            # Known from the earlier steps; a resumed saga reads it on a connection of its own, so the carrier
            # is called before this step's transaction opens.
            order = self._order(run, None, OrderStatus.PAID)
            shipment = self.hooks.call(logistics.logistics_arrange, ctx, order, quote, parcels, ctx.key_for("deliver"))
            run.state = attrs.evolve(run.state, shipments=(shipment,))
        shipments = data_of(run.state.shipments, run.transient.data)
        if parcels:
            self.hooks.call(inventory.inventory_fulfil, ctx, run.order_id, parcels)
        details = self._details(run, ctx, shipments=shipments, backordered=backordered)
        self._set_order(run, ctx, details=details)
        if backordered:
            ctx.record("order.backordered", {"lines": backordered}, member_id=run.state.member_id)

    def _deliver_groups(self, run: Run, ctx: FlowContext) -> None:
        """One shipment per way the lines leave (a pick-up is made ready at its store, each delivery booked
        with its own option), each under a key of its own: a resumed step books each again under the same
        key, which the logistics block answers with the shipment it booked before."""
        made: list[Shipment] = []
        order: Order | None = None
        for number, group in enumerate(run.state.groups):
            lines = group.reservation.lines if group.reservation is not None else ()
            parcels = parcels_from([line for line in lines if not line.backordered])
            if group.quote is None or not parcels:
                continue
            if order is None:
                order = self._order(run, None, OrderStatus.PAID)
            key = ctx.key_for(numbered("deliver", number))
            made.append(self.hooks.call(logistics.logistics_arrange, ctx, order, group.quote, parcels, key))
            # Known at once, booking by booking: if a later group's booking fails, undoing the step cancels
            # the ones made before it.
            run.state = attrs.evolve(run.state, shipments=tuple(made))
            self.flows.faults.check(FlowKind.CHECKOUT, f"{CheckoutStep.DELIVER}-group-{number}", "after")
        reserved = _reserved_lines(run.state.reservations())
        parcels = parcels_from([line for line in reserved if not line.backordered])
        backordered = [to_data(line) for line in reserved if line.backordered]
        if parcels:
            self.hooks.call(inventory.inventory_fulfil, ctx, run.order_id, parcels)
        shipments = data_of(run.state.shipments, run.transient.data)
        details = self._details(run, ctx, shipments=shipments, backordered=backordered)
        self._set_order(run, ctx, details=details)
        if backordered:
            ctx.record("order.backordered", {"lines": backordered}, member_id=run.state.member_id)

    def cancel_delivery(self, run: Run, ctx: FlowContext) -> None:
        bookings = self._bookings(run)
        if not bookings:
            return
        stored = order_details(ctx.db, run.order_id).get("shipments", [])
        shipments = [from_data(data, Shipment) for data in stored] or self._book_again(run, ctx, bookings)
        for number, shipment in enumerate(shipments):
            self.hooks.call(logistics.logistics_cancel, ctx, shipment, ctx.key_for(numbered("undo-deliver", number)))

    def _bookings(self, run: Run) -> list[tuple[str, ShippingQuote, tuple[Parcel, ...]]]:
        """What deliver books, one booking per way the order leaves: the name of its key, the quote and
        the parcels (the units that are not back-ordered)."""
        if run.state.groups:
            groups = enumerate(run.state.groups)
            ways = [(numbered("deliver", n), group.quote, group.reservation) for n, group in groups]
        else:
            ways = [("deliver", run.state.quote, run.state.reservation)]
        bookings = []
        for name, quote, reservation in ways:
            lines = reservation.lines if reservation is not None else ()
            parcels = parcels_from([line for line in lines if not line.backordered])
            if quote is not None and parcels:
                bookings.append((name, quote, parcels))
        return bookings

    def _book_again(
        self, run: Run, ctx: FlowContext, bookings: Sequence[tuple[str, ShippingQuote, tuple[Parcel, ...]]]
    ) -> list[Shipment]:
        """The shipments deliver booked, when its record of them rolled back with its transaction (a later
        step of its group failed, or the process died in it) while the carrier, called before that
        transaction opened, kept the bookings. Booking again under the same keys answers with what the
        carrier booked — or books now, to be cancelled at once: the way to learn an outcome that is not
        known, as capturing again does for a payment. A booking the carrier refuses was never made."""
        order = self._order(run, None, OrderStatus.PAID)
        shipments = []
        for name, quote, parcels in bookings:
            try:
                shipments.append(
                    self.hooks.call(logistics.logistics_arrange, ctx, order, quote, parcels, ctx.key_for(name))
                )
            except NotDeliverable:
                continue
        return shipments

    # -- earn -------------------------------------------------------------------------------------

    def earn(self, run: Run, ctx: FlowContext) -> None:
        member_id = run.state.member_id
        if member_id:
            order = self._order(run, ctx, OrderStatus.PAID)
            self.hooks.maybe(membership.membership_earn, ctx, member_id, order, ctx.key_for("earn"))
            run.transient.paid_order = order  # complete changes only its status

    def reverse_points(self, run: Run, ctx: FlowContext) -> None:
        member_id = run.state.member_id
        if member_id:
            total = Money(run.state.total, self.stack.currency)
            self.hooks.maybe(
                membership.membership_reverse, ctx, member_id, run.order_id, total, total, ctx.key_for("undo-earn")
            )

    # -- complete ---------------------------------------------------------------------------------

    def complete(self, run: Run, ctx: FlowContext) -> None:
        # What deliver wrote to the order's details, derived again from the saga's state instead of read.
        waiting = any(line.backordered for reservation in run.state.reservations() for line in reservation.lines)
        # An order with back-ordered units stays "paid" until they are received and sent.
        status = OrderStatus.PAID if waiting else OrderStatus.FULFILLED
        self._set_order(run, ctx, status=status)
        # The saga is marked completed by this step's progress record (Step.completes).
        ctx.record("order.completed", {"total": run.state.total}, member_id=run.state.member_id)
        # The order as the caller gets it: as earn saw it with its final status, or built like earn builds it
        # (a resumed saga reads it, in this transaction).
        paid = run.transient.paid_order
        run.transient.result = attrs.evolve(paid, status=status) if paid is not None else self._order(run, ctx, status)

    # -- the order as the steps know it -----------------------------------------------------------

    def _set_order(
        self, run: Run, ctx: FlowContext, *, status: OrderStatus | None = None, details: Any | None = None
    ) -> None:
        """Change the order's status or details when the step's transaction records its progress: steps that
        share a transaction (authorize and place; deliver and complete) write the order's row once."""
        pending = run.transient.order_write
        if status is not None:
            pending["status"] = status
        if details is not None:
            pending["details"] = details
        pending["updated_at"] = ctx.clock.now()

    def write_order(self, run: Run, ctx: FlowContext) -> None:
        """What the steps of this transaction changed of the order, in one statement, now: before the
        order is read back in the transaction."""
        pending = run.transient.order_write
        if pending:
            set_order(ctx.db, run.order_id, **pending)
            pending.clear()

    def write_order_at_commit(self, run: Run, ctx: FlowContext) -> None:
        """The same, sent as the transaction commits (the runner's ``before_progress``): nothing reads the
        order back after its progress, so the write leaves with the commit (one round trip fewer)."""
        pending = run.transient.order_write
        if pending:
            ctx.uow.defer(*order_write(run.order_id, **pending))
            pending.clear()

    def _details(self, run: Run, ctx: FlowContext | None, **changes: Any) -> dict[str, Any] | str:
        """The order's details with ``changes``, as the next write stores them.

        Each write holds everything the steps before it wrote (authorizations, then captures, then
        shipments), taken from the saga's state — which commits with the write — so nothing is read back:
        as JSON text whose settled part (what reserve wrote) is encoded once per run. A resumed saga,
        which does not have the inserted details in memory, reads them once.
        """
        known = run.transient.order
        if known is None:
            assert ctx is not None
            self.write_order(run, ctx)
            return {**order_details(ctx.db, run.order_id), **changes}
        memo = run.transient.data
        details: dict[str, Any] = {**known[0]["details"], "authorizations": data_of(run.state.authorizations, memo)}
        if "captures" in changes or CheckoutStep.CAPTURE in run.done:
            details["captures"] = data_of(run.state.captures, memo)
        if "shipments" not in changes and CheckoutStep.DELIVER in run.done:
            details["shipments"] = data_of(run.state.shipments, memo)
            lines = _reserved_lines(run.state.reservations())
            details["backordered"] = [to_data(line) for line in lines if line.backordered]
        details.update(changes)
        return run.encoder("details", _DETAILS_SETTLED).encode(details)

    def _order(self, run: Run, ctx: FlowContext | None, status: OrderStatus) -> Order:
        """The order in ``status``, as the database holds it at this point of the saga.

        Built from what reserve inserted and the saga's state; a resumed saga reads it (on ``ctx``'s
        connection, or on a read-only connection of its own when ``ctx`` is None).
        """
        base = run.transient.base_order  # what reserve inserted, as an order
        if base is None:
            if ctx is None:
                return self.flows.order(run.order_id)
            self.write_order(run, ctx)
            return load_order(ctx.db, run.order_id)
        return attrs.evolve(
            base,
            status=status,
            payments=tuple(run.state.authorizations.values()),
            shipments=run.state.shipments if CheckoutStep.DELIVER in run.done else (),
        )


def _demands(cart: Cart, indexes: Sequence[int]) -> list[StockDemand]:
    """What the lines at ``indexes`` need, summed per SKU (two lines of one SKU are one demand)."""
    wanted: dict[str, int] = defaultdict(int)
    for index in indexes:
        wanted[cart.lines[index].sku] += cart.lines[index].quantity
    return [StockDemand(sku, quantity) for sku, quantity in sorted(wanted.items())]


def _reserved_lines(reservations: Sequence[Reservation]) -> tuple[ReservedStock, ...]:
    return tuple(line for reservation in reservations for line in reservation.lines)


def parcels_from(lines: Sequence[ReservedStock]) -> tuple[Parcel, ...]:
    """One parcel per location, its lines sorted by SKU."""
    by_location: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        by_location[line.location][line.sku] += line.quantity
    return tuple(Parcel(location, tuple(sorted(skus.items()))) for location, skus in sorted(by_location.items()))


def cart_fingerprint_data(cart: Cart, key: bytes) -> Any:
    """What identifies a checkout request for idempotency: the cart, its payment details as a keyed hash
    (a different card under one key is a different request, and no card number is stored)."""
    data = to_data(cart)
    for line in data.get("lines", []):
        # A line without its own fulfilment is fingerprinted as before lines could have one, so a checkout
        # retried with its key across that upgrade is the same request, not a conflict.
        if line.get("fulfilment") is None:
            line.pop("fulfilment", None)
    for requested in data.get("payments", []):
        details = json.dumps(requested.get("details", {}), sort_keys=True, separators=(",", ":"))
        requested["details"] = hmac.new(key, details.encode(), hashlib.sha256).hexdigest()
    return data


__all__ = ["CHECKOUT_SETTLED", "RESERVATION_TTL", "CheckoutSteps", "parcels_from", "plan_payments"]
