"""Reserving stock: one location before a split, safety stock, back-orders, all or nothing, expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from retailblocks.errors import InvalidValue, OutOfStock
from retailblocks.model import ReservedStock, StockDemand


def test_reserve_prefers_one_location_that_covers_the_whole_order(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 5)
    inventory.receive("mug", "wh-west", 5)
    inventory.receive("tea", "wh-west", 1)

    reservation = inventory.reserve({"mug": 2, "tea": 1}, allow_split=True)

    # wh-east comes first for the web channel, but only wh-west has both items.
    assert set(reservation.lines) == {
        ReservedStock("mug", "wh-west", 2),
        ReservedStock("tea", "wh-west", 1),
    }
    assert inventory.level("mug", "wh-west") == (5, 2, 0)
    assert inventory.level("mug", "wh-east") == (5, 0, 0)


def test_reserve_splits_a_sku_over_locations_when_allowed(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 2)
    inventory.receive("mug", "wh-west", 3)

    reservation = inventory.reserve({"mug": 4}, allow_split=True)

    assert set(reservation.lines) == {
        ReservedStock("mug", "wh-east", 2),
        ReservedStock("mug", "wh-west", 2),
    }


def test_without_split_an_order_no_location_covers_is_out_of_stock(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 2)
    inventory.receive("mug", "wh-west", 3)

    with pytest.raises(OutOfStock) as raised:
        inventory.reserve({"mug": 4}, allow_split=False)

    assert (raised.value.sku, raised.value.requested, raised.value.available) == ("mug", 4, 3)
    assert inventory.level("mug", "wh-west") == (3, 0, 0)


def test_a_shortfall_reserves_nothing(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 5)
    inventory.receive("tea", "wh-east", 1)

    with pytest.raises(OutOfStock) as raised:
        inventory.reserve({"mug": 2, "tea": 3})

    assert raised.value.sku == "tea"
    assert raised.value.requested == 3
    assert raised.value.available == 1
    assert inventory.level("mug", "wh-east") == (5, 0, 0)
    assert "stock.reserved" not in inventory.event_types()


def test_two_lines_of_one_sku_are_one_demand(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 3)

    with pytest.raises(OutOfStock) as raised:
        inventory.reserve([("mug", 2), ("mug", 2)])
    assert raised.value.requested == 4

    reservation = inventory.reserve([("mug", 1), ("mug", 2)])
    assert reservation.lines == (ReservedStock("mug", "wh-east", 3),)
    assert inventory.level("mug", "wh-east") == (3, 3, 0)


def test_store_channel_sells_from_its_store(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 5)
    inventory.receive("mug", "store-1", 1)

    with inventory.ctx("store-1") as ctx:
        assert list(inventory.block.inventory_locations(ctx)) == ["store-1"]
    with inventory.ctx("web") as ctx:
        assert list(inventory.block.inventory_locations(ctx)) == ["wh-east", "wh-west"]
    assert inventory.available(["mug"], channel="store-1") == {"mug": 1}

    with pytest.raises(OutOfStock):
        inventory.reserve({"mug": 2}, channel="store-1")


def test_safety_stock_is_held_back_from_the_channel(inventory: Any) -> None:
    inventory.receive("mug", "wh-west", 3)
    inventory.receive("mug", "wh-east", 2)

    # marketplace sells from wh-west then wh-east and leaves 2 units per location for others.
    assert inventory.available(["mug", "unknown"], channel="marketplace") == {"mug": 1, "unknown": 0}
    assert inventory.available(["mug"], channel="web") == {"mug": 5}

    reservation = inventory.reserve({"mug": 1}, channel="marketplace")
    assert reservation.lines == (ReservedStock("mug", "wh-west", 1),)
    with pytest.raises(OutOfStock) as raised:
        inventory.reserve({"mug": 1}, channel="marketplace")
    assert raised.value.available == 0

    # The web channel has no safety stock and still gets the units held back.
    inventory.reserve({"mug": 4}, channel="web")


def test_backorders_sell_beyond_stock_up_to_the_allowance(make_inventory: Any) -> None:
    inventory = make_inventory(backorders={"preorder-book": 3})
    inventory.receive("preorder-book", "wh-east", 1)

    reservation = inventory.reserve({"preorder-book": 3})

    assert set(reservation.lines) == {
        ReservedStock("preorder-book", "wh-east", 1),
        ReservedStock("preorder-book", "wh-east", 2, backordered=True),
    }
    assert inventory.available(["preorder-book"]) == {"preorder-book": 1}
    with pytest.raises(OutOfStock):
        inventory.reserve({"preorder-book": 2})

    # Releasing gives the allowance back.
    inventory.release(reservation.id)
    assert inventory.available(["preorder-book"]) == {"preorder-book": 4}


def test_backordered_units_ship_once_received(make_inventory: Any) -> None:
    from retailblocks.model import Parcel

    inventory = make_inventory(backorders={"book": 5})
    reservation = inventory.reserve({"book": 2})
    assert reservation.lines == (ReservedStock("book", "wh-east", 2, backordered=True),)
    inventory.commit(reservation.id, "order-1")
    assert inventory.level("book", "wh-east") == (0, 0, 2)

    with pytest.raises(InvalidValue, match="receive the back-ordered units first"):
        inventory.fulfil("order-1", [Parcel("wh-east", (("book", 2),))])

    inventory.receive("book", "wh-east", 2)
    inventory.fulfil("order-1", [Parcel("wh-east", (("book", 2),))])
    assert inventory.level("book", "wh-east") == (0, 0, 0)
    assert inventory.available(["book"]) == {"book": 5}


def test_reservations_expire_and_give_stock_back(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 2)
    reservation = inventory.reserve({"mug": 2}, ttl=timedelta(minutes=5))
    assert reservation.expires_at == inventory.harness.clock.now() + timedelta(minutes=5)

    inventory.harness.clock.advance(timedelta(minutes=4))
    inventory.maintain()
    assert inventory.level("mug", "wh-east") == (2, 2, 0)

    inventory.harness.clock.advance(timedelta(minutes=1))
    inventory.maintain()
    inventory.maintain()  # idempotent
    assert inventory.level("mug", "wh-east") == (2, 0, 0)
    assert inventory.event_types().count("stock.expired") == 1

    # Releasing an expired reservation does nothing.
    inventory.release(reservation.id)
    assert inventory.level("mug", "wh-east") == (2, 0, 0)


def test_committing_an_expired_reservation_retakes_the_stock_if_still_there(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 3)
    first = inventory.reserve({"mug": 2}, ttl=timedelta(minutes=1))
    second = inventory.reserve({"mug": 1}, ttl=timedelta(minutes=1))
    inventory.harness.clock.advance(timedelta(minutes=2))
    inventory.maintain()

    inventory.commit(first.id, "order-1")
    assert inventory.level("mug", "wh-east") == (3, 0, 2)

    inventory.reserve({"mug": 1})
    with pytest.raises(OutOfStock):
        inventory.commit(second.id, "order-2")
    assert inventory.level("mug", "wh-east") == (3, 1, 2)


def test_reserve_rejects_unknown_locations_and_bad_ttl(inventory: Any) -> None:
    with pytest.raises(InvalidValue, match="unknown stock location"):
        inventory.reserve({"mug": 1}, locations=["atlantis"])
    with pytest.raises(InvalidValue, match="positive duration"):
        inventory.reserve({"mug": 1}, ttl=timedelta(0))
    with pytest.raises(InvalidValue):
        StockDemand("mug", 0)


def test_low_stock_is_recorded_when_availability_drops_to_the_threshold(
    make_inventory: Any,
) -> None:
    inventory = make_inventory(low_stock_threshold=2)
    inventory.receive("mug", "wh-east", 5)

    inventory.reserve({"mug": 2})
    assert "stock.low" not in inventory.event_types()
    inventory.reserve({"mug": 1})
    inventory.reserve({"mug": 1})

    low = inventory.harness.events("stock.low")
    assert len(low) == 1
    assert low[0].payload == {"sku": "mug", "location": "wh-east", "available": 2, "threshold": 2}


def test_a_plan_that_loses_a_line_to_a_concurrent_checkout_gives_back_what_it_took(
    inventory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retailblocks_sql_inventory import stock

    inventory.receive("mug", "wh-east", 5)
    inventory.receive("tea", "wh-east", 1)
    inventory.receive("tea", "wh-west", 3)
    real = stock.read_available
    snapshots: list[dict[Any, int]] = []

    def stale_then_real(connection: Any, skus: Any, locations: Any) -> dict[Any, int]:
        found = real(connection, skus, locations)
        if not snapshots:  # the first snapshot predates a sale of tea at wh-east
            found[("tea", "wh-east")] = 5
        snapshots.append(found)
        return found

    monkeypatch.setattr(stock, "read_available", stale_then_real)
    reservation = inventory.reserve({"mug": 2, "tea": 3}, allow_split=True)

    assert len(snapshots) == 2  # planned, lost tea, gave the mugs back, planned again
    reserved: dict[tuple[str, str], int] = {}
    for line in reservation.lines:
        reserved[line.sku, line.location] = reserved.get((line.sku, line.location), 0) + line.quantity
    assert reserved == {("mug", "wh-east"): 2, ("tea", "wh-east"): 1, ("tea", "wh-west"): 2}
    assert inventory.level("mug", "wh-east") == (5, 2, 0)  # taken once, not twice
    assert inventory.level("tea", "wh-east") == (1, 1, 0)
    assert inventory.level("tea", "wh-west") == (3, 2, 0)


def test_a_plan_that_loses_back_order_room_counts_none_of_its_back_orders(
    make_inventory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = make_inventory(backorders={"book": 5, "pen": 2})
    inventory.reserve({"pen": 2})  # the pens' allowance is used up
    rules = inventory.block.rules
    real = type(rules).backorder_room

    def stale_room(self: Any, connection: Any, skus: Any) -> dict[str, int]:
        room = dict(real(self, connection, skus))
        room["pen"] = 2  # a snapshot from before the other reservation
        return room

    monkeypatch.setattr(type(rules), "backorder_room", stale_room)
    with pytest.raises(OutOfStock):
        inventory.reserve({"book": 1, "pen": 1})
    monkeypatch.undo()

    # The book's back-order counted on the way was given back with the plan: all five are still there.
    assert inventory.available(["book"]) == {"book": 5}
    assert inventory.reserve({"book": 5}).lines == (ReservedStock("book", "wh-east", 5, backordered=True),)
