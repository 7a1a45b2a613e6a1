"""Shared helpers for the loyalty block's tests: a harness factory, orders, and ledger invariants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from retailblocks_loyalty import Loyalty, LoyaltyConfig
from retailblocks_loyalty.audit import ledger_problems

from retailblocks.clock import ManualClock
from retailblocks.model import Money, Order, OrderLine, OrderStatus
from retailblocks.testing import BlockHarness

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

MakeHarness = Callable[..., BlockHarness]
#: The catalog of the stacks the tests assemble (earning rules name some of its SKUs).
CATALOG = ["CUP", "GIFT-CARD", "TEA-GREEN"]


@pytest.fixture
def make_harness(database_url: str) -> Iterator[MakeHarness]:
    made: list[BlockHarness] = []

    def make(config: LoyaltyConfig | None = None) -> BlockHarness:
        partners = sorted(config.partners) if config is not None else []
        harness = BlockHarness(
            Loyalty(config), database_url, clock=ManualClock(START), names={"partner": partners}, skus=CATALOG
        )
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


def cny(text: str) -> Money:
    return Money.parse(f"{text} CNY")


def order(
    order_id: str,
    *lines: tuple[str, int, str],
    channel: str = "web",
    shipping: str = "0.00",
    discount: str = "0.00",
) -> Order:
    """An order of ``(sku, quantity, unit price)`` lines; ``discount`` is order-level."""
    order_lines = tuple(
        OrderLine(index, sku, quantity, cny(price), cny("0.00")) for index, (sku, quantity, price) in enumerate(lines)
    )
    subtotal = sum((line.subtotal for line in order_lines), cny("0.00"))
    total = subtotal - cny(discount) + cny(shipping)
    return Order(
        id=order_id,
        channel=channel,
        status=OrderStatus.PAID,
        currency="CNY",
        lines=order_lines,
        subtotal=subtotal,
        discount=cny(discount),
        shipping=cny(shipping),
        total=total,
        created_at=START,
    )


def check_ledger(connection: sa.Connection) -> None:
    """The ledger's invariants (see ``retailblocks_loyalty.audit``) hold."""
    assert ledger_problems(connection) == []
