"""Shared helpers for the loyalty block's tests: a harness factory, orders, and ledger invariants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from retailblocks_loyalty import Loyalty, LoyaltyConfig
from retailblocks_loyalty.tables import accounts, journals, lots, postings

from retailblocks.clock import ManualClock
from retailblocks.model import Money, Order, OrderLine, OrderStatus
from retailblocks.testing import BlockHarness

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

MakeHarness = Callable[..., BlockHarness]


@pytest.fixture
def make_harness(database_url: str) -> Iterator[MakeHarness]:
    made: list[BlockHarness] = []

    def make(config: LoyaltyConfig | None = None) -> BlockHarness:
        harness = BlockHarness(Loyalty(config), database_url, clock=ManualClock(START))
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
    """The ledger's invariants: balances are sums of postings, guarded accounts are never negative,
    every journal balances, and a member's lots hold exactly the member's balance."""
    sums = dict(
        connection.execute(
            sa.select(postings.c.account_id, sa.func.sum(postings.c.points)).group_by(postings.c.account_id)
        ).all()
    )
    for account_id, balance, may_go_negative in connection.execute(
        sa.select(accounts.c.id, accounts.c.balance, accounts.c.may_go_negative)
    ).all():
        assert balance == int(sums.get(account_id, 0)), account_id
        assert may_go_negative or balance >= 0, account_id
    unbalanced = connection.execute(
        sa.select(postings.c.journal_id).group_by(postings.c.journal_id).having(sa.func.sum(postings.c.points) != 0)
    ).all()
    assert unbalanced == []
    lot_sums = dict(
        connection.execute(sa.select(lots.c.member_id, sa.func.sum(lots.c.remaining)).group_by(lots.c.member_id)).all()
    )
    for owner, balance in connection.execute(
        sa.select(accounts.c.owner, accounts.c.balance).where(accounts.c.kind == "member")
    ).all():
        assert balance == int(lot_sums.get(owner, 0)), owner
    assert connection.execute(sa.select(sa.func.count()).select_from(journals)).scalar() is not None
