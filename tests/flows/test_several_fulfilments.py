"""An order whose lines leave in several ways: beans picked up at the store, a mug delivered by the standard
option, tea sent express. Each way is one group with its own reservation where it leaves from, its own
shipping quote (summed into the total), its own shipping promotions and its own shipment; a group that
cannot be reserved leaves nothing held and nothing charged; a crash between groups is finished or undone
by recovery; cancelling and refunding give every unit back where it came from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from retailblocks_logistics.carriers import Booking, BookingRequest, CarrierRefused
from retailblocks_logistics.testing import FakeCarrier

from retailblocks.errors import OutOfStock
from retailblocks.flows.saga import SimulatedCrash
from retailblocks.flows.state import CheckoutState, load_state
from retailblocks.model import (
    Address,
    AdjustmentTarget,
    Cart,
    CartLine,
    Fulfilment,
    FulfilmentKind,
    Money,
    OrderStatus,
    ShipmentStatus,
)
from retailblocks.model.serialize import to_data
from retailblocks.simulation.invariants import check_invariants, stock_snapshot
from retailblocks.stack import Stack
from tests.flows.test_promotions_fulfilment import PROMOTIONS, manifest
from tests.helpers import card, levels, make_stack, receive

#: Half off the shipping of what goes express, and nothing off the standard option's.
HALF_EXPRESS_SHIPPING = (
    "        - {id: express-ship, target: shipping, delivery_options: [sf-express], value_type: percentage,\n"
    "           value: 50}\n"
)
SHANGHAI = Address(country="CN", region="Shanghai", latitude=31.2, longitude=121.45)
PICKUP = Fulfilment(FulfilmentKind.PICKUP, pickup_location="store-a")
STANDARD = Fulfilment(FulfilmentKind.DELIVERY, SHANGHAI, option_id="sf-std")
EXPRESS = Fulfilment(FulfilmentKind.DELIVERY, SHANGHAI, option_id="sf-express")


def cny(minor: int) -> Money:
    return Money(minor, "CNY")


def mixed(tea: int = 1) -> Cart:
    return Cart(
        channel="web",
        lines=(CartLine("BEANS", 2, PICKUP), CartLine("MUG", 1), CartLine("TEA", tea, EXPRESS)),
        payments=(card(),),
        fulfilment=STANDARD,
    )


def shop(tmp_path: Path, database_url: str, *, tea: int = 5) -> Stack:
    """Beans only at the store; mugs and tea only at the warehouse."""
    text = manifest(PROMOTIONS.replace("routing:\n", "") + HALF_EXPRESS_SHIPPING + "routing:\n")
    stack = make_stack(tmp_path, database_url, text=text, stock=0)
    receive(stack, {"BEANS": 5}, locations=("store-a",))
    receive(stack, {"MUG": 5, "TEA": tea}, locations=("dc",))
    return stack


def booked(stack: Stack, order_id: str) -> list[tuple[str, str]]:
    """The logistics block's own shipments of the order: (option, status), by option."""
    table = sa.table("logistics_shipments", sa.column("order_id"), sa.column("option"), sa.column("status"))
    with stack.engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.option, table.c.status).where(table.c.order_id == order_id))
        return sorted((row.option, row.status) for row in rows)


def held(stack: Stack) -> dict[tuple[str, str], tuple[int, int, int]]:
    return {place: level for place, level in levels(stack).items() if any(level)}


BEFORE = {("BEANS", "store-a"): (5, 0, 0), ("MUG", "dc"): (5, 0, 0), ("TEA", "dc"): (5, 0, 0)}
AFTER = {("BEANS", "store-a"): (3, 0, 0), ("MUG", "dc"): (4, 0, 0), ("TEA", "dc"): (4, 0, 0)}


def assert_placed_in_groups(stack: Stack, order_id: str) -> None:
    order = stack.order(order_id)
    assert order.status is OrderStatus.FULFILLED
    assert [(group.lines, group.option_id, group.shipping) for group in order.groups] == [
        ((0,), "click-and-collect", cny(0)),
        ((1,), "sf-std", cny(1000)),
        ((2,), "sf-express", cny(1000)),  # 20.00 express, half off by the promotion that targets it
    ]
    assert [group.fulfilment for group in order.groups] == [PICKUP, STANDARD, EXPRESS]
    # One shipment per group, each leaving from where its stock was reserved.
    assert [(s.option_id, s.status, s.parcels[0].location, s.parcels[0].lines) for s in order.shipments] == [
        ("click-and-collect", ShipmentStatus.READY_FOR_PICKUP, "store-a", (("BEANS", 2),)),
        ("sf-std", ShipmentStatus.PENDING, "dc", (("MUG", 1),)),
        ("sf-express", ShipmentStatus.PENDING, "dc", (("TEA", 1),)),
    ]
    # Booked once each, even when a crash made the step run again.
    assert booked(stack, order_id) == [
        ("click-and-collect", "ready_for_pickup"),
        ("sf-express", "pending"),
        ("sf-std", "pending"),
    ]
    assert held(stack) == AFTER


def test_a_mixed_cart_is_reserved_priced_and_shipped_by_group(tmp_path: Path, database_url: str) -> None:
    with shop(tmp_path, database_url) as stack:
        quoted = stack.quote(mixed())
        order = stack.checkout(mixed(), key="mixed")
        assert_placed_in_groups(stack, order.id)
        # The order is what the quote said, its shipping the sum of the groups'.
        assert order.total == quoted.total and order.shipping == quoted.shipping == cny(2000)
        assert order.subtotal == cny(15000) and order.total == order.subtotal - order.discount + order.shipping
        assert [line.discount for line in order.lines] == [line.discount for line in quoted.lines]
        # Promotions by group: the pick-up discount on the beans, the express one on the tea, and the
        # shipping promotion on the express group's shipping only (half of 20.00, not of 30.00).
        by_promotion = {a.promotion_id: a for a in order.adjustments}
        assert by_promotion["collect"].line_amounts == ((0, cny(1000)),)
        assert by_promotion["express"].line_amounts == ((2, cny(218)),)
        assert by_promotion["express-ship"].target is AdjustmentTarget.SHIPPING
        assert by_promotion["express-ship"].amount == cny(1000)
        assert [p.amount for p in order.payments] == [order.total]
        # The same key and cart replay the order; an ordinary cart still leaves one way, with no groups.
        assert stack.checkout(mixed(), key="mixed").id == order.id
        plain = stack.checkout(Cart(channel="web", lines=(CartLine("MUG", 1),), payments=(card(),)), key="plain")
        assert plain.groups == () and len(plain.shipments) <= 1


def test_lines_that_all_leave_one_other_way_are_one_ordinary_order(tmp_path: Path, database_url: str) -> None:
    with shop(tmp_path, database_url) as stack:
        cart = Cart(channel="web", lines=(CartLine("BEANS", 1, PICKUP),), payments=(card(),), fulfilment=STANDARD)
        order = stack.checkout(cart, key="pickup")
        assert order.groups == () and order.fulfilment == PICKUP and order.shipping == cny(0)
        assert held(stack)[("BEANS", "store-a")] == (4, 0, 0)


def test_a_group_out_of_stock_leaves_nothing_reserved_and_nothing_charged(tmp_path: Path, database_url: str) -> None:
    with shop(tmp_path, database_url) as stack:
        # The beans and the mug can be reserved; the tea, the last group, cannot.
        with pytest.raises(OutOfStock):
            stack.checkout(mixed(tea=6), key="short")
        assert held(stack) == BEFORE
        for order in stack.orders():
            assert order.status is OrderStatus.FAILED and order.payments == ()
        # Its replay is the same rejection, and a cart that fits still goes through.
        with pytest.raises(OutOfStock):
            stack.checkout(mixed(tea=6), key="short")
        assert stack.checkout(mixed(), key="fits").status is OrderStatus.FULFILLED


@pytest.mark.parametrize(
    ("step", "when", "placed"),
    [
        ("reserve-group-0", "after", False),  # between reserving the beans and the mug
        ("reserve-group-1", "after", False),
        ("authorize", "before", False),
        ("place", "after", False),
        ("deliver-group-0", "after", True),  # the pick-up made ready, the deliveries not booked yet
        ("deliver-group-1", "after", True),
        ("deliver", "after", True),
    ],
)
def test_a_crash_between_groups_is_finished_or_undone_by_recovery(
    tmp_path: Path, database_url: str, step: str, when: str, placed: bool
) -> None:
    with shop(tmp_path, database_url) as stack:
        before = stock_snapshot(stack)
        stack.flows.faults.arm("checkout", step, when)
        with pytest.raises(SimulatedCrash):
            stack.checkout(mixed(), key="crash")
        stack.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
        report = stack.recover()
        assert not report.stuck, report
        if step.startswith("reserve"):
            # Reserving every group is one transaction: the crash left nothing, and a retry simply runs.
            assert stack.orders() == [] and held(stack) == BEFORE
            assert_placed_in_groups(stack, stack.checkout(mixed(), key="crash").id)
            return
        [order] = stack.orders()
        if placed:
            # Each group booked again under its own key: the carrier answers with the booking it made.
            assert_placed_in_groups(stack, order.id)
            assert stack.checkout(mixed(), key="crash").id == order.id
        else:
            assert order.status is OrderStatus.FAILED
            assert held(stack) == BEFORE
        # Nothing held, nothing charged without an order, whichever way it went.
        stack.dispatch_events()
        failures = [f"{i.name}: {i.detail}" for i in check_invariants(stack, before, stack.orders()) if not i.ok]
        assert not failures, failures


class RefusesExpress(FakeCarrier):
    """Books the standard option and refuses express, as a carrier refuses a parcel it cannot take."""

    def book(self, request: BookingRequest) -> Booking:
        if request.option == "sf-express":
            raise CarrierRefused("the carrier takes no express parcels today (scripted)")
        return super().book(request)


def test_a_group_the_carrier_refuses_cancels_the_groups_booked_before_it(tmp_path: Path, database_url: str) -> None:
    with shop(tmp_path, database_url) as stack:
        carrier = RefusesExpress()
        stack.block("logistics").use_carrier_api("sf", carrier)  # type: ignore[attr-defined]
        with pytest.raises(CarrierRefused, match="no express parcels"):
            stack.checkout(mixed(), key="refused")
        # The mug's delivery was booked before the tea's was refused, and is cancelled at the carrier.
        [booking] = carrier.bookings.values()
        assert carrier.cancelled == {booking.tracking_number}
        [order] = stack.orders()
        assert order.status is OrderStatus.FAILED
        assert held(stack) == BEFORE
        assert all(status == "cancelled" for _, status in booked(stack, order.id))


def test_a_mixed_order_is_cancelled_group_by_group(tmp_path: Path, database_url: str) -> None:
    with shop(tmp_path, database_url) as stack:
        order = stack.checkout(mixed(), key="mixed")
        cancelled = stack.cancel(order.id, key="cancel", reason="changed my mind")
        assert cancelled.status is OrderStatus.CANCELLED and cancelled.refunded == order.total
        assert booked(stack, order.id) == [
            ("click-and-collect", "cancelled"),
            ("sf-express", "cancelled"),
            ("sf-std", "cancelled"),
        ]
        assert held(stack) == BEFORE  # every unit back where it left from
        assert cancelled.groups == order.groups


def test_a_mixed_order_is_refunded_line_by_line(tmp_path: Path, database_url: str) -> None:
    with shop(tmp_path, database_url) as stack:
        order = stack.checkout(mixed(), key="mixed")
        tea = stack.refund(order.id, {2: 1}, key="tea", reason="damaged")
        assert tea.status is OrderStatus.PARTIALLY_REFUNDED
        assert tea.refunded == order.lines[2].total
        assert held(stack) == {**AFTER, ("TEA", "dc"): (5, 0, 0)}  # back at the warehouse it left from
        rest = stack.refund(order.id, key="rest", reason="all of it")
        assert rest.status is OrderStatus.REFUNDED and rest.refunded == order.total
        assert held(stack) == BEFORE


def test_a_checkout_state_from_before_groups_reads_as_one_group() -> None:
    from retailblocks.model import Reservation, ReservedStock, ShippingQuote

    reservation = Reservation("res_1", (ReservedStock("MUG", "dc", 1),), expires_at=_an_instant())
    quote = ShippingQuote("logistics", "sf-std", "sf", cny(1000))
    # What a release before several fulfilments wrote: a reservation and a quote, no groups.
    document = {
        "request_hash": "h",
        "channel": "web",
        "key": "k",
        "member_id": None,
        "plan": [],
        "reservation": to_data(reservation),
        "quote": to_data(quote),
        "total": 4000,
        "authorizations": {},
        "captures": {},
        "done": ["reserve"],
    }
    state = load_state(CheckoutState, document)
    assert state.groups == () and state.leaving() == (None,)
    assert state.reservations() == (reservation,) and state.quotes() == (quote,)


def _an_instant():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
