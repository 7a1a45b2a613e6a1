"""Shipments on SQLite and PostgreSQL: booking, splits, idempotency, cancelling, tracking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from retailblocks_logistics import CarrierRefused, CarrierUnavailable, Logistics
from retailblocks_logistics.tables import shipments
from retailblocks_logistics.testing import FakeCarrier, cny

from retailblocks.errors import IdempotencyConflict, InvalidValue, UnknownObject
from retailblocks.model import (
    Address,
    Fulfilment,
    FulfilmentKind,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    Parcel,
    Shipment,
    ShipmentStatus,
    ShippingQuote,
)
from retailblocks.testing import BlockHarness

SHANGHAI = Address("CN", "Shanghai", "Shanghai", line1="1 Hengshan Rd")


def make_order(order_id: str = "ord_1", fulfilment: Fulfilment | None = None) -> Order:
    price = cny("50.00")
    zero = Money.zero("CNY")
    return Order(
        id=order_id,
        channel="web",
        status=OrderStatus.PAID,
        currency="CNY",
        lines=(OrderLine(0, "mug", 2, price, zero), OrderLine(1, "tee", 1, price, zero)),
        subtotal=cny("150.00"),
        discount=zero,
        shipping=cny("12.00"),
        total=cny("162.00"),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        fulfilment=fulfilment or Fulfilment(FulfilmentKind.DELIVERY, address=SHANGHAI),
    )


def sf_quote(block: Logistics, amount: str = "12.00") -> ShippingQuote:
    return ShippingQuote(block=block.id, option_id="sf-standard", carrier="sf", amount=cny(amount))


SPLIT = (Parcel("xuhui", (("mug", 2),)), Parcel("beijing-dc", (("tee", 1),)))


def the_block(harness: BlockHarness) -> Logistics:
    assert isinstance(harness.block, Logistics)
    return harness.block


def arrange(
    harness: BlockHarness,
    order: Order,
    quote: ShippingQuote,
    parcels: tuple[Parcel, ...] = SPLIT,
    key: str = "chk_1:arrange",
) -> Shipment:
    with harness.context() as ctx:
        return the_block(harness).logistics_arrange(ctx, order, quote, parcels, key)


def track(harness: BlockHarness, shipment_id: str, status: str, note: str = "") -> Shipment:
    with harness.context(None, flow="operator") as ctx:
        return the_block(harness).logistics_track(ctx, shipment_id, ShipmentStatus(status), note)


def cancel(harness: BlockHarness, shipment: Shipment, key: str = "cnl_1") -> bool:
    with harness.context() as ctx:
        return the_block(harness).logistics_cancel(ctx, shipment, key)


def event_types(harness: BlockHarness) -> list[str]:
    return [event.type for event in harness.events() if event.type.startswith("shipment.")]


class TestArrange:
    def test_split_shipment_has_one_parcel_per_location(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        shipment = arrange(harness, make_order(), sf_quote(block))
        assert shipment.status is ShipmentStatus.PENDING
        assert shipment.carrier == "sf"
        assert shipment.tracking_number.startswith("SBX-SF_")
        assert [p.location for p in shipment.parcels] == ["xuhui", "beijing-dc"]
        with harness.context() as ctx:
            record = block.record(ctx, shipment.id)
        assert record.shipment == shipment
        assert record.order_id == "ord_1"
        assert record.amount == cny("12.00")
        assert record.extra_charge == cny("6.00")  # one parcel beyond the first
        (created,) = harness.events("shipment.created")
        assert created.order_id == "ord_1"
        assert created.source == block.id
        assert created.payload["parcels"] == [
            {"location": "xuhui", "lines": [["mug", 2]]},
            {"location": "beijing-dc", "lines": [["tee", 1]]},
        ]
        assert created.payload["extra_charge"] == 600

    def test_parcels_for_one_location_are_merged(self, harness: BlockHarness) -> None:
        parcels = (Parcel("xuhui", (("mug", 1),)), Parcel("xuhui", (("mug", 1), ("tee", 1))))
        shipment = arrange(harness, make_order(), sf_quote(the_block(harness)), parcels)
        assert shipment.parcels == (Parcel("xuhui", (("mug", 2), ("tee", 1))),)
        with harness.context() as ctx:
            assert the_block(harness).record(ctx, shipment.id).extra_charge == Money.zero("CNY")

    def test_same_key_same_shipment(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        carrier = FakeCarrier()
        block.use_carrier_api("sf", carrier)
        first = arrange(harness, make_order(), sf_quote(block))
        again = arrange(harness, make_order(), sf_quote(block))
        assert again == first
        assert len(carrier.bookings) == 1
        assert event_types(harness) == ["shipment.created"]
        with harness.engine.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(shipments)).scalar() == 1

    def test_same_key_for_another_order_is_a_conflict(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        arrange(harness, make_order("ord_1"), sf_quote(block))
        with pytest.raises(IdempotencyConflict, match="already booked shipment"):
            arrange(harness, make_order("ord_2"), sf_quote(block))

    def test_pickup_starts_ready_for_pickup(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        order = make_order(fulfilment=Fulfilment(FulfilmentKind.PICKUP, pickup_location="pudong"))
        quote = ShippingQuote(block.id, "click-and-collect", "store", Money.zero("CNY"), from_locations=("pudong",))
        shipment = arrange(harness, order, quote, (Parcel("pudong", (("mug", 2), ("tee", 1))),))
        assert (shipment.status, shipment.carrier) == (ShipmentStatus.READY_FOR_PICKUP, "store")
        with harness.context() as ctx:
            assert block.record(ctx, shipment.id).ready_at == harness.clock.now() + timedelta(hours=2)
        assert event_types(harness) == ["shipment.created", "shipment.ready_for_pickup"]
        collected = track(harness, shipment.id, "collected", "shown the pickup code")
        assert collected.status is ShipmentStatus.COLLECTED

    def test_carry_out_starts_collected(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        quote = ShippingQuote(block.id, "carry-out", "store", Money.zero("CNY"))
        order = make_order(fulfilment=Fulfilment(FulfilmentKind.CARRY_OUT))
        shipment = arrange(harness, order, quote, ())
        assert shipment.status is ShipmentStatus.COLLECTED
        assert shipment.parcels == ()
        assert event_types(harness) == ["shipment.created", "shipment.collected"]

    def test_unknown_option(self, harness: BlockHarness) -> None:
        quote = ShippingQuote(the_block(harness).id, "drone", "sky", cny("1.00"))
        with pytest.raises(InvalidValue, match="no shipping option 'drone'"):
            arrange(harness, make_order(), quote)

    def test_delivery_needs_a_parcel(self, harness: BlockHarness) -> None:
        with pytest.raises(InvalidValue, match="needs at least one parcel"):
            arrange(harness, make_order(), sf_quote(the_block(harness)), ())

    def test_refusing_carrier_writes_nothing(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        block.use_carrier_api("sf", FakeCarrier(refuse=True))
        with pytest.raises(CarrierRefused):
            arrange(harness, make_order(), sf_quote(block))
        assert event_types(harness) == []

    def test_failing_carrier_then_retry_books_once(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        carrier = FakeCarrier(fail_next=1)
        block.use_carrier_api("sf", carrier)
        with pytest.raises(CarrierUnavailable):
            arrange(harness, make_order(), sf_quote(block))
        shipment = arrange(harness, make_order(), sf_quote(block))
        assert shipment.tracking_number == "FAKE000001"
        assert [r.idempotency_key for r in carrier.requests] == ["chk_1:arrange"] * 2
        assert carrier.requests[1].address == SHANGHAI


class TestCancel:
    def test_cancel_before_it_ships(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        carrier = FakeCarrier()
        block.use_carrier_api("sf", carrier)
        shipment = arrange(harness, make_order(), sf_quote(block))
        assert cancel(harness, shipment) is True
        assert carrier.cancelled == {shipment.tracking_number}
        with harness.context() as ctx:
            assert block.shipment(ctx, shipment.id).status is ShipmentStatus.CANCELLED
            history = block.history(ctx, shipment.id)
        assert [entry.status for entry in history] == [
            ShipmentStatus.PENDING,
            ShipmentStatus.CANCELLED,
        ]
        assert event_types(harness) == ["shipment.created", "shipment.cancelled"]
        # A replay (the flow retrying its compensation) still says yes and records nothing more.
        assert cancel(harness, shipment) is True
        with harness.context() as ctx:
            cancelled = block.shipment(ctx, shipment.id)
        assert cancel(harness, cancelled) is True
        assert event_types(harness) == ["shipment.created", "shipment.cancelled"]

    def test_cancel_after_it_shipped(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        shipment = arrange(harness, make_order(), sf_quote(block))
        shipped = track(harness, shipment.id, "shipped")
        assert cancel(harness, shipped) is False
        # A stale copy that still says pending cannot cancel it either.
        assert cancel(harness, shipment) is False
        with harness.context() as ctx:
            assert block.shipment(ctx, shipment.id).status is ShipmentStatus.SHIPPED

    def test_carrier_that_already_collected_refuses(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        carrier = FakeCarrier()
        block.use_carrier_api("sf", carrier)
        shipment = arrange(harness, make_order(), sf_quote(block))
        carrier.collected.add(shipment.tracking_number)
        assert cancel(harness, shipment) is False
        with harness.context() as ctx:
            assert block.shipment(ctx, shipment.id).status is ShipmentStatus.PENDING

    def test_cancel_pickup_before_collection(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        quote = ShippingQuote(block.id, "click-and-collect", "store", Money.zero("CNY"))
        order = make_order(fulfilment=Fulfilment(FulfilmentKind.PICKUP, pickup_location="xuhui"))
        shipment = arrange(harness, order, quote, (Parcel("xuhui", (("mug", 2),)),))
        assert cancel(harness, shipment) is True

    def test_foreign_shipment(self, harness: BlockHarness) -> None:
        foreign = Shipment("shp_x", "other-block", "x", "y", ShipmentStatus.PENDING)
        with pytest.raises(InvalidValue, match="booked by 'other-block'"):
            cancel(harness, foreign)


class TestTracking:
    def test_delivery_lifecycle_with_history_and_events(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        shipment = arrange(harness, make_order(), sf_quote(block))
        for status, note in [
            ("shipped", "left Xuhui"),
            ("in_transit", "Nanjing hub"),
            ("delivered", "signed by the shopper"),
        ]:
            harness.clock.advance(timedelta(hours=5))
            assert track(harness, shipment.id, status, note).status == ShipmentStatus(status)
        assert event_types(harness) == [
            "shipment.created",
            "shipment.shipped",
            "shipment.in_transit",
            "shipment.delivered",
        ]
        delivered = harness.events("shipment.delivered")[0]
        assert delivered.order_id == "ord_1"
        assert delivered.payload["from"] == "in_transit"
        assert delivered.payload["note"] == "signed by the shopper"
        with harness.context() as ctx:
            history = block.history(ctx, shipment.id)
            record = block.record(ctx, shipment.id)
        assert [(e.status.value, e.note) for e in history] == [
            ("pending", "booked"),
            ("shipped", "left Xuhui"),
            ("in_transit", "Nanjing hub"),
            ("delivered", "signed by the shopper"),
        ]
        assert history[-1].at == harness.clock.now()
        assert record.updated_at == harness.clock.now()

    def test_invalid_transition_names_both_states_and_changes_nothing(self, harness: BlockHarness) -> None:
        shipment = arrange(harness, make_order(), sf_quote(the_block(harness)))
        with pytest.raises(InvalidValue, match="from 'pending' to 'delivered'"):
            track(harness, shipment.id, "delivered")
        track(harness, shipment.id, "shipped")
        track(harness, shipment.id, "in_transit")
        track(harness, shipment.id, "delivered")
        with pytest.raises(InvalidValue, match="from 'delivered' to 'cancelled'"):
            track(harness, shipment.id, "cancelled")
        assert event_types(harness)[-1] == "shipment.delivered"

    def test_a_repeated_update_changes_nothing(self, harness: BlockHarness) -> None:
        shipment = arrange(harness, make_order(), sf_quote(the_block(harness)))
        track(harness, shipment.id, "shipped")
        assert track(harness, shipment.id, "shipped").status is ShipmentStatus.SHIPPED
        assert event_types(harness) == ["shipment.created", "shipment.shipped"]

    def test_lost_in_transit_can_be_cancelled_by_the_carrier(self, harness: BlockHarness) -> None:
        shipment = arrange(harness, make_order(), sf_quote(the_block(harness)))
        track(harness, shipment.id, "shipped")
        track(harness, shipment.id, "in_transit")
        assert track(harness, shipment.id, "cancelled", "lost").status is ShipmentStatus.CANCELLED
        assert event_types(harness)[-1] == "shipment.cancelled"

    def test_unknown_shipment_and_status(self, harness: BlockHarness) -> None:
        with pytest.raises(UnknownObject, match="no shipment 'shp_nope'"):
            track(harness, "shp_nope", "shipped")
        shipment = arrange(harness, make_order(), sf_quote(the_block(harness)))
        with harness.context() as ctx, pytest.raises(InvalidValue, match="unknown shipment status"):
            the_block(harness).track(ctx, shipment.id, "teleported")

    def test_listing(self, harness: BlockHarness) -> None:
        block = the_block(harness)
        first = arrange(harness, make_order("ord_1"), sf_quote(block), key="k1")
        harness.clock.advance(timedelta(minutes=1))
        second = arrange(harness, make_order("ord_2"), sf_quote(block), key="k2")
        track(harness, first.id, "shipped")
        with harness.context() as ctx:
            assert [r.shipment.id for r in block.shipments(ctx)] == [second.id, first.id]
            assert [r.shipment.id for r in block.shipments(ctx, status="shipped")] == [first.id]
            assert [r.order_id for r in block.shipments(ctx, order_id="ord_2")] == ["ord_2"]
            assert len(block.shipments(ctx, limit=1)) == 1
