"""Shared fixtures: a block with two warehouses and a store, run against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
from retailblocks_sql_inventory import ChannelSourcing, Location, SqlInventory, SqlInventoryConfig

from retailblocks.context import FlowContext
from retailblocks.model import Parcel, Reservation, ReservedStock, StockDemand
from retailblocks.testing import BlockHarness

LOCATIONS = [
    Location("wh-east", "East DC", "warehouse", 31.2, 121.5),
    Location("wh-west", "West DC", "warehouse", 30.6, 104.1),
    Location("store-1", "Store One", "store"),
]

#: The catalog of the stack the block is assembled into: the block holds stock only of SKUs it lists.
SKUS = ["mug", "last-mug", "a", "b", "x", "y", "BEANS", "book", "preorder-book", "tea", "DONUT", "pen"]
SKUS += ["sku-a", "sku-b", "sku-c"]


def make_config(**overrides: Any) -> SqlInventoryConfig:
    options: dict[str, Any] = {
        "locations": LOCATIONS,
        "channels": {"marketplace": ChannelSourcing(["wh-west", "wh-east"], safety_stock=2)},
        "reservation_ttl": timedelta(minutes=15),
    }
    options.update(overrides)
    return SqlInventoryConfig(**options)


class Inventory:
    """The block under test and its harness, with one-line helpers that each run in their own step."""

    def __init__(self, harness: BlockHarness):
        self.harness = harness
        assert isinstance(harness.block, SqlInventory)
        self.block: SqlInventory = harness.block

    def ctx(self, channel: str | None = "web", **options: Any) -> AbstractContextManager[FlowContext]:
        return self.harness.context(channel, **options)

    def receive(self, sku: str, location: str, quantity: int) -> int:
        with self.ctx(None) as ctx:
            return self.block.receive(ctx, sku, location, quantity)

    def reserve(
        self,
        demands: dict[str, int] | Sequence[tuple[str, int]],
        *,
        channel: str = "web",
        locations: Sequence[str] | None = None,
        allow_split: bool = True,
        ttl: timedelta = timedelta(minutes=15),
    ) -> Reservation:
        items = demands.items() if isinstance(demands, dict) else demands
        with self.ctx(channel) as ctx:
            where = self.block.inventory_locations(ctx) if locations is None else locations
            return self.block.inventory_reserve(
                ctx, [StockDemand(sku, qty) for sku, qty in items], where, allow_split, ttl
            )

    def commit(self, reservation_id: str, order_id: str, channel: str = "web") -> None:
        with self.ctx(channel) as ctx:
            self.block.inventory_commit(ctx, reservation_id, order_id)

    def release(self, reservation_id: str) -> None:
        with self.ctx() as ctx:
            self.block.inventory_release(ctx, reservation_id)

    def fulfil(self, order_id: str, parcels: Sequence[Parcel], flow_id: str = "") -> None:
        with self.ctx(flow_id=flow_id) as ctx:
            self.block.inventory_fulfil(ctx, order_id, parcels)

    def return_(self, order_id: str, items: Sequence[ReservedStock], key: str) -> None:
        with self.ctx() as ctx:
            self.block.inventory_return(ctx, order_id, items, key)

    def adjust(self, sku: str, location: str, delta: int, key: str, reason: str = "test") -> int:
        with self.ctx(None) as ctx:
            return self.block.inventory_adjust(ctx, sku, location, delta, reason, key)

    def maintain(self) -> None:
        with self.ctx(None) as ctx:
            self.block.stack_maintain(ctx)

    def available(self, skus: Sequence[str], channel: str = "web") -> dict[str, int]:
        with self.ctx(channel) as ctx:
            return dict(self.block.inventory_available(ctx, skus))

    def level(self, sku: str, location: str) -> tuple[int, int, int]:
        """(on hand, reserved, allocated) of one SKU at one location."""
        with self.ctx(None) as ctx:
            for row in self.block.inventory_levels(ctx, [sku]):
                if row.location == location:
                    return (row.on_hand, row.reserved, row.allocated)
        return (0, 0, 0)

    def ledger_sum(self, sku: str, location: str) -> int:
        with self.ctx(None) as ctx:
            return sum(m.delta for m in self.block.movements(ctx, [sku]) if m.location == location)

    def event_types(self) -> list[str]:
        return [event.type for event in self.harness.events()]


MakeInventory = Callable[..., Inventory]


@pytest.fixture
def make_inventory(database_url: str) -> Iterator[MakeInventory]:
    """Build the block configured with ``make_config(**overrides)`` on a fresh database."""
    made: list[BlockHarness] = []

    def make(**overrides: Any) -> Inventory:
        harness = BlockHarness(SqlInventory(make_config(**overrides)), database_url, skus=SKUS)
        made.append(harness)
        return Inventory(harness)

    yield make
    for harness in made:
        harness.close()


@pytest.fixture
def inventory(make_inventory: MakeInventory) -> Inventory:
    return make_inventory()


@pytest.fixture
def sqlite_inventory(sqlite_url: str) -> Iterator[Inventory]:
    """The block on SQLite only, for tests whose subject is not the database (the commands)."""
    harness = BlockHarness(SqlInventory(make_config()), sqlite_url, skus=SKUS)
    yield Inventory(harness)
    harness.close()
