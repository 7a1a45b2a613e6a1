"""Co-funded rights and clawback: a promotion's discount split among several funders to the minor unit,
each funder's part settled with it, and a partner with ``on_refund: clawback`` credited back in proportion
to what each refund returned — exactly what it was billed once the order is fully refunded, with a
clawback after a statement was issued billed as a negative line in the next one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from retailblocks_loyalty import Loyalty

from retailblocks.fusion import settle
from retailblocks.fusion.settlement import clawed_back
from retailblocks.fusion.statements import audit_statements, draft_statement, issue_statement, list_statements
from retailblocks.http.schemas import adjustment_out
from retailblocks.model import AdjustmentTarget, Identity, Money, Order, OrderLine, OrderStatus, PriceAdjustment
from retailblocks.stack import Stack
from tests.fusion.conftest import BRAND
from tests.helpers import cart, make_stack

DAY = date(2026, 3, 2)
PHONE = Identity("phone", "+8613800000002")

CO_FUNDED = BRAND.replace(
    "  - {id: metro, name: Metro Mall, type: platform}\n",
    "  - {id: metro, name: Metro Mall, type: platform, on_refund: clawback}\n"
    "  - {id: tea-farm, name: Tea Farm, type: brand}\n",
).replace(
    '           value: "8.00 CNY", funder: metro, campaign: metro-spring}\n',
    '           value: "8.00 CNY", funder: metro, campaign: metro-spring}\n'
    # 7.01 split 3 ways by 1/3 each cannot be exact: the largest remainder decides the odd cent.
    "        - {id: co-7, code: CO7, target: order, allocation: across, value_type: fixed,\n"
    '           value: "7.01 CNY", funders: [{partner: metro, share: 33.33%}, {partner: tea-farm,\n'
    "           share: 3333bp}, {merchant: 33.34%}]}\n",
)


@pytest.fixture
def shared(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    the_stack = make_stack(tmp_path, database_url, text=CO_FUNDED, stock=20)
    yield the_stack
    the_stack.close()


def next_day(stack: Stack, days: int = 1) -> None:
    stack.clock.advance(timedelta(days=days))  # type: ignore[attr-defined]


def test_a_co_funded_discount_is_split_to_the_cent_and_each_funder_settles_its_part(shared: Stack) -> None:
    priced = shared.quote(cart(("BEANS", 1), ("TEA", 2), identities=(PHONE,), coupons=("CO7",)))
    [co] = [a for a in priced.adjustments if a.promotion_id == "co-7"]
    parts = {who: part.amount for who, part in co.funded_by}
    # 701 × 33.33% = 233.65, × 33.34% = 233.71: floors 233 + 233 + 233 = 699, the two cents left go to the
    # largest remainders (the merchant's .71, then metro's .65 listed before tea-farm's equal one).
    assert parts == {"metro": 234, "tea-farm": 233, "test-shop": 234}
    assert sum(parts.values()) == co.amount.amount == 701
    assert co.funder == "metro"  # the largest part; metro is listed before the merchant
    shown = adjustment_out(co).model_dump()  # what POST /store/quotes answers for it
    assert [(p["funder"], p["amount"]["amount"]) for p in shown["funders"]] == [
        ("metro", 234),
        ("tea-farm", 233),
        ("test-shop", 234),
    ]
    assert shown["reason"] and shown["funder"] == "metro"

    order = shared.checkout(cart(("BEANS", 1), ("TEA", 2), identities=(PHONE,), coupons=("CO7",)), key="co-1")
    [stored] = [a for a in order.adjustments if a.promotion_id == "co-7"]
    assert stored.funders == co.funders  # kept on the order as quoted
    assert [(line.kind, line.amount.amount) for line in settle(shared, "metro", DAY, DAY).lines] == [("discount", 234)]
    assert [(line.kind, line.amount.amount) for line in settle(shared, "tea-farm", DAY, DAY).lines] == [
        ("discount", 233)
    ]
    assert settle(shared, "tea-farm", DAY, DAY).lines[0].detail == "co-7 (CO7): 2.33 CNY of 7.01 CNY"


def test_partial_refunds_claw_back_proportionally_and_a_full_refund_exactly_what_was_billed(shared: Stack) -> None:
    # 3 beans and 1 tea (170.00), 8.00 off across them: metro funds it and claws refunds back.
    order = shared.checkout(cart(("BEANS", 3), ("TEA", 1), identities=(PHONE,), coupons=("MALL8",)), key="r-1")
    [mall] = [a for a in order.adjustments if a.promotion_id == "mall-8"]
    billed = mall.funded_by_party("metro").amount
    assert billed == 800
    line_parts = {index: part.amount for index, part in mall.line_amounts}

    shared.refund(order.id, {0: 1}, key="r-1-a")
    next_day(shared)
    shared.refund(order.id, {0: 1}, key="r-1-b")
    next_day(shared)
    shared.refund(order.id, key="r-1-c")  # the rest: the third bean and the tea

    lines = settle(shared, "metro", DAY, DAY + timedelta(days=2)).lines
    clawbacks = [line for line in lines if line.kind == "clawback"]
    assert [line.at.date() for line in clawbacks] == [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    one_bean = line_parts[0] // 3
    assert clawbacks[0].amount.amount == -one_bean  # a third of the beans' part (floor)
    assert -sum(line.amount.amount for line in clawbacks) == billed  # no cent lost across the refunds
    assert sum(line.amount.amount for line in lines) == 0  # billed, then entirely credited back
    # Each refund is settled in its own period.
    assert [line.kind for line in settle(shared, "metro", DAY + timedelta(days=1), DAY + timedelta(days=1)).lines] == [
        "clawback"
    ]


def test_a_partner_that_keeps_is_billed_as_before_after_a_refund(shared: Stack) -> None:
    order = shared.checkout(cart(("BEANS", 2), identities=(PHONE,), coupons=("CO7",)), key="k-1")
    shared.refund(order.id, key="k-1-refund")
    assert [line.kind for line in settle(shared, "tea-farm", DAY, DAY).lines] == ["discount"]
    metro = settle(shared, "metro", DAY, DAY)
    assert sorted(line.kind for line in metro.lines) == ["clawback", "discount"] and metro.total() == 0


def test_a_clawback_after_issue_is_a_negative_line_in_the_next_statement(shared: Stack) -> None:
    order = shared.checkout(cart(("BEANS", 2), ("MUG", 1), identities=(PHONE,), coupons=("MALL8",)), key="s-1")
    next_day(shared)
    first = issue_statement(shared, "metro", DAY, DAY)
    assert [(line.kind, line.amount.amount) for line in first.lines] == [("discount", 800)]

    shared.refund(order.id, {0: 1}, key="s-1-a")  # one bean back, on the second day
    assert "clawback" in [
        line.kind for line in draft_statement(shared, "metro", DAY + timedelta(days=1), DAY + timedelta(days=1)).lines
    ]
    next_day(shared)
    second = issue_statement(shared, "metro", DAY + timedelta(days=1), DAY + timedelta(days=1))
    [claw] = second.lines
    assert claw.kind == "clawback" and claw.amount.amount < 0 and claw.reference.startswith(order.id + "/")
    assert list_statements(shared, "metro")[0].lines == first.lines  # the issued statement never changes

    shared.refund(order.id, key="s-1-b")  # the rest, on the third day
    next_day(shared)
    third = issue_statement(shared, "metro", DAY + timedelta(days=2), DAY + timedelta(days=2))
    assert [line.kind for line in third.lines] == ["clawback"]
    assert first.total.amount + second.total.amount + third.total.amount == 0
    assert all(finding.ok for finding in audit_statements(shared)), audit_statements(shared)
    assert draft_statement(shared, "metro", DAY + timedelta(days=3), DAY + timedelta(days=3)).lines == ()


# -- the arithmetic, on its own -------------------------------------------------------------------------


def _order(quantities: list[int], parts: list[int], metro_share: int) -> Order:
    """An order whose one discount (``parts`` by line) metro funds ``metro_share`` units of."""
    cny = lambda amount: Money(amount, "CNY")  # noqa: E731
    total = sum(parts)
    funders = (("metro", cny(metro_share)), ("test-shop", cny(total - metro_share))) if metro_share < total else ()
    adjustment = PriceAdjustment(
        block="promotions",
        promotion_id="p",
        target=AdjustmentTarget.ORDER,
        amount=cny(total),
        reason="r",
        funder="metro",
        line_amounts=tuple((index, cny(part)) for index, part in enumerate(parts)),
        funders=funders,
    )
    lines = tuple(OrderLine(i, f"S{i}", q, cny(10_000), cny(parts[i])) for i, q in enumerate(quantities))
    zero = cny(0)
    return Order(
        "o-1",
        "web",
        OrderStatus.PAID,
        "CNY",
        lines,
        zero,
        zero,
        zero,
        zero,
        datetime(2026, 3, 2, tzinfo=UTC),
        adjustments=(adjustment,),
    )


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_clawbacks_over_any_partial_refunds_sum_to_exactly_the_part_billed(data: st.DataObject) -> None:
    quantities = data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=4))
    parts = [data.draw(st.integers(0, 5000)) for _ in quantities]
    total = sum(parts)
    metro = data.draw(st.integers(0, total))
    order = _order(quantities, parts, metro)
    refunded = dict.fromkeys(range(len(quantities)), 0)
    before = 0
    clawed = []
    while any(refunded[i] < q for i, q in enumerate(quantities)):
        index = data.draw(st.sampled_from([i for i, q in enumerate(quantities) if refunded[i] < q]))
        refunded[index] += data.draw(st.integers(1, quantities[index] - refunded[index]))
        now = clawed_back(order, "metro", refunded)
        assert now >= before  # a refund never takes back what an earlier one credited
        assert now <= metro
        clawed.append(now - before)
        before = now
    assert sum(clawed) == metro


# -- over random days -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_over_random_orders_refunds_and_exchanges_statements_sum_to_funded_less_clawed_back_plus_points(
    shared: Stack, seed: int
) -> None:
    """Σ statements = Σ metro's funded parts − Σ clawbacks + points exchanged, to the minor unit, with a
    statement issued every day or two; every statement's total is the sum of its lines; the audit holds."""
    rng = random.Random(seed)
    loyalty = shared.block("loyalty")
    assert isinstance(loyalty, Loyalty)
    orders: list[Order] = []
    start = DAY
    last = DAY + timedelta(days=5)
    for day in range(6):
        for n in range(rng.randint(1, 3)):
            coupons = (rng.choice(["MALL8", "CO7"]),) if rng.random() < 0.8 else ()
            lines = [(sku, rng.randint(1, 3)) for sku in rng.sample(["BEANS", "TEA", "MUG"], rng.randint(1, 2))]
            orders.append(shared.checkout(cart(*lines, identities=(PHONE,), coupons=coupons), key=f"{day}-{n}"))
        for order in rng.sample(orders, min(len(orders), rng.randint(0, 2))):
            current = shared.order(order.id)
            left = {line.index: line.quantity - line.refunded_quantity for line in current.lines}
            if not any(left.values()):
                continue
            index = rng.choice([i for i, units in left.items() if units])
            shared.refund(order.id, {index: rng.randint(1, left[index])}, key=f"{day}-r-{order.id}")
        member = orders[0].member_id
        assert member is not None
        with shared.context(flow="test") as ctx:
            loyalty.exchange_in(ctx, member, "metro", rng.randint(1, 5) * 200, f"{day}-x-in")
            if rng.random() < 0.5:
                loyalty.exchange_out(ctx, member, "metro", rng.randint(1, 3) * 10, f"{day}-x-out")
        next_day(shared)
        today = DAY + timedelta(days=day)
        if rng.random() < 0.6 or day == 5:
            statement = issue_statement(shared, "metro", start, today)
            assert statement.total.amount == sum(line.amount.amount for line in statement.lines)
            start = today + timedelta(days=1)

    statements = list_statements(shared, "metro")
    funded = clawed = 0
    for placed in orders:
        order = shared.order(placed.id)
        funded += sum(a.funded_by_party("metro").amount for a in order.adjustments)
        clawed += clawed_back(order, "metro", {line.index: line.refunded_quantity for line in order.lines})
    ledgers = settle(shared, "metro", DAY, last).lines
    points = sum(line.amount.amount for line in ledgers if line.kind.startswith("points"))
    assert clawed > 0 and funded > clawed  # the days did refund some of metro's discounts
    assert sum(s.total.amount for s in statements) == funded - clawed + points
    assert all(finding.ok for finding in audit_statements(shared)), audit_statements(shared)
