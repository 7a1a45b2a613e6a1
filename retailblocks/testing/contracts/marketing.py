"""The marketing contract: what every marketing block does, checked through the hooks.

* every adjustment is the block's own, in the cart's currency (checked with two), positive, and names
  its reason and its funder (and, when several share it, parts that sum exactly to the amount);
* item and order adjustments split their amount over the cart's lines exactly, and never take a line
  below zero — also when earlier blocks already took most of it (``existing``); shipping adjustments
  never take more than the shipping that is left;
* pricing changes nothing (the same answer twice, no events), and a coupon nobody issued is left out;
* with a coupon usable by one order (:attr:`MarketingContract.coupon`): redeeming is idempotent per
  order, the coupon stops applying once used, concurrent orders never use it twice, and releasing an
  order gives its use back exactly once (a replayed release does not give back another order's use);
* with a promotion that issues coupons (:attr:`MarketingContract.issued_promotion`): issuing is idempotent
  per key, and a member's coupon works for that member only.

A block author's test::

    class TestFlashSale(MarketingContract):
        block_class = FlashSale
        coupon = "FLASH-ONCE"

        def config_for(self, currency):
            return {"sales": [{"code": "FLASH-ONCE", "off": f"5.00 {currency}", "orders": 1}]}

The contract's carts hold the SKUs of :meth:`lines`; configure promotions that apply to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import pytest

from retailblocks.errors import PromotionRejected
from retailblocks.hookspecs import marketing
from retailblocks.model import (
    AdjustmentTarget,
    Member,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    PriceAdjustment,
    PricedLine,
)
from retailblocks.testing.contracts._capability import (
    RACERS,
    CapabilityContract,
    call,
    only_refusals,
    provides,
    race,
)
from retailblocks.testing.harness import BlockHarness

__all__ = ["MarketingContract"]

#: The block id earlier adjustments in the contract's carts come from.
OTHER_BLOCK = "kit-earlier-block"


@attrs.frozen
class _Cart:
    lines: tuple[PricedLine, ...]
    shipping: Money
    member: Member | None = None
    coupons: tuple[str, ...] = ()
    existing: tuple[PriceAdjustment, ...] = ()


def _normalized(code: str) -> str:
    return code.strip().upper()


class MarketingContract(CapabilityContract):
    """Inherit to check a marketing block; see the module's documentation for what is checked."""

    #: A coupon code the configuration makes apply to the contract's cart, usable by ONE order in all.
    #: None skips the coupon tests.
    coupon: ClassVar[str | None] = None
    #: A promotion whose coupons ``marketing_issue_coupons`` issues (one use each). None skips those tests.
    issued_promotion: ClassVar[str | None] = None

    # -- what the tests are made of -----------------------------------------------------------------

    def lines(self, currency: str) -> tuple[PricedLine, ...]:
        """The cart: an ordinary line, a dear one, and a cheap one a fixed discount could overshoot."""
        return (
            PricedLine(0, "KIT-A", 2, Money(5_000, currency), category="kit", weight_grams=300),
            PricedLine(1, "KIT-B", 1, Money(12_000, currency), category="kit", weight_grams=500),
            PricedLine(2, "KIT-C", 3, Money(100, currency), category="kit", weight_grams=50),
        )

    def shipping(self, currency: str) -> Money:
        return Money(2_000, currency)

    def member(self) -> Member:
        return Member("kit-member-1")

    def earlier(self, lines: Sequence[PricedLine], shipping: Money, percent: int) -> tuple[PriceAdjustment, ...]:
        """Adjustments of an earlier block taking ``percent`` of every line and of shipping."""
        currency = shipping.currency
        shares = tuple((line.index, Money(line.subtotal.amount * percent // 100, currency)) for line in lines)
        items = PriceAdjustment(
            block=OTHER_BLOCK,
            promotion_id="kit-earlier-items",
            target=AdjustmentTarget.ITEM,
            amount=Money(sum(share.amount for _, share in shares), currency),
            reason=f"{percent}% off everything (an earlier block)",
            funder="test-shop",
            line_amounts=shares,
        )
        postage = PriceAdjustment(
            block=OTHER_BLOCK,
            promotion_id="kit-earlier-shipping",
            target=AdjustmentTarget.SHIPPING,
            amount=Money(shipping.amount * percent // 100, currency),
            reason=f"{percent}% off shipping (an earlier block)",
            funder="test-shop",
        )
        return (items, postage)

    def carts(self, currency: str) -> list[_Cart]:
        """Plain, with the coupon and a member, and after earlier blocks took most or all of each line."""
        lines = self.lines(currency)
        shipping = self.shipping(currency)
        coupons = (self.coupon,) if self.coupon else ()
        return [
            _Cart(lines, shipping),
            _Cart(lines, shipping, self.member(), coupons),
            _Cart(lines, shipping, self.member(), coupons, self.earlier(lines, shipping, 90)),
            _Cart(lines, shipping, None, coupons, self.earlier(lines, shipping, 99)),
            _Cart(lines, shipping, self.member(), coupons, self.earlier(lines, shipping, 100)),
            _Cart(lines[2:], Money.zero(currency), None, coupons),
        ]

    def price(self, harness: BlockHarness, cart: _Cart) -> list[PriceAdjustment]:
        made = call(
            harness,
            marketing.marketing_adjustments,
            cart.lines,
            cart.shipping,
            cart.member,
            cart.coupons,
            cart.existing,
        )
        return list(made or ())

    def coupon_cart(self, currency: str) -> _Cart:
        assert self.coupon is not None
        return _Cart(self.lines(currency), self.shipping(currency), self.member(), (self.coupon,))

    def with_coupon(self, harness: BlockHarness, currency: str) -> list[PriceAdjustment]:
        """The block's adjustments of the coupon cart; fails unless the coupon applied."""
        made = self.price(harness, self.coupon_cart(currency))
        assert self.coupon_applies(made), f"coupon {self.coupon!r} did not apply to the contract's cart"
        return made

    def coupon_applies(self, made: Sequence[PriceAdjustment], code: str | None = None) -> bool:
        wanted = _normalized(code or self.coupon or "")
        return any(adjustment.coupon is not None and _normalized(adjustment.coupon) == wanted for adjustment in made)

    def order(self, harness: BlockHarness, order_id: str, made: Sequence[PriceAdjustment]) -> Order:
        """The coupon cart placed as an order with ``made``, as checkout hands it to ``marketing_place``."""
        currency = made[0].amount.currency if made else harness.merchant.currency
        cart = self.coupon_cart(currency)
        discounts = {line.index: 0 for line in cart.lines}
        for adjustment in made:
            for index, share in adjustment.line_amounts:
                discounts[index] = discounts.get(index, 0) + share.amount
        lines = tuple(
            OrderLine(line.index, line.sku, line.quantity, line.unit_price, Money(discounts[line.index], currency))
            for line in cart.lines
        )
        subtotal = sum(line.subtotal.amount for line in lines)
        discount = sum(adjustment.amount.amount for adjustment in made)
        return Order(
            id=order_id,
            channel="web",
            status=OrderStatus.PLACED,
            currency=currency,
            lines=lines,
            subtotal=Money(subtotal, currency),
            discount=Money(discount, currency),
            shipping=cart.shipping,
            total=Money(subtotal - discount + cart.shipping.amount, currency),
            created_at=harness.clock.now(),
            member_id=self.member().id,
            adjustments=tuple(made),
        )

    def redeem(self, harness: BlockHarness, order_id: str, made: Sequence[PriceAdjustment]) -> None:
        placed = self.order(harness, order_id, made)
        call(harness, marketing.marketing_place, placed, self.member(), made, flow_id=order_id)
        self.placed()[order_id] = placed

    def placed(self) -> dict[str, Order]:
        """The orders this test placed, by id (pytest makes one contract instance per test)."""
        return self.__dict__.setdefault("_kit_placed", {})  # type: ignore[no-any-return]

    def release(self, harness: BlockHarness, order_id: str) -> None:
        placed = self.placed().get(order_id) or self.order(harness, order_id, ())
        call(harness, marketing.marketing_release, order_id, placed, flow_id=order_id)

    def needs_coupon(self) -> None:
        if self.coupon is None:
            pytest.skip("no single-use coupon configured (set `coupon`)")

    def check(self, harness: BlockHarness, cart: _Cart, made: Sequence[PriceAdjustment]) -> None:
        """Every promise an adjustment makes, for one priced cart."""
        currency = cart.shipping.currency
        indexes = {line.index for line in cart.lines}
        taken = {line.index: 0 for line in cart.lines}
        shipping_taken = 0
        for adjustment in cart.existing:
            if adjustment.target is AdjustmentTarget.SHIPPING:
                shipping_taken += adjustment.amount.amount
            for index, share in adjustment.line_amounts:
                taken[index] += share.amount
        presented = {_normalized(code) for code in cart.coupons}
        for adjustment in made:
            what = f"adjustment {adjustment.promotion_id!r}"
            assert adjustment.block == harness.block_id, f"{what} names block {adjustment.block!r}"
            assert adjustment.amount.currency == currency, f"{what} is in {adjustment.amount.currency}, not {currency}"
            assert adjustment.amount.amount > 0, f"{what} takes off {adjustment.amount}: money off must be positive"
            assert isinstance(adjustment.reason, str) and adjustment.reason.strip(), f"{what} gives no reason"
            assert isinstance(adjustment.funder, str) and adjustment.funder.strip(), f"{what} names no funder"
            if adjustment.funders:
                parts = [part for _, part in adjustment.funders]
                assert all(p.currency == currency and p.amount >= 0 for p in parts), f"{what}: a funder's part is off"
                assert sum(p.amount for p in parts) == adjustment.amount.amount, f"{what}: funders' parts ≠ amount"
                assert len({who for who, _ in adjustment.funders}) == len(parts), f"{what} names a funder twice"
            if adjustment.coupon is not None:
                assert _normalized(adjustment.coupon) in presented, f"{what} claims a coupon nobody presented"
            if adjustment.target is AdjustmentTarget.SHIPPING:
                shipping_taken += adjustment.amount.amount
                continue
            assert adjustment.line_amounts, f"{what} on {adjustment.target} is not split over lines"
            total = 0
            for index, share in adjustment.line_amounts:
                assert index in indexes, f"{what} discounts line {index}, which the cart does not have"
                assert share.currency == currency, f"{what}: the share of line {index} is in {share.currency}"
                assert share.amount >= 0, f"{what}: the share of line {index} is negative ({share})"
                taken[index] += share.amount
                total += share.amount
            assert total == adjustment.amount.amount, f"{what}: its line shares add up to {total}, not its amount"
        for line in cart.lines:
            assert taken[line.index] <= line.subtotal.amount, (
                f"line {line.index} ({line.sku}, {line.subtotal}) is discounted by "
                f"{Money(taken[line.index], currency)}: below zero"
            )
        assert shipping_taken <= cart.shipping.amount, (
            f"shipping of {cart.shipping} is discounted by {Money(shipping_taken, currency)}"
        )

    # -- for the lifecycle contract -----------------------------------------------------------------

    def exercise(self, harness: BlockHarness) -> None:
        """Every state change of the contract once, and a call the block must refuse."""
        currency = harness.merchant.currency
        for cart in self.carts(currency):
            self.price(harness, cart)
        if self.coupon is not None:
            made = self.with_coupon(harness, currency)
            self.redeem(harness, "kit-exercise-order-1", made)
            with pytest.raises(PromotionRejected):
                self.redeem(harness, "kit-exercise-order-2", made)
            self.release(harness, "kit-exercise-order-1")
        if self.issued_promotion is not None and provides(harness, marketing.marketing_issue_coupons):
            call(harness, marketing.marketing_issue_coupons, self.issued_promotion, ["kit-m1"], "kit-exercise-issue")

    # -- pricing ------------------------------------------------------------------------------------

    def test_every_adjustment_is_explained_and_in_the_cart_currency(self, harness: BlockHarness, currency: str) -> None:
        made_any = False
        for cart in self.carts(currency)[:2]:
            made = self.price(harness, cart)
            made_any = made_any or bool(made)
            self.check(harness, cart, made)
        assert made_any, "the block priced no promotion into the contract's carts; configure one that applies"

    def test_discounts_never_exceed_the_lines_after_earlier_blocks(self, harness: BlockHarness, currency: str) -> None:
        for cart in self.carts(currency)[2:]:
            self.check(harness, cart, self.price(harness, cart))

    def test_pricing_changes_nothing(self, harness: BlockHarness, currency: str) -> None:
        cart = self.carts(currency)[1]
        before = len(harness.events())
        assert self.price(harness, cart) == self.price(harness, cart), "the same cart priced twice came out different"
        assert len(harness.events()) == before, "pricing a cart recorded events"

    def test_a_coupon_nobody_issued_is_left_out(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        lines = self.lines(harness.merchant.currency)
        cart = _Cart(lines, self.shipping(harness.merchant.currency), self.member(), ("KIT-NOBODY-ISSUED-THIS",))
        made = self.price(harness, cart)
        assert not self.coupon_applies(made, "KIT-NOBODY-ISSUED-THIS")
        self.check(harness, cart, made)

    # -- a coupon's one use -------------------------------------------------------------------------

    def test_redeeming_is_idempotent_per_order(self, harness: BlockHarness, currency: str) -> None:
        self.needs_coupon()
        made = self.with_coupon(harness, currency)
        self.redeem(harness, "kit-order-1", made)
        self.redeem(harness, "kit-order-1", made)  # a replayed step: counted once
        assert not self.coupon_applies(self.price(harness, self.coupon_cart(currency))), (
            "a coupon usable once still applies after an order used it"
        )
        with pytest.raises(PromotionRejected):
            self.redeem(harness, "kit-order-2", made)

    def test_releasing_an_order_gives_its_use_back_once(self, harness: BlockHarness, currency: str) -> None:
        self.needs_coupon()
        made = self.with_coupon(harness, currency)
        self.redeem(harness, "kit-order-1", made)
        self.release(harness, "kit-order-1")
        self.with_coupon(harness, currency)  # the use is back: the coupon applies again
        self.redeem(harness, "kit-order-2", made)
        # The first order's compensation replayed (a retried saga): order 2's use must stay taken.
        self.release(harness, "kit-order-1")
        assert not self.coupon_applies(self.price(harness, self.coupon_cart(currency))), (
            "a replayed release gave back a use another order holds"
        )
        with pytest.raises(PromotionRejected):
            self.redeem(harness, "kit-order-3", made)

    def test_releasing_an_order_that_redeemed_nothing_changes_nothing(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        self.needs_coupon()
        self.release(harness, "kit-never-placed")
        made = self.with_coupon(harness, harness.merchant.currency)
        self.redeem(harness, "kit-order-1", made)
        self.release(harness, "kit-never-placed")
        with pytest.raises(PromotionRejected):
            self.redeem(harness, "kit-order-2", made)

    def test_concurrent_orders_never_share_one_use(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        self.needs_coupon()
        made = self.with_coupon(harness, harness.merchant.currency)
        redeemed, errors = race(RACERS, lambda n: self.redeem(harness, f"kit-race-{n}", made))
        only_refusals(errors)
        assert len(redeemed) == 1, f"{len(redeemed)} orders redeemed a coupon usable once"
        assert all(isinstance(error, PromotionRejected) for error in errors)

    # -- issued coupons -----------------------------------------------------------------------------

    def test_issuing_coupons_is_idempotent_per_key(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        promotion = self.issued_promotion
        if promotion is None or not provides(harness, marketing.marketing_issue_coupons):
            pytest.skip("no promotion issues coupons (set `issued_promotion`)")
        first = call(harness, marketing.marketing_issue_coupons, promotion, ["kit-m1", "kit-m2"], "kit-issue-1")
        again = call(harness, marketing.marketing_issue_coupons, promotion, ["kit-m1", "kit-m2"], "kit-issue-1")
        assert first is not None and again is not None and dict(first) == dict(again), "a replay issued new codes"
        grown = call(
            harness, marketing.marketing_issue_coupons, promotion, ["kit-m1", "kit-m2", "kit-m3"], "kit-issue-1"
        )
        assert grown is not None and {m: grown[m] for m in ("kit-m1", "kit-m2")} == dict(first)
        assert len(set(grown.values())) == 3, "two members got the same single-member code"
        unknown = call(harness, marketing.marketing_issue_coupons, "kit-no-such-promotion", ["kit-m1"], "kit-issue-2")
        assert unknown is None, "a block answered for a promotion it does not know"

    def test_an_issued_coupon_works_for_its_member_only(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        promotion = self.issued_promotion
        if promotion is None or not provides(harness, marketing.marketing_issue_coupons):
            pytest.skip("no promotion issues coupons (set `issued_promotion`)")
        codes = call(harness, marketing.marketing_issue_coupons, promotion, ["kit-m1"], "kit-issue-3")
        assert codes is not None
        code = codes["kit-m1"]
        lines, shipping = self.lines(harness.merchant.currency), self.shipping(harness.merchant.currency)
        mine = _Cart(lines, shipping, Member("kit-m1"), (code,))
        made = self.price(harness, mine)
        assert self.coupon_applies(made, code), "a member's own coupon did not apply"
        self.check(harness, mine, made)
        theirs = _Cart(lines, shipping, Member("kit-m2"), (code,))
        assert not self.coupon_applies(self.price(harness, theirs), code), "another member's coupon applied"
