"""The engine's properties hold for the promotions a mixed-fulfilment, taxed cart needs: shares sum
exactly, no line or shipping goes below zero, the order of the lines changes nothing, and 'once' gives N
units in all, the cheapest first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from retailblocks_promotions import PromotionConfig
from retailblocks_promotions.config import TaxConfig
from retailblocks_promotions.engine import Adjustment, Line, Shopper, compute
from retailblocks_promotions.testing import NOW, cny

from retailblocks.model import Money

SKUS = ["a", "b", "c"]
WAYS = [
    ("pickup", None, None),
    ("delivery", "std", "north"),
    ("delivery", "express", "north"),
    ("delivery", "std", "south"),
]
TAXES = [
    None,
    TaxConfig(prices_include_tax=True, default_rate="13%", category_rates={"y": "9%"}, shipping_rate="6%"),
    TaxConfig(prices_include_tax=False, default_rate="13%", category_rates={"y": "9%"}),
]


@st.composite
def lines(draw: st.DrawFn) -> list[Line]:
    result = []
    for index in range(draw(st.integers(1, 6))):
        fulfilment, option, region = draw(st.sampled_from(WAYS))
        result.append(
            Line(
                index,
                draw(st.sampled_from(SKUS)),
                draw(st.integers(1, 5)),
                cny(draw(st.one_of(st.sampled_from([0, 999, 1000, 2500]), st.integers(0, 5000)))),
                category=draw(st.sampled_from(["x", "y"])),
                discount=cny(draw(st.one_of(st.just(0), st.integers(0, 2000)))),
                fulfilment=fulfilment,
                option_id=option,
                region=region,
            )
        )
    return result


@st.composite
def promotions(draw: st.DrawFn, taxed: bool) -> list[PromotionConfig]:
    result = []
    for number in range(draw(st.integers(1, 4))):
        percentage = draw(st.booleans())
        value: float | Money = draw(st.integers(1, 10_000)) / 100 if percentage else cny(draw(st.integers(1, 20_000)))
        target = draw(st.sampled_from(["items", "items", "order", "shipping"]))
        allocation = "once" if target == "items" and draw(st.booleans()) else draw(st.sampled_from(["each", "across"]))
        fields: dict[str, object] = {
            "id": f"p{number}",
            "value_type": "percentage" if percentage else "fixed",
            "value": value,
            "automatic": True,
            "priority": draw(st.integers(0, 2)),
            "target": target,
            "allocation": allocation,
            "max_quantity": draw(st.integers(1, 6))
            if allocation == "once"
            else draw(st.one_of(st.none(), st.integers(1, 4))),
            "cap": draw(st.one_of(st.none(), st.integers(1, 5000).map(cny))),
            "skus": draw(st.lists(st.sampled_from(SKUS), max_size=2)),
            "fulfilments": draw(st.lists(st.sampled_from(["pickup", "delivery"]), max_size=1)),
            "delivery_options": draw(st.lists(st.sampled_from(["std", "express"]), max_size=1)),
            "regions": draw(st.lists(st.sampled_from(["north", "south"]), max_size=1)),
            "min_cart_subtotal": draw(st.one_of(st.none(), st.integers(0, 20_000).map(cny))),
            "min_subtotal": draw(st.one_of(st.none(), st.integers(0, 20_000).map(cny))),
        }
        if taxed:
            fields["amounts"] = draw(st.sampled_from(["as_priced", "tax_inclusive", "tax_exclusive"]))
        result.append(PromotionConfig(**fields))  # type: ignore[arg-type]
    return result


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Line], list[PromotionConfig], TaxConfig | None, int]:
    taxes = draw(st.sampled_from(TAXES))
    return draw(lines()), draw(promotions(taxes is not None)), taxes, draw(st.integers(0, 3000))


def run(
    cart: Sequence[Line], configured: Sequence[PromotionConfig], taxes: TaxConfig | None, shipping: int
) -> list[Adjustment]:
    return compute(cart, cny(shipping), Shopper(), (), configured, now=NOW, merchant_id="shop", taxes=taxes)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_splits_are_exact_and_nothing_goes_negative(
    scenario: tuple[list[Line], list[PromotionConfig], TaxConfig | None, int],
) -> None:
    cart, configured, taxes, shipping = scenario
    left = {line.index: line.subtotal - min(line.taken, line.subtotal) for line in cart}
    by_index = {line.index: line for line in cart}
    promotion = {p.id: p for p in configured}
    shipping_left = shipping
    for adjustment in run(cart, configured, taxes, shipping):
        assert adjustment.amount.amount > 0
        if adjustment.target == "shipping":
            shipping_left -= adjustment.amount.amount
            continue
        assert sum(share.amount for _, share in adjustment.line_amounts) == adjustment.amount.amount
        chosen = promotion[adjustment.promotion_id]
        for index, share in adjustment.line_amounts:
            assert share.amount > 0
            left[index] -= share.amount
            line = by_index[index]
            # Only the lines leaving the way the promotion names are touched.
            assert not chosen.fulfilments or line.fulfilment in chosen.fulfilments
            assert not chosen.delivery_options or line.option_id in chosen.delivery_options
            assert not chosen.regions or line.region in chosen.regions
        if chosen.allocation == "once":
            assert len(adjustment.line_amounts) <= (chosen.max_quantity or 0)
    assert all(amount >= 0 for amount in left.values())
    assert shipping_left >= 0


def _content(line: Line) -> tuple[object, ...]:
    return (
        line.sku,
        line.unit_price.amount,
        line.category,
        line.quantity,
        line.taken,
        line.fulfilment,
        line.option_id,
        line.region,
    )


def _given(adjustments: Sequence[Adjustment], cart: Sequence[Line]) -> tuple[object, ...]:
    by_index = {line.index: line for line in cart}
    by_content: Counter[tuple[str, tuple[object, ...], int]] = Counter()
    for adjustment in adjustments:
        for index, share in adjustment.line_amounts:
            by_content[adjustment.promotion_id, _content(by_index[index]), share.amount] += 1
    return [(a.promotion_id, a.target, a.amount.amount) for a in adjustments], by_content


@settings(max_examples=300, deadline=None)
@given(st.data(), scenarios())
def test_the_order_of_the_lines_changes_nothing(
    data: st.DataObject, scenario: tuple[list[Line], list[PromotionConfig], TaxConfig | None, int]
) -> None:
    cart, configured, taxes, shipping = scenario
    shuffled = [attrs.evolve(line, index=10 + place) for place, line in enumerate(data.draw(st.permutations(cart)))]
    assert _given(run(cart, configured, taxes, shipping), cart) == _given(
        run(shuffled, configured, taxes, shipping), shuffled
    )


@settings(max_examples=300, deadline=None)
@given(lines(), st.integers(1, 12), st.lists(st.sampled_from(SKUS), max_size=2))
def test_once_gives_n_units_in_all_cheapest_first(cart: list[Line], units: int, skus: list[str]) -> None:
    fresh = [attrs.evolve(line, discount=None) for line in cart]
    free = PromotionConfig(
        id="once", value_type="percentage", value=100, automatic=True, allocation="once", max_quantity=units, skus=skus
    )
    result = run(fresh, [free], None, 0)
    given_units = {
        index: share.amount // line.unit_price.amount
        for adjustment in result
        for index, share in adjustment.line_amounts
        for line in fresh
        if line.index == index
    }
    eligible = [line for line in fresh if (not skus or line.sku in skus) and line.unit_price.amount > 0]
    assert sum(given_units.values()) == min(units, sum(line.quantity for line in eligible))
    dearest_given = max((line.unit_price.amount for line in eligible if line.index in given_units), default=0)
    for line in eligible:
        if line.unit_price.amount < dearest_given:
            assert given_units.get(line.index) == line.quantity  # a cheaper unit is never left for a dearer one
