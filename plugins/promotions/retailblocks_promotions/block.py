"""The promotions block: the marketing hooks over the pure engine, plus coupon issuing and reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from retailblocks import Block, Capability, hookimpl
from retailblocks.errors import InvalidValue, MemberLimitReached
from retailblocks.hookspecs.lifecycle import unknown
from retailblocks.hookspecs.marketing import MemberCoupon
from retailblocks.model import (
    AdjustmentTarget,
    ChannelType,
    Member,
    Merchant,
    Money,
    Order,
    PriceAdjustment,
    PricedLine,
)
from retailblocks_promotions import engine
from retailblocks_promotions import usage as store
from retailblocks_promotions.config import Config as PromotionsConfig
from retailblocks_promotions.config import PromotionConfig
from retailblocks_promotions.tables import MIGRATIONS

if TYPE_CHECKING:
    from retailblocks.context import FlowContext
    from retailblocks.storage import Migration


class Promotions(Block):
    """Discounts, coupons, budgets and an explicit stacking policy (see SEMANTICS.md)."""

    name: ClassVar[str] = "promotions"
    # Its permissions, shown by `blocks plugins` and checked on every statement in tests: its own tables,
    # and no table of the core.
    owns_tables: ClassVar[tuple[str, ...]] = (
        "promotions_coupons",
        "promotions_member_usage",
        "promotions_redemptions",
        "promotions_usage",
    )
    reads_core_tables: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.MARKETING})
    core_api: ClassVar[str] = "1.5"  # PricedLine.fulfilment
    Config: ClassVar[type[Any]] = PromotionsConfig
    description: ClassVar[str] = "Promotions and coupons priced into carts, with usage limits and budgets."

    config: PromotionsConfig

    @property
    def promotions(self) -> dict[str, PromotionConfig]:
        return {promotion.id: promotion for promotion in self.config.promotions}

    # --- storage ---------------------------------------------------------------------------------

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def stack_names(self) -> Mapping[str, Sequence[str]]:
        return {"promotion": [promotion.id for promotion in self.config.promotions]}

    @hookimpl
    def stack_check(self, merchant: Merchant, names: Mapping[str, frozenset[str]]) -> Sequence[str]:
        """Names a promotion is limited to that nothing in the manifest declares: such a promotion would
        silently never apply (a misspelt SKU) or never be paid for (an unknown funder)."""
        channels = names["channel"] | {kind.value for kind in ChannelType}
        funders = names["partner"] | {merchant.id}
        kinds = (
            ("skus", "sku", names["sku"]),
            ("buy_skus", "sku", names["sku"]),
            ("get_skus", "sku", names["sku"]),
            ("categories", "category", names["category"]),
            ("buy_categories", "category", names["category"]),
            ("get_categories", "category", names["category"]),
            ("channels", "channel", channels),
            ("tiers", "tier", names["tier"]),
            ("segments", "segment", names["segment"]),
        )
        problems = []
        for index, promotion in enumerate(self.config.promotions):
            where = f"promotions[{index}]"
            for field, kind, known in kinds:
                for item, value in enumerate(getattr(promotion, field)):
                    if value not in known:
                        problems.append(unknown(f"{where}.{field}[{item}]", kind, value, known))
            if promotion.funder is not None and promotion.funder not in funders:
                problems.append(unknown(f"{where}.funder", "partner", promotion.funder, funders))
            for item, share in enumerate(promotion.funders):
                if share.partner is not None and share.partner not in funders:
                    problems.append(unknown(f"{where}.funders[{item}].partner", "partner", share.partner, funders))
        return problems

    # --- marketing hooks -------------------------------------------------------------------------

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
        """Price this block's promotions into the cart, after ``existing`` (other blocks'
        adjustments).
        """
        promotions = self.config.promotions
        if not promotions or not lines:
            return []
        member_id = member.id if member is not None else None
        usage: dict[str, engine.Usage] = {}
        issued: dict[str, str] = {}
        limited = [
            p.id
            for p in promotions
            if p.usage_limit is not None or p.budget is not None or p.per_member_limit is not None
        ]
        # Only open the database when something needs it: most carts carry no coupon.
        if limited:
            usage = store.read_usage(ctx.db, limited, member_id)
        presented = {engine.normalize_code(code) for code in coupons if code.strip()}
        configured = {engine.normalize_code(p.code) for p in promotions if p.code is not None}
        if presented - configured:
            issued = store.valid_issued_codes(ctx.db, presented - configured, member_id)
        if member_id is not None:
            for code, promotion in engine.member_limits_reached(coupons, promotions, issued, usage):
                raise MemberLimitReached(
                    f"coupon {code!r}: member {member_id!r} has already used promotion {promotion.id!r} "
                    f"{promotion.per_member_limit} time(s), the most one member may"
                )
        adjustments = engine.compute(
            _engine_lines(lines, existing, self.id),
            shipping,
            engine.Shopper(
                member_id=member_id,
                tier=member.tier if member is not None else None,
                segments=member.segments if member is not None else (),
                channel_id=ctx.channel.id if ctx.channel is not None else None,
                channel_type=str(ctx.channel.type) if ctx.channel is not None else None,
            ),
            coupons,
            promotions,
            now=ctx.clock.now(),
            merchant_id=ctx.merchant.id,
            usage=usage,
            issued_codes=issued,
            shipping_discount=_shipping_taken(existing, shipping, self.id),
            taxes=self.config.taxes,
        )
        return [
            PriceAdjustment(
                block=self.id,
                promotion_id=adjustment.promotion_id,
                target=adjustment.target,
                amount=adjustment.amount,
                reason=adjustment.reason,
                funder=adjustment.funder,
                line_amounts=adjustment.line_amounts,
                coupon=adjustment.coupon,
                campaign=adjustment.campaign,
                funders=adjustment.funders,
            )
            for adjustment in adjustments
        ]

    @hookimpl
    def marketing_place(
        self,
        ctx: FlowContext,
        order: Order,
        member: Member | None,
        adjustments: Sequence[PriceAdjustment],
    ) -> None:
        """Count uses and spend budgets for the order; raises PromotionRejected when a limit is
        reached (MemberLimitReached when it is the member's own).
        """
        self.redeem(ctx, order.id, member.id if member is not None else order.member_id, adjustments)

    def redeem(
        self, ctx: FlowContext, order_id: str, member_id: str | None, adjustments: Sequence[PriceAdjustment]
    ) -> None:
        """Count the uses and spend the budgets of ``adjustments`` (this block's) for ``order_id``."""
        claims: dict[str, store.Claim] = {}
        for adjustment in adjustments:
            if adjustment.block != self.id:
                continue
            earlier = claims.get(adjustment.promotion_id)
            claims[adjustment.promotion_id] = store.Claim(
                promotion_id=adjustment.promotion_id,
                amount=adjustment.amount + earlier.amount if earlier else adjustment.amount,
                funder=adjustment.funder,
                campaign=adjustment.campaign,
                coupon=adjustment.coupon or (earlier.coupon if earlier else None),
            )
        if not claims:
            return
        known = self.promotions
        now = ctx.clock.now()
        for promotion_id in sorted(claims):  # one lock order for every order
            claim = claims[promotion_id]
            counted, exhausted = store.redeem(
                ctx.db,
                order_id=order_id,
                member_id=member_id,
                claim=claim,
                promotion=known.get(promotion_id),
                now=now,
            )
            if not counted:
                continue
            ctx.record(
                "promotion.redeemed",
                {
                    "promotion_id": promotion_id,
                    "amount": claim.amount.amount,
                    "currency": claim.amount.currency,
                    "coupon": claim.coupon,
                    "funder": claim.funder,
                    "campaign": claim.campaign,
                },
                order_id=order_id,
                member_id=member_id,
            )
            if exhausted:
                ctx.record(
                    "promotion.budget_exhausted",
                    {"promotion_id": promotion_id, "campaign": claim.campaign},
                    order_id=order_id,
                )

    @hookimpl
    def marketing_release(self, ctx: FlowContext, order_id: str) -> None:
        """Give back the order's uses and budget; a second call changes nothing."""
        for redemption in store.release(ctx.db, order_id, ctx.clock.now()):
            ctx.record(
                "promotion.released",
                {
                    "promotion_id": redemption.promotion_id,
                    "amount": redemption.amount.amount,
                    "currency": redemption.amount.currency,
                    "coupon": redemption.coupon,
                    "funder": redemption.funder,
                    "campaign": redemption.campaign,
                },
                order_id=order_id,
                member_id=redemption.member_id,
            )

    @hookimpl
    def marketing_issue_coupons(
        self, ctx: FlowContext, promotion_id: str, member_ids: Sequence[str], idempotency_key: str
    ) -> dict[str, str] | None:
        """Coupons for a campaign; None when the promotion is another block's."""
        if promotion_id not in self.promotions:
            return None
        return self.issue_coupons(ctx, promotion_id, member_ids, idempotency_key)

    @hookimpl
    def marketing_member_coupons(self, ctx: FlowContext, member_id: str) -> list[MemberCoupon]:
        """The member's coupons with uses left, of promotions this block still offers."""
        promotions = self.promotions
        return [
            MemberCoupon(
                code=held.code,
                promotion_id=held.promotion_id,
                description=engine.explain(promotions[held.promotion_id]),
                uses_left=held.uses_left,
                issued_at=held.issued_at,
            )
            for held in store.member_coupons(ctx.db, member_id)
            if held.promotion_id in promotions
        ]

    # --- public methods --------------------------------------------------------------------------

    def issue_coupons(
        self,
        ctx: FlowContext,
        promotion_id: str,
        member_ids: Sequence[str],
        key: str,
        *,
        max_uses: int = 1,
    ) -> dict[str, str]:
        """Issue single-member coupon codes for a promotion: ``{member_id: code}``.

        ``key`` makes the call idempotent: issuing again with the same key returns the same codes.
        Each code can be used ``max_uses`` times, only by its member.
        """
        if promotion_id not in self.promotions:
            raise InvalidValue(f"unknown promotion {promotion_id!r}; configured: {sorted(self.promotions) or 'none'}")
        if not key or not key.strip():
            raise InvalidValue(f"an idempotency key is required to issue coupons (got {key!r})")
        if isinstance(max_uses, bool) or not isinstance(max_uses, int) or max_uses < 1:
            raise InvalidValue(f"max_uses must be a whole number >= 1 (got {max_uses!r})")
        configured = {engine.normalize_code(p.code) for p in self.config.promotions if p.code}
        now = ctx.clock.now()
        issued: dict[str, str] = {}
        for member_id in dict.fromkeys(member_ids):
            if not isinstance(member_id, str) or not member_id:
                raise InvalidValue(f"member ids must be non-empty strings (got {member_id!r})")
            code = _new_code(ctx, configured)
            code, fresh = store.issue(
                ctx.db,
                promotion_id=promotion_id,
                member_id=member_id,
                key=key,
                code=code,
                max_uses=max_uses,
                now=now,
            )
            issued[member_id] = code
            if fresh:
                ctx.record(
                    "coupon.issued",
                    {"promotion_id": promotion_id, "code": code, "max_uses": max_uses},
                    member_id=member_id,
                )
        return issued

    def redemptions(
        self,
        ctx: FlowContext,
        *,
        order_id: str | None = None,
        promotion_id: str | None = None,
        campaign: str | None = None,
        funder: str | None = None,
        include_released: bool = False,
    ) -> list[store.Redemption]:
        """Redemptions for reports: campaign attribution and what each funder paid."""
        return store.list_redemptions(
            ctx.db,
            order_id=order_id,
            promotion_id=promotion_id,
            campaign=campaign,
            funder=funder,
            include_released=include_released,
        )


def _new_code(ctx: FlowContext, configured: set[str]) -> str:
    # Ids come from the context's factory (seeded in tests); 16 hex characters are plenty to guess.
    while True:
        code = ctx.ids.new_id("cpn").rsplit("_", 1)[-1][-16:].upper()
        if code not in configured:
            return code


def _engine_lines(
    lines: Sequence[PricedLine], existing: Sequence[PriceAdjustment], own_block: str
) -> list[engine.Line]:
    """The cart for the engine: what earlier blocks took off each line, never counted twice.

    The contract gives both ``line.discount`` and ``existing``; a core may fill either, or both with
    the
    same money, so a line's discount is the larger of the two rather than their sum.
    """
    taken: dict[int, int] = {}
    for adjustment in existing:
        if adjustment.block == own_block or adjustment.target == AdjustmentTarget.SHIPPING:
            continue  # our own earlier answer is recomputed, not stacked on
        for index, share in adjustment.line_amounts:
            taken[index] = taken.get(index, 0) + share.amount
    result = []
    for line in lines:
        already = max(line.discount.amount if line.discount is not None else 0, taken.get(line.index, 0))
        # A core older than 1.5 sends no fulfilment: such lines match no fulfilment, option or region rule.
        fulfilment = getattr(line, "fulfilment", None)
        address = fulfilment.address if fulfilment is not None else None
        result.append(
            engine.Line(
                index=line.index,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                category=line.category,
                discount=Money(already, line.unit_price.currency),
                fulfilment=fulfilment.kind.value if fulfilment is not None else None,
                option_id=fulfilment.option_id if fulfilment is not None else None,
                region=address.region or None if address is not None else None,
            )
        )
    return result


def _shipping_taken(existing: Sequence[PriceAdjustment], shipping: Money, own_block: str) -> Money:
    amount = sum(
        adjustment.amount.amount
        for adjustment in existing
        if adjustment.target == AdjustmentTarget.SHIPPING and adjustment.block != own_block
    )
    return Money(amount, shipping.currency)
