"""Contract tests a block author inherits: what every inventory or payment block must do.

Subclass a contract in your block's tests and say how to make your block; pytest collects the inherited
tests and runs them on SQLite and PostgreSQL (through the ``database_url`` fixture)::

    from retailblocks.testing.conformance import PaymentContract

    class TestMyGateway(PaymentContract):
        method = "card"

        def make_block(self):
            return MyGateway(MyGateway.Config(secret_key="sk_test_x"))

        def details(self):
            return {"card_number": "4242424242424242"}

The contracts test behaviour through the hooks only, so they hold for any implementation.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from retailblocks.errors import OutOfStock, RetailBlocksError
from retailblocks.hookspecs.blocks import Block
from retailblocks.model import Money, StockDemand
from retailblocks.testing.harness import BlockHarness


class _Contract(abc.ABC):
    @abc.abstractmethod
    def make_block(self) -> Block:
        """The block under test, configured as the test needs."""

    @pytest.fixture
    def harness(self, database_url: str) -> Iterator[BlockHarness]:
        bench = BlockHarness(self.make_block(), database_url)
        yield bench
        bench.close()


class InventoryContract(_Contract):
    """What every inventory block does: all-or-nothing reservations, never overselling, idempotent undo."""

    location = "store-1"
    channel = "store-1"

    def receive(self, harness: BlockHarness, sku: str, quantity: int) -> None:
        block: Any = harness.block
        with harness.context(self.channel) as ctx:
            block.inventory_adjust(ctx, sku, self.location, quantity, "received", f"receive-{sku}-{quantity}")

    def reserve(self, harness: BlockHarness, *demands: tuple[str, int]) -> Any:
        block: Any = harness.block
        with harness.context(self.channel) as ctx:
            return block.inventory_reserve(
                ctx, [StockDemand(s, q) for s, q in demands], [self.location], False, timedelta(minutes=15)
            )

    def available(self, harness: BlockHarness, sku: str) -> int:
        block: Any = harness.block
        with harness.context(self.channel) as ctx:
            return int(block.inventory_available(ctx, [sku])[sku])

    def test_a_shortfall_reserves_nothing(self, harness: BlockHarness) -> None:
        self.receive(harness, "A", 2)
        self.receive(harness, "B", 5)
        with pytest.raises(OutOfStock):
            self.reserve(harness, ("B", 1), ("A", 3))
        assert self.available(harness, "A") == 2 and self.available(harness, "B") == 5

    def test_release_gives_stock_back_once(self, harness: BlockHarness) -> None:
        self.receive(harness, "A", 3)
        reservation = self.reserve(harness, ("A", 2))
        assert self.available(harness, "A") == 1
        block: Any = harness.block
        for _ in range(2):
            with harness.context(self.channel) as ctx:
                block.inventory_release(ctx, reservation.id)
        assert self.available(harness, "A") == 3

    def test_an_order_takes_its_units_and_gives_them_back(self, harness: BlockHarness) -> None:
        from retailblocks.model import Parcel

        self.receive(harness, "A", 4)
        reservation = self.reserve(harness, ("A", 3))
        block: Any = harness.block
        with harness.context(self.channel, flow_id="order-1") as ctx:
            block.inventory_commit(ctx, reservation.id, "order-1")
        with harness.context(self.channel, flow_id="order-1") as ctx:
            block.inventory_fulfil(
                ctx, "order-1", [Parcel(line.location, ((line.sku, line.quantity),)) for line in reservation.lines]
            )
        assert self.available(harness, "A") == 1
        with harness.context(self.channel, flow_id="order-1") as ctx:
            block.inventory_return(ctx, "order-1", reservation.lines, "return-1")
        with harness.context(self.channel, flow_id="order-1") as ctx:
            block.inventory_return(ctx, "order-1", reservation.lines, "return-1")  # replayed: no effect
        assert self.available(harness, "A") == 4

    def test_concurrent_buyers_never_oversell(self, harness: BlockHarness) -> None:
        self.receive(harness, "HOT", 5)
        won: list[int] = []
        lock = threading.Lock()

        def buy() -> None:
            try:
                self.reserve(harness, ("HOT", 1))
            except OutOfStock:
                return
            with lock:
                won.append(1)

        threads = [threading.Thread(target=buy) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 5 and self.available(harness, "HOT") == 0


class PaymentContract(_Contract):
    """What every payment block does: authorize, capture, refund, void — each idempotent per key."""

    method = "card"
    currency = "CNY"

    def details(self) -> Mapping[str, str]:
        return {}

    def member_id(self) -> str | None:
        return None

    def money(self, amount: int) -> Money:
        return Money(amount, self.currency)

    def authorize(self, harness: BlockHarness, amount: int, key: str) -> Any:
        block: Any = harness.block
        with harness.context(flow_id="order-1") as ctx:
            return block.payment_authorize(ctx, self.method, self.money(amount), self.details(), self.member_id(), key)

    def test_authorize_is_idempotent_per_key(self, harness: BlockHarness) -> None:
        first = self.authorize(harness, 1000, "auth-1")
        again = self.authorize(harness, 1000, "auth-1")
        assert first.id == again.id and first.amount == self.money(1000)

    def test_status_finds_an_authorization_by_its_key(self, harness: BlockHarness) -> None:
        made = self.authorize(harness, 500, "auth-2")
        block: Any = harness.block
        with harness.context() as ctx:
            found = block.payment_status(ctx, self.method, "auth-2")
        assert found is not None and found.id == made.id
        with harness.context() as ctx:
            assert block.payment_status(ctx, self.method, "never-used") is None

    def test_refunds_never_exceed_captures(self, harness: BlockHarness) -> None:
        authorization = self.authorize(harness, 1000, "auth-3")
        block: Any = harness.block
        with harness.context() as ctx:
            block.payment_capture(ctx, authorization, self.money(600), "capture-1")
        with harness.context() as ctx:
            block.payment_capture(ctx, authorization, self.money(600), "capture-1")  # replay, not a second capture
        with harness.context() as ctx:
            block.payment_refund(ctx, authorization, self.money(400), "refund-1")
        with pytest.raises(RetailBlocksError), harness.context() as ctx:
            block.payment_refund(ctx, authorization, self.money(300), "refund-2")
        with harness.context() as ctx:
            block.payment_refund(ctx, authorization, self.money(200), "refund-3")

    def test_void_is_idempotent(self, harness: BlockHarness) -> None:
        authorization = self.authorize(harness, 800, "auth-4")
        block: Any = harness.block
        for key in ("void-1", "void-1", "void-2"):
            with harness.context() as ctx:
                block.payment_void(ctx, authorization, key)
        with pytest.raises(RetailBlocksError), harness.context() as ctx:
            block.payment_capture(ctx, authorization, self.money(800), "capture-after-void")
