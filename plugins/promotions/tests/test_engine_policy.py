"""The stacking policy and conditions: evaluation order, exclusivity, groups, caps, thresholds, rounding."""

from __future__ import annotations

from datetime import timedelta

import pytest
from retailblocks_promotions import PromotionConfig
from retailblocks_promotions.engine import Line, Shopper, Usage
from retailblocks_promotions.testing import NOW, cny, line, price, promo, shares, totals

from retailblocks.errors import CurrencyMismatch, InvalidValue
from retailblocks.model import Money


def cart() -> list[Line]:
    return [line(0, "latte", 2, 6000, "coffee"), line(1, "mug", 1, 8000, "merch")]


class TestOrderWideAfterItems:
    def test_order_percentage_is_on_the_total_after_item_discounts(self) -> None:
        # Listed first and with a higher priority, the order promotion still runs after the items one:
        # 50% + 50% must never make the order free.
        result = price(
            [promo("order", 50, target="order", priority=9), promo("items", 50, allocation="across")],
            cart(),
        )
        assert [a.promotion_id for a in result] == ["items", "order"]
        assert totals(result) == {"items": 7000, "order": 3500}

    def test_shipping_comes_last(self) -> None:
        result = price(
            [promo("ship", 10, target="shipping", priority=5), promo("coffee", 10, categories=["coffee"])],
            cart(),
            shipping=1000,
        )
        assert [a.promotion_id for a in result] == ["coffee", "ship"]

    def test_stacks_on_existing_discounts(self) -> None:
        discounted = [
            Line(0, "latte", 2, cny(3000), "coffee", discount=cny(5000)),
            Line(1, "mug", 1, cny(8000), "merch"),
        ]
        result = price([promo("p", cny(5000), target="order")], discounted)
        # What is left: 1000 and 8000 → the 5000 spreads 1000:8000.
        assert shares(result) == [("p", 0, 556), ("p", 1, 4444)]


class TestExclusiveAndGroups:
    def test_an_exclusive_promotion_that_applies_is_alone(self) -> None:
        result = price(
            [promo("ten", 10), promo("vip", 30, exclusive=True), promo("ship", 100, target="shipping")],
            cart(),
            shipping=1000,
        )
        assert totals(result) == {"vip": 4200}

    def test_an_exclusive_promotion_that_does_not_apply_leaves_the_others(self) -> None:
        result = price([promo("ten", 10), promo("wool", 30, exclusive=True, categories=["wool"])], cart())
        assert totals(result) == {"ten": 1400}

    def test_one_per_stacking_group_highest_priority(self) -> None:
        result = price(
            [
                promo("big", 50, stacking_group="welcome"),
                promo("small", 10, stacking_group="welcome", priority=1),
                promo("other", cny(100), target="order"),
            ],
            cart(),
        )
        assert set(totals(result)) == {"small", "other"}

    def test_one_per_stacking_group_best_on_equal_priority(self) -> None:
        result = price([promo("small", 10, stacking_group="g"), promo("big", 50, stacking_group="g")], cart())
        assert totals(result) == {"big": 7000}


class TestLimits:
    def test_cap_limits_the_promotion_per_order_in_cart_order(self) -> None:
        result = price([promo("p", 50, cap=cny(3500))], cart())
        assert shares(result) == [("p", 0, 3000), ("p", 1, 500)]
        assert "up to 35.00 CNY" in result[0].reason

    def test_usage_limit_reached(self) -> None:
        p = promo("p", 10, usage_limit=3)
        assert price([p], cart(), usage={"p": Usage(uses=2)}) != []
        assert price([p], cart(), usage={"p": Usage(uses=3)}) == []

    def test_per_member_limit_needs_a_member(self) -> None:
        p = promo("p", 10, per_member_limit=1)
        assert price([p], cart()) == []
        member = Shopper(member_id="m1")
        assert price([p], cart(), shopper=member) != []
        assert price([p], cart(), shopper=member, usage={"p": Usage(member_uses=1)}) == []

    def test_budget_covers_the_whole_discount_or_gives_none(self) -> None:
        p = promo("p", 50, budget=cny(10000))
        assert totals(price([p], cart(), usage={"p": Usage(budget_spent=3000)})) == {"p": 7000}
        assert price([p], cart(), usage={"p": Usage(budget_spent=3001)}) == []


class TestConditions:
    def test_spend_threshold(self) -> None:
        spend = promo("spend", cny(2000), target="order", min_subtotal=cny(20000))
        assert price([spend], cart()) == []
        assert totals(price([spend], [*cart(), line(2, "beans", 1, 6000, "coffee")])) == {"spend": 2000}

    def test_threshold_counts_only_matching_lines(self) -> None:
        coffee = promo("c", 10, categories=["coffee"], min_subtotal=cny(8000))
        assert price([coffee], cart()) == []

    def test_tiers_segments_channels(self) -> None:
        gold = promo("gold", 10, tiers=["gold"])
        students = promo("students", 10, segments=["student"])
        stores = promo("stores", 10, channels=["store"])
        shopper = Shopper(member_id="m", tier="gold", segments={"student"}, channel_id="web", channel_type="online")
        assert set(totals(price([gold, students, stores], cart(), shopper=shopper))) == {
            "gold",
            "students",
        }
        in_store = Shopper(channel_id="store-1", channel_type="store")
        assert set(totals(price([gold, students, stores], cart(), shopper=in_store))) == {"stores"}

    def test_time_window(self) -> None:
        p = promo(
            "p", 10, starts_at=(NOW + timedelta(hours=1)).isoformat(), ends_at=(NOW + timedelta(days=1)).isoformat()
        )
        assert price([p], cart()) == []
        assert price([p], cart(), now=NOW + timedelta(hours=1)) != []
        assert price([p], cart(), now=NOW + timedelta(days=1)) == []

    def test_coupon_codes_are_case_insensitive_and_reported_as_presented(self) -> None:
        p = promo("p", 10, code="Coffee10", automatic=None)
        assert price([p], cart()) == []
        result = price([p], cart(), coupons=[" coffee10 "])
        assert result[0].coupon == " coffee10 "

    def test_funder_and_campaign(self) -> None:
        partner = promo("p", 10, funder="bank-x", campaign="spring")
        own = promo("o", cny(100), target="order")
        result = price([partner, own], cart())
        assert [(a.funder, a.campaign) for a in result] == [("bank-x", "spring"), ("shop", None)]


class TestRoundingAndReasons:
    def test_half_a_minor_unit_rounds_up(self) -> None:
        assert totals(price([promo("p", 10)], [line(0, "a", 1, 105)])) == {"p": 11}

    def test_a_split_sums_exactly_by_largest_remainder(self) -> None:
        three = [line(i, "a", 1, 1000) for i in range(3)]
        result = price([promo("p", cny(100), allocation="across")], three)
        assert shares(result) == [("p", 0, 34), ("p", 1, 33), ("p", 2, 33)]

    def test_reason_explains(self) -> None:
        result = price([promo("p", 10, categories=["coffee"], max_quantity=2)], cart())
        assert result[0].reason == "10% off coffee, per item, max 2 units"
        named = price([promo("p", 12.5, description="Spring sale", allocation="across")], cart())
        assert named[0].reason == "Spring sale: 12.5% off items, spread across items"


class TestConfigErrors:
    def test_bad_values_say_what_was_expected(self) -> None:
        with pytest.raises(InvalidValue, match="percentage must be > 0 and <= 100"):
            PromotionConfig(id="p", value_type="percentage", value=120)
        with pytest.raises(InvalidValue, match="fixed value must be money"):
            PromotionConfig(id="p", value_type="fixed", value=10)
        with pytest.raises(InvalidValue, match="buy_quantity"):
            PromotionConfig(id="p", value_type="percentage", value=100, type="buyget")
        with pytest.raises(InvalidValue, match="ISO 8601"):
            PromotionConfig(id="p", value_type="percentage", value=10, starts_at="tomorrow")
        with pytest.raises(InvalidValue, match="two decimals"):
            PromotionConfig(id="p", value_type="percentage", value=12.345)

    def test_money_in_another_currency(self) -> None:
        p = PromotionConfig(id="p", value_type="fixed", value=Money(100, "USD"), automatic=True)
        with pytest.raises(CurrencyMismatch, match="USD"):
            price([p], cart())

    def test_basis_points(self) -> None:
        assert PromotionConfig(id="p", value_type="percentage", value=12.5).basis_points == 1250
