"""Properties of every result: splits sum exactly, no line or shipping goes below zero, and the order
of the cart's lines changes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from retailblocks_promotions import PromotionConfig
from retailblocks_promotions.engine import Adjustment, Line, Shopper, Usage, compute
from retailblocks_promotions.testing import NOW, cny

from retailblocks.model import Money

SKUS = ["a", "b", "c"]


@st.composite
def lines(draw: st.DrawFn) -> list[Line]:
    count = draw(st.integers(1, 5))
    return [
        Line(
            index,
            draw(st.sampled_from(SKUS)),
            draw(st.integers(1, 6)),
            # Few prices, so equally dear lines (the ties) are common.
            cny(draw(st.one_of(st.sampled_from([0, 999, 1000, 2500]), st.integers(0, 5000)))),
            category=draw(st.sampled_from(["x", "y"])),
            discount=cny(draw(st.one_of(st.just(0), st.integers(0, 2000)))),
        )
        for index in range(count)
    ]


@st.composite
def promotions(draw: st.DrawFn) -> list[PromotionConfig]:
    result = []
    for number in range(draw(st.integers(1, 5))):
        percentage = draw(st.booleans())
        value: float | Money = draw(st.integers(1, 10_000)) / 100 if percentage else cny(draw(st.integers(1, 20_000)))
        kind = draw(st.sampled_from(["standard", "standard", "buyget"]))
        fields: dict[str, object] = {
            "id": f"p{number}",
            "value_type": "percentage" if percentage else "fixed",
            "value": value,
            "automatic": True,
            "priority": draw(st.integers(0, 2)),
            "max_quantity": draw(st.one_of(st.none(), st.integers(1, 4))),
            "cap": draw(st.one_of(st.none(), st.integers(1, 5000).map(cny))),
            "exclusive": draw(st.booleans()) and draw(st.booleans()),
            "stacking_group": draw(st.sampled_from([None, None, "g"])),
        }
        if draw(st.booleans()):
            fields["min_subtotal"] = cny(draw(st.integers(0, 20_000)))
        if draw(st.booleans()):
            fields["budget"] = cny(draw(st.integers(0, 20_000)))
        if kind == "buyget":
            fields.update(
                type="buyget",
                buy_skus=draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3)),
                get_skus=draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3)),
                buy_quantity=draw(st.integers(1, 3)),
                get_quantity=draw(st.integers(1, 3)),
            )
        else:
            fields.update(
                target=draw(st.sampled_from(["items", "order", "shipping"])),
                allocation=draw(st.sampled_from(["each", "across"])),
                skus=draw(st.lists(st.sampled_from(SKUS), max_size=2)),
            )
        result.append(PromotionConfig(**fields))  # type: ignore[arg-type]
    return result


def usages(configured: Sequence[PromotionConfig]) -> st.SearchStrategy[dict[str, Usage]]:
    budgeted = [p for p in configured if p.budget is not None]
    return st.fixed_dictionaries(
        {p.id: st.builds(Usage, budget_spent=st.integers(0, p.budget.amount)) for p in budgeted if p.budget}
    )


@settings(max_examples=300, deadline=None)
@given(lines(), promotions(), st.integers(0, 3000))
def test_splits_are_exact_and_nothing_goes_negative(
    cart: list[Line], configured: list[PromotionConfig], shipping: int
) -> None:
    result = compute(cart, cny(shipping), Shopper(), (), configured, now=NOW, merchant_id="shop")
    left = {line.index: line.subtotal - min(line.taken, line.subtotal) for line in cart}
    shipping_left = shipping
    for adjustment in result:
        assert adjustment.amount.amount > 0
        if adjustment.target == "shipping":
            assert adjustment.line_amounts == ()
            shipping_left -= adjustment.amount.amount
            continue
        assert sum(share.amount for _, share in adjustment.line_amounts) == adjustment.amount.amount
        for index, share in adjustment.line_amounts:
            assert share.amount > 0
            left[index] -= share.amount
    assert all(amount >= 0 for amount in left.values())
    assert shipping_left >= 0
    promotion = {p.id: p for p in configured}
    for adjustment in result:
        cap = promotion[adjustment.promotion_id].cap
        assert cap is None or adjustment.amount <= cap
    assert len({a.promotion_id for a in result}) == len(result)
    groups = [promotion[a.promotion_id].stacking_group for a in result]
    assert groups.count("g") <= 1
    if any(promotion[a.promotion_id].exclusive for a in result):
        assert len(result) == 1


def _content(line: Line) -> tuple[str, int, str, int, int]:
    return (line.sku, line.unit_price.amount, line.category, line.quantity, line.taken)


def _given(adjustments: Sequence[Adjustment], cart: Sequence[Line]) -> tuple[object, ...]:
    """What a cart was given, without the lines' positions: the adjustments in order with their
    amounts, and every share by the content of its line and by SKU."""
    by_index = {line.index: line for line in cart}
    by_content: Counter[tuple[str, tuple[str, int, str, int, int], int]] = Counter()
    by_sku: Counter[tuple[str, str]] = Counter()
    for adjustment in adjustments:
        for index, share in adjustment.line_amounts:
            line = by_index[index]
            by_content[adjustment.promotion_id, _content(line), share.amount] += 1
            by_sku[adjustment.promotion_id, line.sku] += share.amount
    heads = [(a.promotion_id, a.target, a.amount.amount) for a in adjustments]
    return heads, by_content, by_sku


@settings(max_examples=400, deadline=None)
@given(st.data(), lines(), promotions(), st.integers(0, 3000))
def test_the_order_of_the_lines_changes_nothing(
    data: st.DataObject, cart: list[Line], configured: list[PromotionConfig], shipping: int
) -> None:
    usage = data.draw(usages(configured))
    # Reordered and renumbered, as the same basket put in the cart in another order would be.
    shuffled = [attrs.evolve(line, index=10 + place) for place, line in enumerate(data.draw(st.permutations(cart)))]
    results = [
        compute(each, cny(shipping), Shopper(), (), configured, now=NOW, merchant_id="shop", usage=usage)
        for each in (cart, shuffled)
    ]
    assert _given(results[0], cart) == _given(results[1], shuffled)


@given(st.integers(-(10**9), 10**9), st.integers(1, 10**6))
def test_rounding_half_up_in_integers_is_rounding_half_up(numerator: int, denominator: int) -> None:
    from fractions import Fraction

    from retailblocks_promotions.engine import _round, _round_half_up

    value = Fraction(numerator, denominator)
    floor = value.numerator // value.denominator
    assert _round_half_up(value) == (floor + 1 if (value - floor) * 2 >= 1 else floor)
    # One line takes the rounded total, as the largest-remainder split over one line would give it.
    assert _round({3: value}) == {3: _round_half_up(value)}
    assert sum(_round({0: value, 1: value / 2}).values()) == _round_half_up(value + value / 2)
