"""A reproducible simulated retail day against an assembled stack.

Every shopper's request is drawn from ``random.Random(f"{seed}:{n}")``, so the day's requests are the same
for the same seed whatever the number of workers; with one worker the outcomes are the same too (with
several, which of two racing checkouts gets the last unit depends on the scheduler — the invariants hold
either way).

A day may run on any stack, any number of times, beside other processes: its idempotency keys carry the
run's own id (``sim-<seed>-<run>-…``), it refunds, cancels and tracks only its own orders, and its invariants
are checked relative to the stack as the day found it (see ``check_invariants`` with a ``Baseline``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import ManualClock
from retailblocks.errors import BusinessRejection, InvalidInput
from retailblocks.hookspecs import inventory, lifecycle, payment
from retailblocks.model import (
    Address,
    Cart,
    CartLine,
    ChannelType,
    Fulfilment,
    FulfilmentKind,
    Identity,
    Money,
    Order,
    OrderStatus,
    PaymentRequest,
)
from retailblocks.model.channel import MARKETPLACE_PAYMENT_METHOD
from retailblocks.simulation.invariants import Invariant, baseline, check_invariants, last_event_id
from retailblocks.simulation.moments import Moments
from retailblocks.simulation.profile import PaymentChoice, Profile
from retailblocks.stack import Stack
from retailblocks.storage.tables import orders as orders_table

if TYPE_CHECKING:
    from retailblocks.simulation.wire import Wire

IDENTITY_FOR_CHANNEL = {
    ChannelType.ONLINE: "openid",
    ChannelType.STORE: "phone",
    ChannelType.MARKETPLACE: "marketplace",
    ChannelType.SOCIAL: "social",
}


#: How long a day through the wire waits, at most, for the flows the servers left half-way to settle.
SETTLE_SECONDS = 90.0


@attrs.define
class DayResult:
    attempted: int = 0
    placed: int = 0
    replays: int = 0
    rejections: Counter[str] = attrs.field(factory=Counter)
    by_channel: Counter[str] = attrs.field(factory=Counter)
    refunds: int = 0
    cancels: int = 0
    seconds: float = 0.0
    invariants: list[Invariant] = attrs.field(factory=list)
    orders: list[Order] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    #: Units an operator added (positive) or wrote off (negative) during the day, per SKU.
    stock_adjustments: Counter[str] = attrs.field(factory=Counter)
    #: The outbox's events of the day: after ``events_after`` (the last one before the store opened), up to
    #: ``events_up_to`` (the last one when the day ended; None for the newest).
    events_after: int = 0
    events_up_to: int | None = None

    @property
    def ok(self) -> bool:
        return all(invariant.ok for invariant in self.invariants)


class RetailDay:
    """One simulated day on ``stack``. ``run`` tells this day's keys from any other run's on the same stack,
    the same seed included (default: an id from the stack's id factory); the shoppers' requests depend on
    the seed alone."""

    def __init__(
        self,
        stack: Stack,
        profile: Profile,
        *,
        seed: int,
        clock: ManualClock | None = None,
        run: str | None = None,
        wire: Wire | None = None,
    ):
        self.stack = stack
        #: The day's clients when it runs through the wire (``blocks demo --http``): shoppers and the back
        #: office send HTTP requests to ``blocks serve`` instead of calling ``stack``.
        self.wire = wire
        self.profile = profile
        self.seed = seed
        self.clock = clock
        self.run_id = run if run is not None else stack.ids.new_id("run")
        # Every idempotency key the day sends starts with this: a second run on the same stack must not
        # replay the first one's checkouts, refunds or stock receipts, and own_orders() finds the day's
        # orders by it. The trailing dash keeps run "ab" from matching run "abc".
        self.key_prefix = f"sim-{seed}-{self.run_id}-"
        # What the stack had recorded before this day: what it exercised is counted from here on.
        self.events_after = last_event_id(stack)
        self.channels = list(stack.channels.values())
        self.skus = sorted(p.sku for p in stack.catalog.values())
        if not self.skus:
            raise InvalidInput(
                f"the manifest {stack.manifest.path} has no catalog: a simulation needs products to sell"
            )
        # A shopper pays with what the stack's blocks take; "marketplace" is only for orders a marketplace
        # collected and its connector imports, never a shopper's choice.
        self.methods = set(stack.hooks.routes.payment_methods) - {MARKETPLACE_PAYMENT_METHOD}
        self.gift_cards: list[str] = []
        #: identity value → (coupon code, channel it is valid in), filled by the midday campaigns
        self.campaign_coupons: dict[str, tuple[str, str | None]] = {}
        self._lock = threading.Lock()

    def key(self, name: str | int) -> str:
        """This run's idempotency key for ``name``."""
        return f"{self.key_prefix}{name}"

    # -- opening ----------------------------------------------------------------------------------

    def open_store(self) -> None:
        """Receive the opening stock and issue the gift cards shoppers will pay with."""
        if self.wire is not None:
            self._open_store_through(self.wire)
            return
        with self.stack.context(flow="simulation") as ctx:
            for index, line in enumerate(self.profile.stock):
                self.stack.hooks.call(
                    inventory.inventory_adjust,
                    ctx,
                    line.sku,
                    line.location,
                    line.quantity,
                    "opening stock",
                    self.key(f"stock-{index}"),
                )
        Moments(self).opening()
        if "gift_card" in self.methods and any(p.split_gift_card for p in self.profile.payments):
            value = Money.parse(f"{self.profile.gift_card_value} {self.stack.currency}")
            for index in range(max(4, self.profile.members // 4)):
                with self.stack.context(flow="simulation") as ctx:
                    self.gift_cards.append(
                        self.stack.hooks.call(
                            payment.payment_issue, ctx, "gift_card", value, None, self.key(f"gift-{index}")
                        )
                    )

    def _open_store_through(self, wire: Wire) -> None:
        for index, line in enumerate(self.profile.stock):
            wire.receive(line.sku, line.location, line.quantity, "opening stock", self.key(f"stock-{index}"))
        Moments(self).opening()  # members who joined before the day: not an action of the day's clients
        if "gift_card" in self.methods and any(p.split_gift_card for p in self.profile.payments):
            value = Money.parse(f"{self.profile.gift_card_value} {self.stack.currency}")
            for index in range(max(4, self.profile.members // 4)):
                self.gift_cards.append(wire.issue_gift_card(value, self.key(f"gift-{index}")))

    # -- shoppers ---------------------------------------------------------------------------------

    def cart_for(self, n: int) -> tuple[Cart, bool]:
        rng = random.Random(f"{self.seed}:{n}")
        channel = rng.choices(
            self.channels, weights=[self.profile.channel_weights.get(c.id, 1) for c in self.channels]
        )[0]
        skus = [sku for sku in self.skus if self.stack.catalog[sku].sold_in(channel.id)] or self.skus
        weights = [self.profile.sku_weights.get(sku, 1) for sku in skus]
        lines = [
            CartLine(rng.choices(skus, weights=weights)[0], rng.randint(1, self.profile.max_quantity))
            for _ in range(rng.randint(1, self.profile.max_lines))
        ]
        identities: tuple[Identity, ...] = ()
        person: int | None = None
        if rng.randrange(100) >= self.profile.guest_percent:
            person = rng.randrange(self.profile.members)
            kind = self.profile.identity_kinds.get(channel.id) or IDENTITY_FOR_CHANNEL[channel.type]
            phone = Identity("phone", f"+86138{person:08d}")
            identities = (phone if kind == "phone" else Identity(kind, f"{kind}-{person:04d}"),)
            if kind != "phone" and rng.randrange(100) < 20:
                # Shoppers sometimes give their phone too: that is how identities from channels meet.
                identities += (phone,)
        fulfilment = self._fulfilment(rng, channel.type, channel.location)
        coupons = tuple(
            c.code
            for c in self.profile.coupons
            if (not c.channels or channel.id in c.channels) and rng.randrange(100) < c.probability_percent
        )[:1]
        if person is not None:
            # A member who got a campaign coupon signs in with the phone it was sent to and uses it.
            phone = Identity("phone", f"+86138{person:08d}")
            offer = self.campaign_coupons.get(phone.value)
            if offer is not None and offer[1] in (None, channel.id):
                coupons = (offer[0],)
                if phone not in identities:
                    identities += (phone,)
        payments = self._payments(rng, identities, n)
        replay = rng.randrange(100) < self.profile.replay_percent
        cart = Cart(
            channel=channel.id,
            lines=tuple(lines),
            payments=payments,
            identities=identities,
            fulfilment=fulfilment,
            coupons=coupons,
        )
        return cart, replay

    def _fulfilment(self, rng: random.Random, kind: ChannelType, location: str | None) -> Fulfilment:
        if kind is ChannelType.STORE:
            return Fulfilment(FulfilmentKind.CARRY_OUT)
        pickups = [c.location for c in self.channels if c.type is ChannelType.STORE and c.location]
        if pickups and kind is ChannelType.ONLINE and rng.randrange(100) < self.profile.pickup_percent:
            return Fulfilment(FulfilmentKind.PICKUP, pickup_location=rng.choice(pickups))
        if self.profile.destinations:
            d = rng.choice(self.profile.destinations)
            return Fulfilment(
                FulfilmentKind.DELIVERY,
                Address(country=d.country, region=d.region, city=d.city, latitude=d.latitude, longitude=d.longitude),
            )
        return Fulfilment(FulfilmentKind.CARRY_OUT)

    def _payments(self, rng: random.Random, identities: tuple[Identity, ...], n: int) -> tuple[PaymentRequest, ...]:
        choices = [p for p in self.profile.payments if p.method in self.methods] or [
            PaymentChoice(weight=1, method=sorted(self.methods)[0])
        ]
        choice = rng.choices(choices, weights=[c.weight for c in choices])[0]
        payments: list[PaymentRequest] = []

        def pay(method: str, amount: Money | None, details: dict[str, str]) -> None:
            payments.append(PaymentRequest(method, amount, self._payment_details(method, details, n, len(payments))))

        if choice.split_gift_card and self.gift_cards:
            amount = Money(rng.randint(1, 20) * 100, self.stack.currency)
            pay("gift_card", amount, {"code": rng.choice(self.gift_cards)})
        # Wallets and welcome points belong to the members who joined with their phone (see Moments).
        known_member = any(i.kind.value == "phone" for i in identities)
        if choice.points_share_percent and known_member and "points" in self.methods:
            # A member spends a few yuan of points and pays the rest by card.
            amount = Money(rng.randint(1, 3) * 100, self.stack.currency)
            pay("points", amount, {})
            pay("card", None, PaymentChoice(weight=1, card_number=choice.card_number).payment_details())
            return tuple(payments)
        if choice.method == "wallet" and not known_member:
            choice = PaymentChoice(weight=1)  # no wallet: pays by card
        pay(choice.method, None, choice.payment_details())
        return tuple(payments)

    def _payment_details(self, method: str, details: dict[str, str], n: int, index: int) -> dict[str, str]:
        """The details shopper ``n`` sends with its ``index``-th payment: the profile's, completed by the
        block that takes ``method`` if it simulates it (simulation_payment_details). The block draws from
        a generator of its own, seeded by the day's seed and the shopper: reproducible, and what it draws
        leaves the rest of the day's draws as they were."""
        if method not in self.methods:
            return details
        rng = random.Random(f"{self.seed}:{n}:payment:{index}")
        simulated = self.stack.hooks.maybe(lifecycle.simulation_payment_details, method, dict(details), rng)
        return details if simulated is None else dict(simulated)

    # -- the day ----------------------------------------------------------------------------------

    def run(self, orders: int, *, workers: int = 1, progress: Callable[[int], None] | None = None) -> DayResult:
        result = DayResult(events_after=self.events_after)
        # Everything is checked against the stack as it was now: earlier runs and other processes' orders
        # are not this day's, and what other processes do meanwhile is told apart by the outbox.
        before = baseline(self.stack)
        started = time.perf_counter()
        opening: datetime | None = self.clock.now() if self.clock else None
        step = timedelta(hours=self.profile.day_hours) / max(orders, 1)

        def shop(n: int) -> None:
            if self.clock is not None and opening is not None:
                moment = opening + step * n
                if moment > self.clock.now():
                    self.clock.set(moment)
            cart, replay = self.cart_for(n)
            key = self.key(n)
            try:
                order = self.stack.checkout(cart, key=key)
                if replay:
                    again = self.stack.checkout(cart, key=key)
                    if again.id != order.id:
                        raise AssertionError("a replayed checkout placed a second order")
                with self._lock:
                    result.placed += 1
                    result.replays += int(replay)
                    result.by_channel[cart.channel] += 1
            except BusinessRejection as rejection:
                with self._lock:
                    result.rejections[rejection.cause] += 1
            finally:
                with self._lock:
                    result.attempted += 1
                if progress is not None:
                    progress(1)

        def shop_range(numbers: range) -> None:
            if self.wire is not None:
                shop_through(self.wire, numbers)
                return
            if workers <= 1:
                for n in numbers:
                    shop(n)
                return
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for future in [pool.submit(shop, n) for n in numbers]:
                    future.result()

        def shop_through(wire: Wire, numbers: range) -> None:
            from retailblocks.simulation.wire import Purchase, cart_document

            purchases = []
            for n in numbers:
                cart, replay = self.cart_for(n)
                purchases.append(Purchase(n, cart.channel, self.key(n), cart_document(cart), replay))
            for outcome in wire.shop(purchases, progress):
                result.attempted += 1
                if outcome.cause is not None:
                    result.rejections[outcome.cause] += 1
                    continue
                result.placed += 1
                result.replays += int(outcome.replay)
                result.by_channel[outcome.channel] += 1

        # At midday the merchant runs its campaigns over what the morning taught it; afternoon shoppers
        # bring the coupons they received.
        midday = orders // 2 if self.stack.manifest.campaigns else orders
        shop_range(range(midday))
        if midday < orders:
            self.campaign_coupons = Moments(self).midday_campaigns(result)
        shop_range(range(midday, orders))
        self._aftercare(result)
        Moments(self).after_hours(result)
        if self.clock is not None:
            self.clock.advance(timedelta(hours=1))
        # The day's own flows that a failure left half-way (a card whose outcome was unknown): this process
        # began them and runs none of them any more, so it takes them back without waiting for their leases.
        # Other processes' flows are theirs, and their leases are respected.
        if self.wire is not None:
            stuck = self._settle_served_flows(result)
        else:
            stuck = len(self.stack.recover(ignore_leases=True, orders=self.own_orders()).stuck)
        if stuck:
            result.notes.append(f"{stuck} flows could not be finished")
        # The run ends here: the events it caused are those recorded so far, and the dispatch below must
        # deliver every one of them; events other processes record from now on are theirs to deliver.
        last_event = result.events_up_to = last_event_id(self.stack)
        self.stack.dispatch_events()
        result.seconds = time.perf_counter() - started
        result.orders = self.own_order_list()
        result.invariants = check_invariants(
            self.stack, before, result.orders, result.stock_adjustments, events_up_to=last_event
        )
        return result

    def _settle_served_flows(self, result: DayResult) -> int:
        """The operator recovers what the servers left half-way; returns how many flows are stuck.

        A checkout whose card payment timed out leaves its flow for recovery until the gateway can tell what
        became of it (the sandbox gateway's ``timeout_resolution``, in real time here). Every request of the
        day has been answered, so none of its flows is being worked on: they are taken back without waiting
        for their leases, as the day in process does, until none is left running (bounded).
        """
        stuck = self.wire.recover(self.key("recover")) if self.wire is not None else 0
        own = self.own_orders()
        deadline = time.monotonic() + SETTLE_SECONDS
        waited = False
        while True:
            running = [f for f in self.stack.unfinished_flows(status="running") if f.order_id in own]
            if not running or time.monotonic() > deadline:
                break
            waited = True
            time.sleep(1.0)
            report = self.stack.recover(ignore_leases=True, orders={f.order_id for f in running})
            stuck = len(report.stuck)
        if waited:
            result.notes.append("waited for the card gateway to tell what became of timed-out payments")
        return stuck

    def _own_keys(self) -> dict[str, str]:
        """Order id → checkout key, for the orders under this run's own checkout keys."""
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            rows = connection.execute(
                sa.select(orders_table.c.id, orders_table.c.idempotency_key).where(
                    # Through the wire the flows see the key scoped by the API key that sent it
                    # (``http:<key id>:<key>``): the run's prefix is inside it, not at its start.
                    orders_table.c.idempotency_key.contains(self.key_prefix, autoescape=True)
                    if self.wire is not None
                    else orders_table.c.idempotency_key.startswith(self.key_prefix, autoescape=True)
                )
            ).all()
            connection.rollback()
        return {row.id: row.idempotency_key for row in rows}

    def own_orders(self) -> set[str]:
        """The orders this day's shoppers placed or tried to place: those under its own checkout keys."""
        return set(self._own_keys())

    def own_order_list(self, status: OrderStatus | None = None) -> list[Order]:
        """This run's orders, by shopper number: the order the seed gave them, whoever placed them first."""
        keys = self._own_keys()

        def shopper(order: Order) -> int:
            return int(keys[order.id].partition(self.key_prefix)[2])

        found = self.stack.orders(status=status.value) if status is not None else self.stack.orders()
        return sorted((order for order in found if order.id in keys), key=shopper)

    def _aftercare(self, result: DayResult) -> None:
        """Some shoppers come back: a partial refund of one line, or a cancellation."""
        rng = random.Random(f"{self.seed}:aftercare")
        for order in self.own_order_list(OrderStatus.FULFILLED):
            roll = rng.randrange(100)
            try:
                if roll < self.profile.cancel_percent:
                    if self.wire is not None:
                        self.wire.cancel(order.id, "changed mind", self.key(f"cancel-{order.id}"))
                    else:
                        self.stack.cancel(order.id, reason="changed mind")
                    result.cancels += 1
                elif roll < self.profile.cancel_percent + self.profile.refund_percent:
                    line = rng.choice(order.lines)
                    lines = {line.index: max(1, line.quantity // 2)}
                    if self.wire is not None:
                        self.wire.refund(order.id, lines, self.key(f"refund-{order.id}"))
                    else:
                        self.stack.refund(order.id, lines, key=self.key(f"refund-{order.id}"))
                    result.refunds += 1
            except BusinessRejection as rejection:
                result.rejections[f"aftercare_{rejection.cause}"] += 1


#: What the events of a day say the stack did, in a merchant's words.
FEATURES = {
    "stock.reserved": "stock reserved for checkouts",
    "stock.expired": "abandoned reservations expired",
    "stock.returned": "units returned to stock",
    "stock.adjusted": "operator stock adjustments",
    "stock.low": "low-stock alerts",
    "order.backordered": "orders sold on back-order",
    "payment.authorized": "payments authorized",
    "payment.declined": "payments declined",
    "payment.voided": "authorizations voided",
    "payment.refunded": "refunds to the original payment",
    "stored_value.issued": "gift cards and wallets issued",
    "points.held": "points spent as payment",
    "points.earned": "points earned",
    "points.reversed": "points reversed for refunds",
    "points.expired": "points expired",
    "member.enrolled": "members enrolled",
    "member.identity_linked": "identities linked across channels",
    "member.merged": "members merged across channels",
    "member.tier_changed": "members moved up a tier",
    "promotion.redeemed": "promotions and coupons redeemed",
    "shipment.created": "shipments booked",
    "shipment.ready_for_pickup": "click-and-collect orders ready",
    "shipment.collected": "orders collected or carried out",
    "shipment.delivered": "parcels delivered",
    "order.cancelled": "orders cancelled",
    "order.refunded": "refunds by line",
}


def features_exercised(stack: Stack, after: int = 0, up_to: int | None = None) -> dict[str, int]:
    """How often the day did each thing, counted from the event outbox (its events after ``after``, up to
    ``up_to``: an earlier run's are not this day's; another process's meanwhile are counted too)."""
    from retailblocks.storage.tables import outbox

    query = sa.select(outbox.c.type, sa.func.count()).where(outbox.c.id > after)
    if up_to is not None:
        query = query.where(outbox.c.id <= up_to)
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = connection.execute(query.group_by(outbox.c.type)).all()
        counts: dict[str, int] = {str(event_type): int(count) for event_type, count in rows}
        connection.rollback()
    return {label: int(counts.get(event_type, 0)) for event_type, label in FEATURES.items()}


def summarize(stack: Stack, result: DayResult) -> dict[str, Any]:
    currency = stack.currency
    placed = [o for o in result.orders if o.status not in (OrderStatus.FAILED, OrderStatus.PENDING)]
    gross = sum(o.total.amount for o in placed if o.status is not OrderStatus.CANCELLED)
    refunded = sum(o.refunded.amount for o in placed if o.refunded and o.status is not OrderStatus.CANCELLED)
    discount_by_funder: Counter[str] = Counter()
    coupon_orders = 0
    for order in placed:
        if order.status is OrderStatus.CANCELLED:
            continue
        for adjustment in order.adjustments:
            for funder, part in adjustment.funded_by:
                discount_by_funder[funder] += part.amount
        coupon_orders += int(any(a.coupon for a in order.adjustments))
    members = {o.member_id for o in placed if o.member_id}
    return {
        "orders_attempted": result.attempted,
        "orders_placed": result.placed,
        "replayed_requests": result.replays,
        "rejections": dict(sorted(result.rejections.items())),
        "orders_by_channel": dict(sorted(result.by_channel.items())),
        "cancelled": result.cancels,
        "refunds": result.refunds,
        "revenue": Money(gross - refunded, currency).format(),
        "gross_sales": Money(gross, currency).format(),
        "refunded": Money(refunded, currency).format(),
        "discounts_by_funder": {k: Money(v, currency).format() for k, v in sorted(discount_by_funder.items())},
        "orders_with_coupons": coupon_orders,
        "members_buying": len(members),
        "seconds": round(result.seconds, 2),
        "orders_per_second": round(result.attempted / result.seconds, 1) if result.seconds else None,
        "features": features_exercised(stack, result.events_after, result.events_up_to),
        "invariants": [{"name": i.name, "ok": i.ok, "detail": i.detail} for i in result.invariants],
        "ok": result.ok,
        "notes": result.notes,
    }
