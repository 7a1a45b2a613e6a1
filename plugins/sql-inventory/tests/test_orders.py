"""An order's stock: commit, release, fulfil, return, and operator adjustments, each idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from retailblocks.errors import IdempotencyConflict, InvalidValue
from retailblocks.model import Parcel, ReservedStock


def test_reserve_commit_fulfil_return_lifecycle(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 10)
    reservation = inventory.reserve({"mug": 3})
    assert inventory.level("mug", "wh-east") == (10, 3, 0)

    inventory.commit(reservation.id, "order-1")
    inventory.commit(reservation.id, "order-1")  # idempotent
    assert inventory.level("mug", "wh-east") == (10, 0, 3)

    # Releasing a committed reservation does nothing.
    inventory.release(reservation.id)
    assert inventory.level("mug", "wh-east") == (10, 0, 3)

    parcels = [Parcel("wh-east", (("mug", 2),))]
    inventory.fulfil("order-1", parcels, flow_id="fulfil-1")
    inventory.fulfil("order-1", parcels, flow_id="fulfil-1")  # a replay
    assert inventory.level("mug", "wh-east") == (8, 0, 1)

    # One unit still allocated, two shipped: returning two de-allocates one and restocks one.
    inventory.return_("order-1", [ReservedStock("mug", "wh-east", 2)], key="return-1")
    inventory.return_("order-1", [ReservedStock("mug", "wh-east", 2)], key="return-1")
    assert inventory.level("mug", "wh-east") == (9, 0, 0)
    assert inventory.ledger_sum("mug", "wh-east") == 9

    with inventory.ctx(None) as ctx:
        kinds = [(m.kind, m.delta, m.order_id) for m in inventory.block.movements(ctx, ["mug"])]
    assert kinds == [("receive", 10, None), ("ship", -2, "order-1"), ("return", 1, "order-1")]
    types = inventory.event_types()
    for expected in ("stock.reserved", "stock.allocated", "stock.fulfilled", "stock.returned"):
        assert types.count(expected) == 1, expected


def test_release_gives_stock_back_once(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 4)
    reservation = inventory.reserve({"mug": 4})

    inventory.release(reservation.id)
    inventory.release(reservation.id)
    inventory.release("res_never_made")

    assert inventory.level("mug", "wh-east") == (4, 0, 0)
    assert inventory.event_types().count("stock.released") == 1
    with pytest.raises(InvalidValue, match="was released"):
        inventory.commit(reservation.id, "order-1")


def test_commit_to_another_order_is_refused(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 1)
    reservation = inventory.reserve({"mug": 1})
    inventory.commit(reservation.id, "order-1")
    with pytest.raises(InvalidValue, match="already committed to order 'order-1'"):
        inventory.commit(reservation.id, "order-2")
    with pytest.raises(InvalidValue, match="no reservation"):
        inventory.commit("res_unknown", "order-2")


def test_fulfil_cannot_ship_more_than_allocated(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 5)
    inventory.commit(inventory.reserve({"mug": 1}).id, "order-1")

    with pytest.raises(InvalidValue, match="cannot ship 2"):
        inventory.fulfil("order-1", [Parcel("wh-east", (("mug", 2),))])
    with pytest.raises(InvalidValue, match="unknown stock location"):
        inventory.fulfil("order-1", [Parcel("moon", (("mug", 1),))])
    assert inventory.level("mug", "wh-east") == (5, 0, 1)


def test_split_order_ships_from_each_location(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 1)
    inventory.receive("mug", "wh-west", 2)
    reservation = inventory.reserve({"mug": 3})
    inventory.commit(reservation.id, "order-1")

    inventory.fulfil("order-1", [Parcel("wh-east", (("mug", 1),)), Parcel("wh-west", (("mug", 2),))])

    assert inventory.level("mug", "wh-east") == (0, 0, 0)
    assert inventory.level("mug", "wh-west") == (0, 0, 0)


def test_return_of_more_than_the_order_holds_is_refused(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 5)
    inventory.commit(inventory.reserve({"mug": 2}).id, "order-1")
    inventory.fulfil("order-1", [Parcel("wh-east", (("mug", 2),))])

    with pytest.raises(InvalidValue, match="cannot return 3"):
        inventory.return_("order-1", [ReservedStock("mug", "wh-east", 3)], key="r1")
    with pytest.raises(InvalidValue, match="no 'tea'"):
        inventory.return_("order-1", [ReservedStock("tea", "wh-east", 1)], key="r2")

    inventory.return_("order-1", [ReservedStock("mug", "wh-east", 1)], key="r3")
    inventory.return_("order-1", [ReservedStock("mug", "wh-east", 1)], key="r4")
    with pytest.raises(InvalidValue):
        inventory.return_("order-1", [ReservedStock("mug", "wh-east", 1)], key="r5")
    with pytest.raises(IdempotencyConflict):
        inventory.return_("order-1", [ReservedStock("mug", "wh-east", 2)], key="r3")
    assert inventory.level("mug", "wh-east") == (5, 0, 0)


def test_adjust_is_idempotent_per_key(inventory: Any) -> None:
    assert inventory.adjust("mug", "wh-east", 10, key="grn-1") == 10
    assert inventory.adjust("mug", "wh-east", 10, key="grn-1") == 10
    assert inventory.adjust("mug", "wh-east", -3, key="damage-1", reason="damaged") == 7
    assert inventory.adjust("mug", "wh-east", -3, key="damage-1", reason="damaged") == 7
    assert inventory.level("mug", "wh-east") == (7, 0, 0)
    assert inventory.ledger_sum("mug", "wh-east") == 7
    with pytest.raises(IdempotencyConflict):
        inventory.adjust("mug", "wh-east", -4, key="damage-1")

    with inventory.ctx(None) as ctx:
        kinds = [m.kind for m in inventory.block.movements(ctx)]
    assert kinds == ["receive", "adjust"]
    adjusted = inventory.harness.events("stock.adjusted")
    assert [event.payload["on_hand"] for event in adjusted] == [10, 7]


def test_adjust_never_takes_reserved_or_allocated_units(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 5)
    inventory.reserve({"mug": 2})
    inventory.commit(inventory.reserve({"mug": 1}).id, "order-1")

    with pytest.raises(InvalidValue, match="at most 2 can be removed"):
        inventory.adjust("mug", "wh-east", -3, key="loss-1")
    assert inventory.adjust("mug", "wh-east", -2, key="loss-2") == 3
    assert inventory.level("mug", "wh-east") == (3, 2, 1)


@pytest.mark.parametrize(
    ("sku", "location", "delta", "message"),
    [
        ("mug", "moon", 1, "unknown stock location"),
        ("", "wh-east", 1, "SKU must not be empty"),
        ("mug", "wh-east", 0, "non-zero integer"),
    ],
)
def test_adjust_rejects_bad_input(inventory: Any, sku: str, location: str, delta: int, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        inventory.adjust(sku, location, delta, key="k")


def test_count_records_the_difference_as_a_count_movement(inventory: Any) -> None:
    inventory.receive("mug", "wh-east", 10)
    with inventory.ctx(None) as ctx:
        assert inventory.block.count(ctx, "mug", "wh-east", 8, key="count-1") == 8
    with inventory.ctx(None) as ctx:
        assert inventory.block.count(ctx, "mug", "wh-east", 8, key="count-1") == 8
        assert inventory.block.count(ctx, "mug", "wh-east", 8) == 8
        movements = inventory.block.movements(ctx, ["mug"])
    assert [(m.kind, m.delta) for m in movements] == [("receive", 10), ("count", -2)]
    assert inventory.ledger_sum("mug", "wh-east") == 8
    with inventory.ctx(None) as ctx, pytest.raises(InvalidValue, match="between 0 and"):
        inventory.block.count(ctx, "mug", "wh-east", -1)


def test_the_audit_finds_a_ledger_that_does_not_add_up(database_url: str) -> None:
    from retailblocks_sql_inventory import SqlInventory
    from retailblocks_sql_inventory.config import Location, SqlInventoryConfig
    from retailblocks_sql_inventory.tables import levels

    from retailblocks.testing import DEFAULT_CHANNELS, BlockHarness

    block = SqlInventory(SqlInventoryConfig(locations=[Location(id="dc")]))
    harness = BlockHarness(block, database_url, channels=DEFAULT_CHANNELS[:1], skus=["SKU"])
    with harness.context() as ctx:
        block.inventory_adjust(ctx, "SKU", "dc", 5, "received", "k1")
    with harness.context() as ctx:
        assert all(finding.ok for finding in block.stack_audit(ctx))
        # Someone edits the balance behind the ledger's back: the audit must notice.
        ctx.db.execute(levels.update().values(on_hand=levels.c.on_hand + 1))
        findings = {f.name: f for f in block.stack_audit(ctx)}
    assert not findings["on hand equals the sum of stock movements"].ok
    assert "movements 5" in findings["on hand equals the sum of stock movements"].detail
    harness.close()
