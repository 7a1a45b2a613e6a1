"""What a peer's promotion suite expects beyond the basics: 'once' allocation, promotions for one
fulfilment kind, delivery option or region in a mixed cart, a whole-cart spend threshold, and amounts
written net or gross of tax."""

from __future__ import annotations

import pytest
from retailblocks_promotions import Config, PromotionConfig
from retailblocks_promotions.config import TaxConfig
from retailblocks_promotions.engine import Line
from retailblocks_promotions.testing import cny, line, price, promo, shares, totals

from retailblocks.errors import InvalidValue


def mixed() -> list[Line]:
    """Beans picked up in a store, a mug sent express to Shanghai, tea sent standard to Zhejiang."""
    return [
        Line(0, "beans", 2, cny(5000), "coffee", fulfilment="pickup"),
        Line(1, "mug", 1, cny(3000), "merch", fulfilment="delivery", option_id="sf-express", region="Shanghai"),
        Line(2, "tea", 3, cny(2000), "tea", fulfilment="delivery", option_id="sf-std", region="Zhejiang"),
    ]


class TestOnce:
    def test_n_units_in_all_cheapest_first(self) -> None:
        cart = [line(0, "a", 2, 6000), line(1, "b", 3, 3000), line(2, "c", 1, 500)]
        result = price([promo("three", 100, allocation="once", max_quantity=3)], cart)
        # The 5.00 unit, then two of the 10.00 units: 3 units in all, not 3 per line.
        assert shares(result) == [("three", 1, 2000), ("three", 2, 500)]

    def test_fixed_per_unit_never_more_than_the_unit(self) -> None:
        cart = [line(0, "a", 4, 4000), line(1, "b", 1, 300)]
        result = price([promo("two", cny(800), allocation="once", max_quantity=2)], cart)
        # The 3.00 unit gives 3.00 (not 8.00), the cheapest 10.00 unit gives 8.00.
        assert shares(result) == [("two", 0, 800), ("two", 1, 300)]

    def test_a_line_with_nothing_left_passes_its_units_on(self) -> None:
        cart = [Line(0, "a", 1, cny(100), discount=cny(100)), line(1, "b", 2, 2000)]
        result = price([promo("one", 50, allocation="once", max_quantity=1)], cart)
        assert shares(result) == [("one", 1, 500)]

    def test_only_matching_lines_count(self) -> None:
        cart = [line(0, "a", 1, 100, "x"), line(1, "b", 1, 1000, "y"), line(2, "c", 1, 2000, "y")]
        result = price([promo("y1", 100, allocation="once", max_quantity=1, categories=["y"])], cart)
        assert shares(result) == [("y1", 1, 1000)]

    def test_explained(self) -> None:
        result = price([promo("two", 50, allocation="once", max_quantity=2)], [line(0, "a", 3, 300)])
        assert result[0].reason == "50% off items, on 2 units in all, cheapest first"

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({}, "needs 'max_quantity'"),
            ({"max_quantity": 1, "target": "order"}, "'once' is for standard promotions on items"),
        ],
    )
    def test_needs_units_and_items(self, fields: dict[str, object], message: str) -> None:
        with pytest.raises(InvalidValue, match=message):
            promo("bad", 10, allocation="once", **fields)


class TestFulfilment:
    def test_a_pickup_promotion_discounts_only_the_lines_picked_up(self) -> None:
        result = price([promo("collect", 10, fulfilments=["pickup"])], mixed())
        assert shares(result) == [("collect", 0, 1000)]

    def test_a_delivery_option_promotion_discounts_only_its_lines(self) -> None:
        result = price([promo("express", cny(500), delivery_options=["sf-express"])], mixed())
        assert shares(result) == [("express", 1, 500)]
        both = price([promo("delivered", 10, fulfilments=["delivery"], allocation="across")], mixed())
        assert shares(both) == [("delivered", 1, 300), ("delivered", 2, 600)]

    def test_an_order_promotion_spreads_over_its_fulfilment_only(self) -> None:
        result = price([promo("std", cny(900), target="order", delivery_options=["sf-std"])], mixed())
        assert shares(result) == [("std", 2, 900)]

    def test_a_buyget_counts_only_units_leaving_its_way(self) -> None:
        cart = [*mixed(), Line(3, "beans", 1, cny(5000), "coffee", fulfilment="delivery", option_id="sf-std")]
        deal = PromotionConfig(
            id="b1g1",
            value_type="percentage",
            value=100,
            type="buyget",
            buy_skus=["beans"],
            get_skus=["beans"],
            buy_quantity=1,
            get_quantity=1,
            fulfilments=["pickup"],
        )
        # Only the two beans picked up make a set; the delivered bag is neither bought nor given.
        assert shares(price([deal], cart)) == [("b1g1", 0, 5000)]

    def test_a_shipping_promotion_needs_a_line_leaving_its_way(self) -> None:
        ship = promo("free-express", 100, target="shipping", delivery_options=["sf-express"])
        assert totals(price([ship], mixed(), shipping=1200)) == {"free-express": 1200}
        assert price([ship], [mixed()[0], mixed()[2]], shipping=1200) == []

    def test_unknown_fulfilment_is_refused(self) -> None:
        with pytest.raises(InvalidValue, match=r"fulfilments\[0\] is 'courier', which is not a fulfilment kind"):
            promo("bad", 10, fulfilments=["courier"])

    def test_explained(self) -> None:
        result = price([promo("c", 10, fulfilments=["pickup"], regions=["Shanghai"])], [line(0, "a", 1, 100)])
        assert result == []
        reason = price([promo("c", 10, fulfilments=["pickup"])], mixed())[0].reason
        assert reason == "10% off items for pickup, per item"


class TestRegionAndSubtotal:
    def test_a_region_promotion_discounts_the_lines_going_there(self) -> None:
        result = price([promo("sh", 10, regions=["Shanghai"])], mixed())
        assert shares(result) == [("sh", 1, 300)]
        assert price([promo("bj", 10, regions=["Beijing"])], mixed()) == []

    def test_whole_cart_threshold_counts_every_line_after_earlier_discounts(self) -> None:
        # The cart is 190.00; an item promotion on tea only, when the whole cart reaches the threshold.
        tea: dict[str, object] = {"categories": ["tea"]}
        assert totals(price([promo("t", 10, min_cart_subtotal=cny(19000), **tea)], mixed())) == {"t": 600}
        assert price([promo("t", 10, min_cart_subtotal=cny(19001), **tea)], mixed()) == []
        discounted = [Line(0, "beans", 2, cny(5000), "coffee", discount=cny(1)), *mixed()[1:]]
        assert price([promo("t", 10, min_cart_subtotal=cny(19000), **tea)], discounted) == []

    def test_matching_lines_threshold_still_counts_only_its_lines(self) -> None:
        assert price([promo("t", 10, categories=["tea"], min_subtotal=cny(6001))], mixed()) == []


GROSS = TaxConfig(prices_include_tax=True, default_rate="13%", category_rates={"tea": "9%"}, shipping_rate="6%")
NET = TaxConfig(prices_include_tax=False, default_rate="13%", category_rates={"tea": "9%"}, shipping_rate="6%")


class TestTax:
    def test_a_net_fixed_value_on_gross_prices_takes_the_tax_too(self) -> None:
        cart = [line(0, "mug", 1, 3000, "merch")]
        net = promo("net", cny(1000), amounts="tax_exclusive")
        assert totals(price([net], cart, taxes=GROSS)) == {"net": 1130}
        assert totals(price([promo("asis", cny(1000))], cart, taxes=GROSS)) == {"asis": 1000}
        assert totals(price([promo("gross", cny(1000), amounts="tax_inclusive")], cart, taxes=GROSS)) == {"gross": 1000}

    def test_a_gross_fixed_value_on_net_prices_takes_the_net_part(self) -> None:
        cart = [line(0, "mug", 1, 3000, "merch")]
        gross = promo("gross", cny(1130), amounts="tax_inclusive")
        assert totals(price([gross], cart, taxes=NET)) == {"gross": 1000}
        assert totals(price([promo("net", cny(1000), amounts="tax_exclusive")], cart, taxes=NET)) == {"net": 1000}

    def test_each_line_at_its_own_rate(self) -> None:
        cart = [line(0, "mug", 1, 3000, "merch"), line(1, "tea", 1, 3000, "tea")]
        result = price([promo("net", cny(1000), amounts="tax_exclusive")], cart, taxes=GROSS)
        assert shares(result) == [("net", 0, 1130), ("net", 1, 1090)]

    def test_spread_net_amount_over_lines_of_different_rates(self) -> None:
        cart = [line(0, "mug", 1, 11300, "merch"), line(1, "tea", 1, 10900, "tea")]
        # Net, both lines are 100.00; 20.00 net spreads 10.00 + 10.00, each grossed up at its rate.
        result = price([promo("net", cny(2000), amounts="tax_exclusive", allocation="across")], cart, taxes=GROSS)
        assert shares(result) == [("net", 0, 1130), ("net", 1, 1090)]

    def test_percentages_are_the_same_either_side(self) -> None:
        cart = [line(0, "mug", 1, 3000, "merch")]
        assert totals(price([promo("p", 10, amounts="tax_exclusive")], cart, taxes=GROSS)) == {"p": 300}

    def test_thresholds_and_caps_in_the_promotions_own_terms(self) -> None:
        cart = [line(0, "mug", 1, 11300, "merch")]  # 100.00 before tax
        spend = promo("spend", 10, amounts="tax_exclusive", min_subtotal=cny(10000))
        assert totals(price([spend], cart, taxes=GROSS)) == {"spend": 1130}
        more = promo("more", 10, amounts="tax_exclusive", min_subtotal=cny(10001))
        assert price([more], cart, taxes=GROSS) == []
        capped = promo("cap", 50, amounts="tax_exclusive", cap=cny(1000))
        assert totals(price([capped], cart, taxes=GROSS)) == {"cap": 1130}

    def test_shipping_at_its_own_rate(self) -> None:
        ship = promo("ship", cny(500), target="shipping", amounts="tax_exclusive")
        assert totals(price([ship], [line(0, "mug", 1, 3000)], shipping=1000, taxes=GROSS)) == {"ship": 530}

    def test_rates_are_checked(self) -> None:
        with pytest.raises(InvalidValue, match="'default_rate' must be a tax rate from 0% to 100%"):
            TaxConfig(default_rate="113%")
        with pytest.raises(InvalidValue, match=r"'category_rates\.tea' must be a tax rate"):
            TaxConfig(category_rates={"tea": "nine"})

    def test_amounts_need_taxes(self) -> None:
        with pytest.raises(InvalidValue, match=r"promotions\[0\].amounts: .* which needs 'taxes'"):
            Config(promotions=[promo("net", cny(100), amounts="tax_exclusive")])
        assert Config(promotions=[promo("net", cny(100), amounts="tax_exclusive")], taxes=NET).taxes == NET
