"""The inventory contract: all-or-nothing reservations, never overselling, idempotent undo."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from retailblocks.errors import OutOfStock
from retailblocks.hookspecs import inventory
from retailblocks.model import Parcel, Reservation, StockDemand
from retailblocks.testing.contracts._base import Contract
from retailblocks.testing.contracts.payment import at_once
from retailblocks.testing.harness import BlockHarness

#: Buyers racing for the last units in the concurrency test.
BUYERS = 12


class InventoryContract(Contract):
    """Reserve, commit, fulfil, return and release; a shortfall reserves nothing; never more reserved
    than in stock, also when buyers race; releasing and returning are idempotent. (Stock has no
    currency: the two-currency runs are the payment contract's.)

    Stock arrives through ``inventory_adjust`` at ``location``, sold on ``channel``; override
    :meth:`receive` if your block takes stock in another way. The stack's catalog holds ``skus``."""

    location: ClassVar[str] = "store-1"
    channel: ClassVar[str] = "store-1"
    skus: ClassVar[tuple[str, ...]] = ("A", "B", "HOT")

    def harness_options(self) -> Mapping[str, Any]:
        return {"skus": list(self.skus)}

    def receive(self, harness: BlockHarness, sku: str, quantity: int) -> None:
        with harness.context(self.channel) as ctx:
            harness.call(
                inventory.inventory_adjust, ctx, sku, self.location, quantity, "received", f"in-{sku}-{quantity}"
            )

    def reserve(self, harness: BlockHarness, *demands: tuple[str, int]) -> Reservation:
        with harness.context(self.channel) as ctx:
            return harness.call(
                inventory.inventory_reserve,
                ctx,
                [StockDemand(sku, quantity) for sku, quantity in demands],
                [self.location],
                False,
                timedelta(minutes=15),
            )

    def release(self, harness: BlockHarness, reservation: Reservation) -> None:
        with harness.context(self.channel) as ctx:
            harness.call(inventory.inventory_release, ctx, reservation.id)

    def available(self, harness: BlockHarness, sku: str) -> int:
        with harness.context(self.channel) as ctx:
            return int(harness.call(inventory.inventory_available, ctx, [sku])[sku])

    # -- the contract -------------------------------------------------------------------------------

    def test_a_shortfall_reserves_nothing(self, harness: BlockHarness) -> None:
        self.receive(harness, "A", 2)
        self.receive(harness, "B", 5)
        with pytest.raises(OutOfStock):
            self.reserve(harness, ("B", 1), ("A", 3))
        assert (self.available(harness, "A"), self.available(harness, "B")) == (2, 5)

    def test_reserving_beyond_stock_is_refused(self, harness: BlockHarness) -> None:
        self.receive(harness, "A", 2)
        with pytest.raises(OutOfStock):
            self.reserve(harness, ("A", 3))
        self.reserve(harness, ("A", 2))
        with pytest.raises(OutOfStock):
            self.reserve(harness, ("A", 1))
        assert self.available(harness, "A") == 0

    def test_release_gives_stock_back_once(self, harness: BlockHarness) -> None:
        self.receive(harness, "A", 5)
        first = self.reserve(harness, ("A", 2))
        self.reserve(harness, ("A", 2))
        assert self.available(harness, "A") == 1
        for _ in range(3):
            self.release(harness, first)
        assert self.available(harness, "A") == 3, "releasing one reservation again gave its stock back again"

    def test_releasing_a_committed_reservation_does_nothing(self, harness: BlockHarness) -> None:
        self.receive(harness, "A", 4)
        reservation = self.reserve(harness, ("A", 3))
        with harness.context(self.channel, flow_id="order-1") as ctx:
            harness.call(inventory.inventory_commit, ctx, reservation.id, "order-1")
        self.release(harness, reservation)
        assert self.available(harness, "A") == 1

    def test_an_order_takes_its_units_and_gives_them_back(self, harness: BlockHarness) -> None:
        self.receive(harness, "A", 4)
        reservation = self.reserve(harness, ("A", 3))
        with harness.context(self.channel, flow_id="order-1") as ctx:
            harness.call(inventory.inventory_commit, ctx, reservation.id, "order-1")
        parcels = [Parcel(line.location, ((line.sku, line.quantity),)) for line in reservation.lines]
        with harness.context(self.channel, flow_id="order-1") as ctx:
            harness.call(inventory.inventory_fulfil, ctx, "order-1", parcels)
        assert self.available(harness, "A") == 1
        for _ in range(2):  # replayed: no effect
            with harness.context(self.channel, flow_id="order-1") as ctx:
                harness.call(inventory.inventory_return, ctx, "order-1", reservation.lines, "return-1")
        assert self.available(harness, "A") == 4

    def test_concurrent_buyers_never_oversell(self, harness: BlockHarness) -> None:
        self.receive(harness, "HOT", 5)

        def buy() -> bool:
            try:
                self.reserve(harness, ("HOT", 1))
            except OutOfStock:
                return False
            return True

        outcomes = at_once(buy, BUYERS)
        assert outcomes.count(True) == 5, f"{outcomes.count(True)} buyers got one of 5 units"
        assert self.available(harness, "HOT") == 0

    # -- for the lifecycle contract ------------------------------------------------------------------

    def exercise(self, harness: BlockHarness) -> None:
        """Every state change of the contract once, and calls the block must refuse."""
        self.receive(harness, "A", 5)
        reservation = self.reserve(harness, ("A", 2))
        with harness.context(self.channel, flow_id="order-1") as ctx:
            harness.call(inventory.inventory_commit, ctx, reservation.id, "order-1")
        parcels = [Parcel(line.location, ((line.sku, line.quantity),)) for line in reservation.lines]
        with harness.context(self.channel, flow_id="order-1") as ctx:
            harness.call(inventory.inventory_fulfil, ctx, "order-1", parcels)
        with harness.context(self.channel, flow_id="order-1") as ctx:
            harness.call(inventory.inventory_return, ctx, "order-1", reservation.lines, "return-1")
        self.release(harness, self.reserve(harness, ("A", 1)))
        with pytest.raises(OutOfStock):
            self.reserve(harness, ("A", 50))
