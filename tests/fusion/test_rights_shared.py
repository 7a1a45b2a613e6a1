"""Rights shared: a coupon funded by the partner platform and points exchanged with its programme are
settled with it, line by line, from the ledgers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from retailblocks_loyalty import Loyalty

from retailblocks.errors import InvalidValue
from retailblocks.fusion import settle
from retailblocks.model import Identity
from retailblocks.stack import Stack
from tests.helpers import cart

DAY = date(2026, 3, 2)
PHONE = Identity("phone", "+8613800000002")


def test_a_partner_funded_coupon_shows_in_the_partners_settlement_with_the_exact_amount(stack: Stack) -> None:
    with_coupon = stack.checkout(cart(("BEANS", 2), identities=(PHONE,), coupons=("MALL8",)), key="c-1")
    stack.checkout(cart(("TEA", 1), identities=(PHONE,)), key="c-2")  # no partner money in this one
    cancelled = stack.checkout(cart(("MUG", 3), identities=(PHONE,), coupons=("mall8",)), key="c-3")
    stack.cancel(cancelled.id)

    settlement = settle(stack, "metro", DAY, DAY)
    [line] = settlement.lines
    funded = [a for a in with_coupon.adjustments if a.funder == "metro"]
    assert line.kind == "discount"
    assert line.reference == with_coupon.id
    assert line.amount.amount == sum(a.amount.amount for a in funded) == 800
    assert settlement.total() == 800
    assert settle(stack, "metro", DAY + timedelta(days=1), DAY + timedelta(days=7)).lines == ()


def test_points_exchanged_are_settled_at_the_configured_rates_and_reconcile(stack: Stack) -> None:
    order = stack.checkout(cart(("BEANS", 4), identities=(PHONE,), coupons=("MALL8",)), key="p-1")
    loyalty = stack.block("loyalty")
    assert isinstance(loyalty, Loyalty)
    with stack.context(flow="test") as ctx:
        member = order.member_id
        assert member is not None
        loyalty.exchange_in(ctx, member, "metro", 1000, "x-in")  # 500 of our points in at 50%
        loyalty.exchange_out(ctx, member, "metro", 100, "x-out")  # 100 points out as 200 of theirs
        balances = loyalty.partner_balances(ctx)

    first = settle(stack, "metro", DAY, DAY)
    assert first == settle(stack, "metro", DAY, DAY)  # reproducible from the ledgers
    by_kind = {line.kind: line.amount.amount for line in first.lines}
    # 100 points are worth 1.00 CNY: 500 points in → the platform owes 5.00; 100 out → we owe 1.00.
    assert by_kind == {"discount": 800, "points_in": 500, "points_out": -100}
    assert first.total() == sum(by_kind.values()) == 1200
    assert balances["metro"] == -400  # the clearing account agrees: net 400 points the platform owes us
    data = first.to_data("CNY")
    assert data["partner_owes_merchant"] == "13.00 CNY"
    assert data["merchant_owes_partner"] == "1.00 CNY"


def test_an_unknown_partner_or_a_backwards_period_is_refused(stack: Stack) -> None:
    with pytest.raises(InvalidValue, match="did you mean 'metro'"):
        settle(stack, "metr0", DAY, DAY)
    with pytest.raises(InvalidValue, match="ends"):
        settle(stack, "metro", DAY, DAY - timedelta(days=1))
