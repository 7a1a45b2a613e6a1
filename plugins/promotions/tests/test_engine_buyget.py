"""Buy X get Y: sets made whatever the order of the cart lines, and units used only by promotions given.

Regressions from issue 10 (items 8 and 9).
"""

from __future__ import annotations

from promotions_helpers import cny, line, price, promo, totals
from retailblocks_promotions import PromotionConfig
from retailblocks_promotions.engine import Usage


def buyget(id: str, value: object = 100, **fields: object) -> PromotionConfig:
    fields.setdefault("max_quantity", 10)
    return promo(id, value, type="buyget", **fields)


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
