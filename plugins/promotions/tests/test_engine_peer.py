"""The peer's cases (Medusa's promotion module), reproduced to the minor unit.

Medusa's fixtures speak in major units with fractional results (12.5); here every amount is those
numbers times 100 in CNY minor units, so the expected shares are exact. Medusa orders promotions by
value, highest first; here the same order is written with ``priority``.
"""

from __future__ import annotations

from retailblocks_promotions.testing import cny, line, price, promo, shares, totals

COTTON = {"categories": ["cotton"]}


def cotton_cart() -> list:
    return [line(0, "tshirt", 1, 10000, "cotton"), line(1, "sweater", 5, 75000, "cotton")]


class TestItemsEach:
    def test_fixed_is_per_unit_up_to_max_quantity_and_capped_by_the_line(self) -> None:
        result = price([promo("p", cny(20000), max_quantity=1, **COTTON)], cotton_cart())
        assert shares(result) == [("p", 0, 10000), ("p", 1, 15000)]
        assert result[0].amount == cny(25000)

    def test_second_fixed_promotion_gets_what_the_first_left(self) -> None:
        cart = [line(0, "tshirt", 1, 5000, "cotton"), line(1, "sweater", 1, 15000, "cotton")]
        result = price(
            [
                promo("p1", cny(3000), max_quantity=2, **COTTON),
                promo("p2", cny(5000), max_quantity=1, priority=1, **COTTON),
            ],
            cart,
        )
        assert shares(result) == [("p2", 0, 5000), ("p2", 1, 5000), ("p1", 1, 3000)]

    def test_nothing_is_left_for_a_later_promotion_when_the_lines_are_free(self) -> None:
        cart = [line(0, "tshirt", 1, 5000, "cotton"), line(1, "sweater", 1, 15000, "cotton")]
        result = price(
            [
                promo("p1", cny(50000), max_quantity=2, priority=1, **COTTON),
                promo("p2", cny(5000), max_quantity=1, **COTTON),
            ],
            cart,
        )
        assert shares(result) == [("p1", 0, 5000), ("p1", 1, 15000)]

    def test_percentage_is_on_max_quantity_units(self) -> None:
        result = price([promo("p", 10, max_quantity=1, **COTTON)], cotton_cart())
        assert shares(result) == [("p", 0, 1000), ("p", 1, 1500)]

    def test_second_percentage_is_on_what_is_left_within_its_max_quantity(self) -> None:
        cart = [line(0, "tshirt", 3, 15000, "cotton"), line(1, "sweater", 1, 15000, "cotton")]
        result = price(
            [
                promo("p1", 30, max_quantity=2, priority=1, **COTTON),
                promo("p2", 10, max_quantity=1, **COTTON),
            ],
            cart,
        )
        assert shares(result) == [("p1", 0, 3000), ("p1", 1, 4500), ("p2", 0, 500), ("p2", 1, 1050)]

    def test_two_full_percentages_on_one_unit_each(self) -> None:
        cart = [line(0, "tshirt", 4, 20000)]
        result = price(
            [
                promo("p1", 100, max_quantity=1, skus=["tshirt"]),
                promo("p2", 100, max_quantity=1, skus=["tshirt"]),
            ],
            cart,
        )
        assert shares(result) == [("p1", 0, 5000), ("p2", 0, 5000)]

    def test_percentage_after_a_full_discount_gives_nothing(self) -> None:
        cart = [line(0, "tshirt", 1, 5000, "cotton"), line(1, "sweater", 1, 15000, "cotton")]
        result = price(
            [
                promo("p1", 100, max_quantity=10, priority=1, **COTTON),
                promo("p2", 50, max_quantity=10, **COTTON),
            ],
            cart,
        )
        assert totals(result) == {"p1": 20000}

    def test_without_a_matching_condition_there_is_nothing(self) -> None:
        result = price([promo("p", 10, max_quantity=1, categories=["wool"])], cotton_cart())
        assert result == []


class TestItemsAcross:
    def test_fixed_is_spread_in_proportion_to_the_lines(self) -> None:
        cart = [line(0, "tshirt", 2, 20000, "cotton"), line(1, "sweater", 2, 60000, "cotton")]
        result = price([promo("p", cny(40000), allocation="across", **COTTON)], cart)
        assert shares(result) == [("p", 0, 10000), ("p", 1, 30000)]

    def test_second_fixed_is_spread_over_what_the_first_left(self) -> None:
        cart = [line(0, "tshirt", 1, 5000, "cotton"), line(1, "sweater", 1, 15000, "cotton")]
        result = price(
            [
                promo("p1", cny(3000), allocation="across", **COTTON),
                promo("p2", cny(5000), allocation="across", priority=1, **COTTON),
            ],
            cart,
        )
        assert shares(result) == [("p2", 0, 1250), ("p2", 1, 3750), ("p1", 0, 750), ("p1", 1, 2250)]

    def test_fixed_larger_than_the_lines_takes_the_lines(self) -> None:
        cart = [line(0, "tshirt", 1, 5000, "cotton"), line(1, "sweater", 1, 15000, "cotton")]
        result = price(
            [
                promo("p1", cny(100000), allocation="across", priority=1, **COTTON),
                promo("p2", cny(5000), allocation="across", **COTTON),
            ],
            cart,
        )
        assert shares(result) == [("p1", 0, 5000), ("p1", 1, 15000)]

    def test_percentage(self) -> None:
        cart = [line(0, "tshirt", 2, 20000, "cotton"), line(1, "sweater", 2, 60000, "cotton")]
        result = price([promo("p", 10, allocation="across", **COTTON)], cart)
        assert shares(result) == [("p", 0, 2000), ("p", 1, 6000)]

    def test_second_percentage_is_on_what_is_left(self) -> None:
        cart = [line(0, "tshirt", 1, 5000, "cotton"), line(1, "sweater", 1, 15000, "cotton")]
        result = price(
            [
                promo("p1", 10, allocation="across", **COTTON),
                promo("p2", 10, allocation="across", **COTTON),
            ],
            cart,
        )
        assert shares(result) == [("p1", 0, 500), ("p1", 1, 1500), ("p2", 0, 450), ("p2", 1, 1350)]

    def test_half_then_half_then_a_full_one_first(self) -> None:
        cart = [line(0, "cotton-tee", 4, 30000), line(1, "wool-tee", 4, 10000)]
        tees = {"allocation": "across", "skus": ["cotton-tee", "wool-tee"]}
        halves = [promo("p1", 50, **tees), promo("p2", 50, **tees)]
        assert shares(price(halves, cart)) == [
            ("p1", 0, 15000),
            ("p1", 1, 5000),
            ("p2", 0, 7500),
            ("p2", 1, 2500),
        ]
        with_full = [*halves, promo("p3", 100, priority=1, **tees)]
        assert shares(price(with_full, cart)) == [("p3", 0, 30000), ("p3", 1, 10000)]


class TestShipping:
    def test_fixed_takes_at_most_the_shipping(self) -> None:
        cart = [line(0, "tshirt", 1, 10000)]
        one = promo("p", cny(20000), target="shipping")
        assert totals(price([one], cart, shipping=25000)) == {"p": 20000}
        assert totals(price([one], cart, shipping=15000)) == {"p": 15000}

    def test_second_fixed_gets_what_is_left(self) -> None:
        cart = [line(0, "tshirt", 1, 10000)]
        both = [promo("p1", cny(20000), target="shipping"), promo("p2", cny(20000), target="shipping")]
        result = price(both, cart, shipping=25000)
        assert totals(result) == {"p1": 20000, "p2": 5000}
        assert all(adjustment.line_amounts == () for adjustment in result)

    def test_percentages_compound(self) -> None:
        cart = [line(0, "tshirt", 1, 10000)]
        both = [promo("p1", 10, target="shipping"), promo("p2", 10, target="shipping")]
        assert totals(price(both, cart, shipping=25000)) == {"p1": 2500, "p2": 2250}
        assert totals(price(both, cart, shipping=15000)) == {"p1": 1500, "p2": 1350}

    def test_full_shipping_leaves_nothing(self) -> None:
        cart = [line(0, "tshirt", 1, 10000)]
        both = [promo("p1", 100, target="shipping"), promo("p2", 10, target="shipping")]
        assert totals(price(both, cart, shipping=25000)) == {"p1": 25000}

    def test_no_shipping_no_adjustment(self) -> None:
        assert price([promo("p", 10, target="shipping")], [line(0, "tshirt", 1, 10000)]) == []


class TestOrder:
    def test_fixed_is_spread_over_every_line(self) -> None:
        cart = [line(0, "tshirt", 1, 10000), line(1, "sweater", 2, 30000)]
        result = price([promo("p", cny(20000), target="order")], cart)
        assert shares(result) == [("p", 0, 5000), ("p", 1, 15000)]
        assert result[0].target == "order"

    def test_two_fixed_order_promotions(self) -> None:
        cart = [line(0, "tshirt", 1, 5000), line(1, "sweater", 1, 15000)]
        result = price(
            [promo("p1", cny(3000), target="order"), promo("p2", cny(5000), target="order", priority=1)],
            cart,
        )
        assert shares(result) == [("p2", 0, 1250), ("p2", 1, 3750), ("p1", 0, 750), ("p1", 1, 2250)]

    def test_fixed_larger_than_the_order(self) -> None:
        cart = [line(0, "tshirt", 1, 5000), line(1, "sweater", 1, 15000)]
        result = price(
            [promo("p1", cny(50000), target="order", priority=1), promo("p2", cny(5000), target="order")],
            cart,
        )
        assert shares(result) == [("p1", 0, 5000), ("p1", 1, 15000)]


class TestBudget:
    def test_spend_within_the_budget_applies(self) -> None:
        cart = [line(0, "tshirt", 5, 500000, "cotton")]
        result = price([promo("p", cny(10000), max_quantity=5, budget=cny(100000), **COTTON)], cart)
        assert totals(result) == {"p": 50000}

    def test_spend_beyond_the_budget_does_not_apply(self) -> None:
        cart = [line(0, "tshirt", 5, 1000000, "cotton")]
        assert price([promo("p", 100, max_quantity=5, budget=cny(100000), **COTTON)], cart) == []

    def test_across_beyond_the_budget_does_not_apply(self) -> None:
        cart = [line(0, "tshirt", 5, 500000, "cotton")]
        assert price([promo("p", cny(150000), allocation="across", budget=cny(100000))], cart) == []

    def test_shipping_beyond_the_budget_does_not_apply(self) -> None:
        cart = [line(0, "tshirt", 1, 10000)]
        p = promo("p", cny(120000), target="shipping", budget=cny(100000))
        assert price([p], cart, shipping=120000) == []


class TestBuyGet:
    def cart(self) -> list:
        return [
            line(0, "tshirt-1", 2, 100000, "tshirt"),
            line(1, "tshirt-2", 2, 200000, "tshirt"),
            line(2, "sweater-1", 2, 200000, "sweater"),
        ]

    def buyget(self, id: str = "p", value: object = 100, **fields: object) -> object:
        fields.setdefault("buy_categories", ["sweater"])
        fields.setdefault("get_categories", ["tshirt"])
        return promo(id, value, type="buyget", **fields)

    def test_each_bought_unit_earns_the_dearest_target(self) -> None:
        p = self.buyget(max_quantity=100, buy_quantity=1, get_quantity=1)
        assert shares(price([p], self.cart())) == [("p", 1, 200000)]

    def test_not_enough_bought(self) -> None:
        p = self.buyget(value=cny(100000), max_quantity=1, buy_quantity=4, get_quantity=1)
        assert price([p], self.cart()) == []

    def test_fixed_value_per_unit_capped_by_the_price(self) -> None:
        cart = [line(0, "tshirt-1", 1, 50000, "tshirt"), line(1, "sweater-1", 2, 100000, "sweater")]
        fixed = self.buyget(value=cny(20000), max_quantity=1, buy_quantity=1, get_quantity=1)
        assert shares(price([fixed], cart)) == [("p", 0, 20000)]
        big = self.buyget(value=cny(100000), max_quantity=1, buy_quantity=1, get_quantity=1)
        assert shares(price([big], cart)) == [("p", 0, 50000)]

    def test_fixed_value_times_the_units(self) -> None:
        cart = [line(0, "tshirt-1", 3, 300000, "tshirt"), line(1, "sweater-1", 2, 100000, "sweater")]
        p = self.buyget(value=cny(20000), max_quantity=2, buy_quantity=1, get_quantity=2)
        assert shares(price([p], cart)) == [("p", 0, 40000)]

    def test_targets_span_lines(self) -> None:
        p = self.buyget(max_quantity=100, buy_quantity=1, get_quantity=4)
        assert shares(price([p], self.cart())) == [("p", 0, 100000), ("p", 1, 200000)]

    def test_no_target_no_discount(self) -> None:
        p = self.buyget(value=cny(100000), max_quantity=4, buy_quantity=1, get_quantity=4, get_categories=["none"])
        assert price([p], self.cart()) == []

    def test_buy_x_get_x_on_one_line(self) -> None:
        cart = [line(0, "p1", 4, 100000), line(1, "p2", 2, 200000)]
        p = self.buyget(
            max_quantity=2,
            buy_quantity=2,
            get_quantity=2,
            buy_skus=["p1"],
            get_skus=["p1"],
            buy_categories=[],
            get_categories=[],
        )
        assert shares(price([p], cart)) == [("p", 0, 50000)]

    def test_two_plus_one_repeats_per_full_set(self) -> None:
        same = {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_categories": [], "get_categories": []}
        p = self.buyget(max_quantity=10, buy_quantity=2, get_quantity=1, **same)
        for quantity, free in ((2, 0), (3, 1), (5, 1), (6, 2)):
            result = price([p], [line(0, "p1", quantity, 50000 * quantity)])
            assert sum(totals(result).values()) == 50000 * free, quantity

    def test_later_buy_get_only_uses_units_the_earlier_left(self) -> None:
        same = {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_categories": [], "get_categories": []}
        first = self.buyget("first", max_quantity=2, buy_quantity=2, get_quantity=1, **same)
        second = self.buyget("second", max_quantity=1, buy_quantity=2, get_quantity=1, **same)
        expected = {
            3: {"first": 50000},
            6: {"first": 100000},
            7: {"first": 100000},
            9: {"first": 100000, "second": 50000},
            1000: {"first": 100000, "second": 50000},
        }
        for quantity, want in expected.items():
            result = price([first, second], [line(0, "p1", quantity, 50000 * quantity)])
            assert totals(result) == want, quantity

    def test_bulk_sets_on_one_line(self) -> None:
        same = {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_categories": [], "get_categories": []}
        bulk = self.buyget("b50g1000", max_quantity=1000, buy_quantity=50, get_quantity=1000, **same)
        small = self.buyget("b10g20", 20, max_quantity=20, buy_quantity=10, get_quantity=20, **same)
        result = price([bulk, small], [line(0, "p1", 1080, 270000)])
        assert totals(result) == {"b50g1000": 250000, "b10g20": 1000}

    def test_bulk_sets_over_two_lines(self) -> None:
        same = {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_categories": [], "get_categories": []}
        bulk = self.buyget("b50g1000", max_quantity=1000, buy_quantity=50, get_quantity=1000, **same)
        small = self.buyget("b10g20", 20, max_quantity=20, buy_quantity=10, get_quantity=20, **same)
        cart = [line(0, "p1", 540, 135000), line(1, "p1", 540, 135000)]
        assert shares(price([bulk, small], cart)) == [
            ("b50g1000", 0, 122500),
            ("b50g1000", 1, 127500),
            ("b10g20", 1, 1000),
        ]

    def test_overlapping_bogos_do_not_reuse_units(self) -> None:
        same = {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_categories": [], "get_categories": []}
        bogos = [self.buyget(id, max_quantity=1, buy_quantity=1, get_quantity=1, **same) for id in ("bogo1", "bogo2")]
        assert totals(price(bogos, [line(0, "p1", 3, 1500000)])) == {"bogo1": 500000}
        assert totals(price(bogos, [line(0, "p1", 4, 2000000)])) == {"bogo1": 500000, "bogo2": 500000}

    def test_repeats_until_the_buy_units_run_out(self) -> None:
        buy_get = {"buy_skus": ["buy"], "get_skus": ["get"], "buy_categories": [], "get_categories": []}
        cart = [line(0, "get", 11, 275000), line(1, "buy", 11, 275000)]
        unlimited = [
            self.buyget("b2g1", max_quantity=100, buy_quantity=2, get_quantity=1, **buy_get),
            self.buyget("b1g1", max_quantity=100, buy_quantity=1, get_quantity=1, **buy_get),
        ]
        assert totals(price(unlimited, cart)) == {"b2g1": 125000, "b1g1": 25000}
        limited = [
            self.buyget("b2g1", max_quantity=2, buy_quantity=2, get_quantity=1, **buy_get),
            self.buyget("b1g1", max_quantity=1, buy_quantity=1, get_quantity=1, **buy_get),
        ]
        assert totals(price(limited, cart)) == {"b2g1": 50000, "b1g1": 25000}

    def test_repeats_on_a_single_line_until_units_or_max_quantity_run_out(self) -> None:
        same = {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_categories": [], "get_categories": []}
        cart = [line(0, "p1", 10, 250000)]
        many = self.buyget(max_quantity=100, buy_quantity=2, get_quantity=1, **same)
        assert totals(price([many], cart)) == {"p": 75000}
        two = self.buyget(max_quantity=2, buy_quantity=2, get_quantity=1, **same)
        assert totals(price([two], cart)) == {"p": 50000}

    def test_the_dearest_units_are_bought_and_the_cheaper_ones_discounted(self) -> None:
        same = {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_categories": [], "get_categories": []}
        p = self.buyget(max_quantity=2, buy_quantity=2, get_quantity=2, **same)
        cart = [line(0, "p1", 1, 50000), line(1, "p1", 1, 50000), line(2, "p1", 1, 100000), line(3, "p1", 1, 100000)]
        assert shares(price([p], cart)) == [("p", 0, 50000), ("p", 1, 50000)]

    def test_target_quantity_not_met(self) -> None:
        same = {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_categories": [], "get_categories": []}
        p = self.buyget(max_quantity=2, buy_quantity=2, get_quantity=2, **same)
        assert price([p], [line(0, "p1", 3, 99000)]) == []
        three = [line(i, "p1", 1, 100000) for i in range(3)]
        assert price([p], three) == []
