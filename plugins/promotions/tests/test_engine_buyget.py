"""Buy X get Y: sets made whatever the order of the cart lines, and units used only by promotions given.

Regressions from issue 10 (items 8 and 9).
"""

from __future__ import annotations

from itertools import permutations

from retailblocks_promotions import PromotionConfig
from retailblocks_promotions.engine import Usage
from retailblocks_promotions.testing import cny, line, price, promo, shares, totals


def buyget(id: str, value: object = 100, **fields: object) -> PromotionConfig:
    fields.setdefault("max_quantity", 10)
    return promo(id, value, type="buyget", **fields)


class TestLineOrder:
    def test_a_set_is_made_whichever_line_comes_first(self) -> None:
        # T can be bought or got; bought first it used to leave the get side nothing.
        p = buyget("p", buy_skus=["t", "a", "b"], get_skus=["t"], buy_quantity=2, get_quantity=1)
        for order in permutations(["t", "a", "b"]):
            cart = [line(i, sku, 1, 1000) for i, sku in enumerate(order)]
            assert totals(price([p], cart)) == {"p": 1000}, order

    def test_the_get_side_keeps_its_units_even_when_they_are_the_dearest(self) -> None:
        p = buyget("p", buy_skus=["t", "a"], get_skus=["t"], buy_quantity=2, get_quantity=1)
        for order in permutations([("t", 1, 5000), ("a", 2, 2000)]):
            cart = [line(i, sku, quantity, subtotal) for i, (sku, quantity, subtotal) in enumerate(order)]
            assert totals(price([p], cart)) == {"p": 5000}, order

    def test_the_buy_side_keeps_its_units_when_the_get_side_could_take_them(self) -> None:
        p = buyget("p", buy_skus=["t"], get_skus=["t", "x"], buy_quantity=1, get_quantity=1)
        for order in permutations([("t", 1, 5000), ("x", 1, 1000)]):
            cart = [line(i, sku, quantity, subtotal) for i, (sku, quantity, subtotal) in enumerate(order)]
            assert totals(price([p], cart)) == {"p": 1000}, order

    def test_as_many_sets_as_the_units_allow(self) -> None:
        # 3 T and 3 A: buy 2 of {T, A}, get 1 T makes two sets (A A + T, A T + T) in any order.
        p = buyget("p", buy_skus=["t", "a"], get_skus=["t"], buy_quantity=2, get_quantity=1)
        for order in permutations([("t", 3, 3000), ("a", 3, 3000)]):
            cart = [line(i, sku, quantity, subtotal) for i, (sku, quantity, subtotal) in enumerate(order)]
            assert totals(price([p], cart)) == {"p": 2000}, order

    def test_the_cheapest_units_of_a_shared_pool_are_the_discounted_ones(self) -> None:
        same = {"buy_skus": ["p"], "get_skus": ["p"]}
        p = buyget("p", buy_quantity=2, get_quantity=1, **same)
        prices = [4000, 3000, 2000, 1000, 1000, 1000]
        for order in (prices, prices[::-1]):
            cart = [line(i, "p", 1, amount) for i, amount in enumerate(order)]
            assert totals(price([p], cart)) == {"p": 2000}

    def test_equal_lines_are_shared_out_the_same_in_any_order(self) -> None:
        # Ties between equally dear lines go by SKU, then the rest of the line, never by position.
        p = buyget("p", buy_skus=["x", "y"], get_skus=["x", "y"], buy_quantity=1, get_quantity=1, max_quantity=1)
        for order in permutations(["x", "y"]):
            cart = [line(i, sku, 1, 1000) for i, sku in enumerate(order)]
            result = price([p], cart)
            by_sku = {cart[index].sku: amount for _, index, amount in shares(result)}
            assert by_sku == {"y": 1000}, order


class TestLeftOutUsesNothing:
    def same(self) -> dict[str, object]:
        return {"buy_skus": ["p1"], "get_skus": ["p1"], "buy_quantity": 1, "get_quantity": 1, "max_quantity": 1}

    def test_a_buy_get_its_budget_cannot_cover_leaves_the_units_to_the_next(self) -> None:
        first = buyget("first", budget=cny(5000), priority=1, **self.same())
        second = buyget("second", **self.same())
        cart = [line(0, "p1", 2, 2000)]
        spent = price([first, second], cart, usage={"first": Usage(budget_spent=5000)})
        almost = price([first, second], cart, usage={"first": Usage(budget_spent=4999)})
        assert totals(spent) == totals(almost) == {"second": 1000}

    def test_a_buy_get_that_rounds_to_nothing_leaves_the_units_to_the_next(self) -> None:
        first = buyget("first", 0.01, priority=1, **self.same())
        second = buyget("second", **self.same())
        assert totals(price([first, second], [line(0, "p1", 2, 2000)])) == {"second": 1000}

    def test_a_buy_get_on_lines_already_free_leaves_the_units_to_the_next(self) -> None:
        free = promo("free", 100, skus=["p1"], priority=2)
        first = buyget("first", priority=1, **self.same())
        second = buyget("second", **{**self.same(), "get_skus": ["q"]})
        cart = [line(0, "p1", 2, 2000), line(1, "q", 1, 3000)]
        assert totals(price([free, first, second], cart)) == {"free": 2000, "second": 3000}
