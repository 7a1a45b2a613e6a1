"""Broken marketing blocks the marketing contract must fail: each a subclass of the promotions block with
one realistic bug (the class docstring names it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import sqlalchemy as sa
from retailblocks_promotions import Promotions
from retailblocks_promotions.contract_config import contract_config
from retailblocks_promotions.tables import redemptions, usage

from retailblocks import FlowContext, hookimpl
from retailblocks.model import Member, Money, PriceAdjustment, PricedLine
from retailblocks.testing.contracts.marketing import MarketingContract


class _PromotionsContract(MarketingContract):
    block_class = Promotions
    coupon: ClassVar[str | None] = "KIT-ONCE"
    issued_promotion: ClassVar[str | None] = "kit-issued"

    def config_for(self, currency: str) -> Mapping[str, Any]:
        return contract_config(currency)


# -- the broken blocks ----------------------------------------------------------------------------------


class StackBlindPromotions(Promotions):
    @hookimpl
    def marketing_adjustments(
        self,
        ctx: FlowContext,
        lines: Sequence[PricedLine],
        shipping: Money,
        member: Member | None,
        coupons: Sequence[str],
        existing: Sequence[PriceAdjustment],
    ) -> Sequence[PriceAdjustment]:
        # The bug: what earlier blocks took off the lines is ignored, so discounts are on full prices.
        return super().marketing_adjustments(ctx, lines, shipping, member, coupons, ())


class YuanPromotions(Promotions):
    @hookimpl
    def marketing_adjustments(
        self,
        ctx: FlowContext,
        lines: Sequence[PricedLine],
        shipping: Money,
        member: Member | None,
        coupons: Sequence[str],
        existing: Sequence[PriceAdjustment],
    ) -> Sequence[PriceAdjustment]:
        made = super().marketing_adjustments(ctx, lines, shipping, member, coupons, existing)
        # The bug: results are built in the currency the block was first written for.
        return [
            attrs.evolve(
                adjustment,
                amount=Money(adjustment.amount.amount, "CNY"),
                line_amounts=tuple((index, Money(share.amount, "CNY")) for index, share in adjustment.line_amounts),
            )
            for adjustment in made
        ]


class UnfundedPromotions(Promotions):
    @hookimpl
    def marketing_adjustments(
        self,
        ctx: FlowContext,
        lines: Sequence[PricedLine],
        shipping: Money,
        member: Member | None,
        coupons: Sequence[str],
        existing: Sequence[PriceAdjustment],
    ) -> Sequence[PriceAdjustment]:
        made = super().marketing_adjustments(ctx, lines, shipping, member, coupons, existing)
        # The bug: merchant-funded discounts leave the funder empty, so settlement cannot tell who pays.
        return [attrs.evolve(adjustment, funder="") for adjustment in made]


class RecountingPromotions(Promotions):
    @hookimpl
    def marketing_redeem(
        self, ctx: FlowContext, order_id: str, member_id: str | None, adjustments: Sequence[PriceAdjustment]
    ) -> None:
        # The bug: each redemption is recorded under a fresh id, so a replayed step counts the use again.
        attempt = f"{order_id}~{ctx.ids.new_id('attempt')}"
        super().marketing_redeem(ctx, attempt, member_id, adjustments)


class GenerousReleasePromotions(Promotions):
    @hookimpl
    def marketing_release(self, ctx: FlowContext, order_id: str) -> None:
        # The bug: every redemption of the order gives its use back, also those released before.
        rows = ctx.db.execute(sa.select(redemptions).where(redemptions.c.order_id == order_id)).mappings().all()
        for row in rows:
            ctx.db.execute(
                redemptions.update()
                .where(redemptions.c.order_id == order_id, redemptions.c.promotion_id == row["promotion_id"])
                .values(released=True, released_at=ctx.clock.now())
            )
            ctx.db.execute(
                usage.update()
                .where(usage.c.promotion_id == row["promotion_id"], usage.c.uses >= 1)
                .values(uses=usage.c.uses - 1, budget_spent=usage.c.budget_spent - row["amount"])
            )


# -- the mutants --------------------------------------------------------------------------------------


class MutantDiscountAboveTheLine(_PromotionsContract):
    """Discounts ignore what earlier blocks took off a line, and take lines below zero."""

    block_class = StackBlindPromotions


class MutantAdjustmentInWrongCurrency(_PromotionsContract):
    """Adjustments are in CNY whatever the cart's currency."""

    block_class = YuanPromotions


class MutantAdjustmentWithoutFunder(_PromotionsContract):
    """Adjustments name no funder."""

    block_class = UnfundedPromotions


class MutantCouponRedeemedTwiceOnOneOrder(_PromotionsContract):
    """Redeeming is not idempotent per order: a replayed step uses the coupon again."""

    block_class = RecountingPromotions


class MutantCouponReleasedTwice(_PromotionsContract):
    """A replayed release gives the coupon's use back again, taking it from another order."""

    block_class = GenerousReleasePromotions
