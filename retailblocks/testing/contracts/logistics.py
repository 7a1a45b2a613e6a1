"""The logistics contract: what every logistics block does, checked through the hooks.

* quotes are in the cart's currency (the merchant's: checked with two), never negative, made by the
  block that answers, and a quote changes nothing (no events, the same answer twice);
* arranging a delivery is idempotent per key — replayed or raced, one key books one shipment — and
  the shipment carries the parcels it was given;
* a tracking update moves the shipment and a repeated one changes nothing; tracking a shipment the
  block never made is refused cleanly (an error naming it, not a crash);
* a shipment that has not left can be cancelled (twice with no harm); one that has left cannot.

A block author's test::

    class TestMyCarrier(LogisticsContract):
        block_class = MyCarrier

        def config_for(self, currency):
            return {"price": f"9.00 {currency}"}

The contract delivers to :meth:`fulfilment` (an address in Shanghai unless overridden); the block's
configuration must quote at least one delivery there.
"""

from __future__ import annotations

from collections import Counter

import pytest

from retailblocks.hookspecs import logistics
from retailblocks.model import (
    Address,
    Fulfilment,
    FulfilmentKind,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    Parcel,
    PricedLine,
    Shipment,
    ShipmentStatus,
    ShippingQuote,
)
from retailblocks.testing.contracts._capability import (
    RACERS,
    REFUSALS,
    START,
    CapabilityContract,
    call,
    provides,
    race,
)
from retailblocks.testing.harness import BlockHarness

__all__ = ["LogisticsContract"]


class LogisticsContract(CapabilityContract):
    """Inherit to check a logistics block; see the module's documentation for what is checked."""

    #: The stock location the contract's parcels leave from (a location of the harness's channels).
    location = "store-1"

    # -- what the tests are made of -----------------------------------------------------------------

    def fulfilment(self) -> Fulfilment:
        """A delivery the block's configuration quotes for."""
        address = Address(
            country="CN",
            region="Shanghai",
            city="Shanghai",
            postal_code="200030",
            line1="1 Kit Road",
            name="Kit Shopper",
            phone="+8613800000000",
            latitude=31.19,
            longitude=121.44,
        )
        return Fulfilment(FulfilmentKind.DELIVERY, address=address)

    def lines(self, currency: str) -> list[PricedLine]:
        return [
            PricedLine(0, "KIT-A", 2, Money(2_500, currency), weight_grams=300),
            PricedLine(1, "KIT-B", 1, Money(4_000, currency), weight_grams=200),
        ]

    def quote(self, harness: BlockHarness, currency: str, fulfilment: Fulfilment | None = None) -> list[ShippingQuote]:
        lines = self.lines(currency)
        value = sum((line.subtotal for line in lines), Money.zero(currency))
        quotes = call(harness, logistics.logistics_quote, lines, fulfilment or self.fulfilment(), value)
        return list(quotes or ())

    def delivery_quote(self, harness: BlockHarness, currency: str) -> ShippingQuote:
        quotes = self.quote(harness, currency)
        assert quotes, "the block quoted no delivery to the contract's address; override `fulfilment` or the config"
        return min(quotes, key=lambda quote: (quote.amount.amount, quote.option_id))

    def order(self, order_id: str, currency: str, quote: ShippingQuote) -> Order:
        lines = tuple(
            OrderLine(line.index, line.sku, line.quantity, line.unit_price, Money.zero(currency))
            for line in self.lines(currency)
        )
        subtotal = sum((line.subtotal for line in lines), Money.zero(currency))
        return Order(
            id=order_id,
            channel="web",
            status=OrderStatus.PAID,
            currency=currency,
            lines=lines,
            subtotal=subtotal,
            discount=Money.zero(currency),
            shipping=quote.amount,
            total=subtotal + quote.amount,
            created_at=START,
            fulfilment=self.fulfilment(),
        )

    def parcels(self, currency: str) -> list[Parcel]:
        return [Parcel(self.location, tuple((line.sku, line.quantity) for line in self.lines(currency)))]

    def arrange(self, harness: BlockHarness, currency: str, order_id: str, key: str) -> Shipment:
        quote = self.delivery_quote(harness, currency)
        order = self.order(order_id, currency, quote)
        return call(harness, logistics.logistics_arrange, order, quote, self.parcels(currency), key, flow_id=order_id)

    def track(self, harness: BlockHarness, shipment_id: str, status: ShipmentStatus) -> Shipment:
        return call(harness, logistics.logistics_track, shipment_id, status, "conformance kit")

    def needs_tracking(self, harness: BlockHarness) -> None:
        if not provides(harness, logistics.logistics_track):
            pytest.skip("the block does not implement logistics_track")

    # -- for the lifecycle contract -----------------------------------------------------------------

    def exercise(self, harness: BlockHarness) -> None:
        """Every state change of the contract once, and a call the block must refuse."""
        currency = harness.merchant.currency
        self.quote(harness, currency)
        leaving = self.arrange(harness, currency, "kit-exercise-order-1", "kit-exercise-ship-1")
        waiting = self.arrange(harness, currency, "kit-exercise-order-2", "kit-exercise-ship-2")
        call(harness, logistics.logistics_cancel, waiting, "kit-exercise-cancel")
        if provides(harness, logistics.logistics_track):
            self.track(harness, leaving.id, ShipmentStatus.SHIPPED)
            with pytest.raises(REFUSALS):
                self.track(harness, "kit-no-such-shipment", ShipmentStatus.SHIPPED)

    # -- quotes -------------------------------------------------------------------------------------

    def test_quotes_are_in_the_cart_currency_and_never_negative(self, harness: BlockHarness, currency: str) -> None:
        for fulfilment in (self.fulfilment(), Fulfilment(FulfilmentKind.CARRY_OUT)):
            for quote in self.quote(harness, currency, fulfilment):
                assert quote.amount.currency == currency, f"quote {quote.option_id} is in {quote.amount.currency}"
                assert quote.amount.amount >= 0, f"quote {quote.option_id} is negative: {quote.amount}"
                assert quote.block == harness.block_id, f"quote {quote.option_id} names block {quote.block!r}"
                assert quote.option_id, "a quote needs an option id the shopper can pick"
                assert 0 <= quote.min_days <= quote.max_days or quote.max_days == 0
        assert self.quote(harness, currency), "the block quoted no delivery to the contract's address"

    def test_a_quote_changes_nothing(self, harness: BlockHarness, currency: str) -> None:
        before = len(harness.events())
        first = self.quote(harness, currency)
        again = self.quote(harness, currency)
        assert first == again, "quoting the same cart twice gave different quotes"
        assert len(harness.events()) == before, "a quote recorded events; quotes must change nothing"

    def test_a_larger_order_is_never_quoted_a_negative_price(self, harness: BlockHarness, currency: str) -> None:
        # Free-shipping thresholds and value tiers are where prices are computed rather than copied.
        for units in (1, 10, 100):
            lines = [PricedLine(0, "KIT-A", units, Money(10_000, currency), weight_grams=100)]
            value = lines[0].subtotal
            quotes = call(harness, logistics.logistics_quote, lines, self.fulfilment(), value)
            for quote in quotes or ():
                assert quote.amount.currency == currency and quote.amount.amount >= 0, (
                    f"an order worth {value} was quoted {quote.amount} by {quote.option_id}"
                )

    # -- shipments ----------------------------------------------------------------------------------

    def test_arranging_is_idempotent_per_key(self, harness: BlockHarness, currency: str) -> None:
        first = self.arrange(harness, currency, "kit-order-1", "kit-ship-1")
        again = self.arrange(harness, currency, "kit-order-1", "kit-ship-1")
        assert again.id == first.id, "one key booked two shipments"
        assert first.block == harness.block_id
        other = self.arrange(harness, currency, "kit-order-2", "kit-ship-2")
        assert other.id != first.id, "two keys (two orders) got the same shipment"

    def test_a_shipment_carries_the_parcels_it_was_given(self, harness: BlockHarness, currency: str) -> None:
        shipment = self.arrange(harness, currency, "kit-order-3", "kit-ship-3")
        given: Counter[str] = Counter()
        for parcel in self.parcels(currency):
            for sku, quantity in parcel.lines:
                given[sku] += quantity
        carried: Counter[str] = Counter()
        for parcel in shipment.parcels:
            for sku, quantity in parcel.lines:
                carried[sku] += quantity
        assert carried == given, f"the shipment carries {dict(carried)}, it was given {dict(given)}"

    def test_concurrent_arranging_on_one_key_books_one_shipment(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        quote = self.delivery_quote(harness, harness.merchant.currency)
        order = self.order("kit-order-4", harness.merchant.currency, quote)
        parcels = self.parcels(harness.merchant.currency)
        shipments, errors = race(
            RACERS,
            lambda _n: call(harness, logistics.logistics_arrange, order, quote, parcels, "kit-ship-race"),
        )
        if errors:
            raise errors[0]
        assert len({shipment.id for shipment in shipments}) == 1, "one key booked several shipments"

    # -- tracking and cancelling --------------------------------------------------------------------

    def test_tracking_an_unknown_shipment_is_refused_cleanly(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        self.needs_tracking(harness)
        with pytest.raises(REFUSALS):
            self.track(harness, "kit-no-such-shipment", ShipmentStatus.SHIPPED)

    def test_a_repeated_tracking_update_changes_nothing(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        self.needs_tracking(harness)
        shipment = self.arrange(harness, harness.merchant.currency, "kit-order-5", "kit-ship-5")
        moved = self.track(harness, shipment.id, ShipmentStatus.SHIPPED)
        assert moved.id == shipment.id and moved.status is ShipmentStatus.SHIPPED
        events = len(harness.events())
        repeated = self.track(harness, shipment.id, ShipmentStatus.SHIPPED)
        assert repeated.id == shipment.id and repeated.status is ShipmentStatus.SHIPPED
        assert len(harness.events()) == events, "a repeated tracking update was announced again"

    def test_a_shipment_can_be_cancelled_until_it_leaves(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        waiting = self.arrange(harness, harness.merchant.currency, "kit-order-6", "kit-ship-6")
        assert call(harness, logistics.logistics_cancel, waiting, "kit-cancel-6") is True
        assert call(harness, logistics.logistics_cancel, waiting, "kit-cancel-6") is True, "a replay failed"
        self.needs_tracking(harness)
        leaving = self.arrange(harness, harness.merchant.currency, "kit-order-7", "kit-ship-7")
        self.track(harness, leaving.id, ShipmentStatus.SHIPPED)
        # The caller may hold the shipment as it was booked: the block must know better.
        assert call(harness, logistics.logistics_cancel, leaving, "kit-cancel-7") is False, (
            "a shipment that had left was cancelled"
        )
