"""The few calls whose answer the flows combine from several blocks, or complete with a default: one
place each, so every flow (and the simulation) asks the same way."""

from __future__ import annotations

from collections.abc import Sequence

from retailblocks.assembly.hooks import Hooks
from retailblocks.context import AuditFinding, FlowContext
from retailblocks.errors import InvalidValue
from retailblocks.hookspecs import inventory as inventory_hooks
from retailblocks.hookspecs import lifecycle, logistics, marketing
from retailblocks.hookspecs.marketing import MemberCoupon
from retailblocks.model import Fulfilment, Member, Money, PriceAdjustment, PricedLine, ShippingQuote


def stock_locations(hooks: Hooks, ctx: FlowContext) -> list[str]:
    """Where ``ctx.channel`` may sell from: the inventory block's answer, else the channel's own location."""
    found = hooks.maybe(inventory_hooks.inventory_locations, ctx)
    if found is not None:
        return list(found)
    return [ctx.channel.location] if ctx.channel and ctx.channel.location else []


def ranked_locations(hooks: Hooks, ctx: FlowContext, fulfilment: Fulfilment, candidates: Sequence[str]) -> list[str]:
    """``candidates`` in the order logistics would ship from them (as given when no block ranks)."""
    ranked = hooks.maybe(logistics.logistics_rank_locations, ctx, fulfilment=fulfilment, candidates=candidates)
    return list(candidates if ranked is None else ranked)


def shipping_quotes(
    hooks: Hooks, ctx: FlowContext, lines: Sequence[PricedLine], fulfilment: Fulfilment, order_value: Money
) -> list[ShippingQuote]:
    """Every logistics block's offers for this cart."""
    found = hooks.each(logistics.logistics_quote, ctx, lines=lines, fulfilment=fulfilment, order_value=order_value)
    return [quote for _block, quotes in found for quote in quotes or ()]


def price_adjustments(
    hooks: Hooks,
    ctx: FlowContext,
    lines: Sequence[PricedLine],
    shipping: Money,
    member: Member | None,
    coupons: Sequence[str],
) -> list[PriceAdjustment]:
    """Every marketing block's adjustments, each block seeing those the blocks before it made (so it can
    refuse to stack with them)."""
    adjustments: list[PriceAdjustment] = []
    for block_id in hooks.implementers(marketing.marketing_adjustments):
        made = hooks.at(
            block_id,
            marketing.marketing_adjustments,
            ctx,
            lines=lines,
            shipping=shipping,
            member=member,
            coupons=coupons,
            existing=tuple(adjustments),
        )
        adjustments.extend(made or ())
    return adjustments


def redeem_adjustments(
    hooks: Hooks, ctx: FlowContext, order_id: str, member_id: str | None, adjustments: Sequence[PriceAdjustment]
) -> None:
    """Each marketing block redeems its own adjustments of the order (coupon uses, budgets)."""
    for block_id in hooks.implementers(marketing.marketing_redeem):
        own = [adjustment for adjustment in adjustments if adjustment.block == block_id]
        if own:
            hooks.at(block_id, marketing.marketing_redeem, ctx, order_id=order_id, member_id=member_id, adjustments=own)


def release_adjustments(hooks: Hooks, ctx: FlowContext, order_id: str) -> None:
    hooks.each(marketing.marketing_release, ctx, order_id=order_id)


def issue_coupons(
    hooks: Hooks, ctx: FlowContext, promotion_id: str, member_ids: Sequence[str], idempotency_key: str
) -> dict[str, str]:
    """The codes of the block that owns ``promotion_id``; InvalidValue when no block knows it."""
    for block_id in hooks.implementers(marketing.marketing_issue_coupons):
        issued = hooks.at(
            block_id,
            marketing.marketing_issue_coupons,
            ctx,
            promotion_id=promotion_id,
            member_ids=member_ids,
            idempotency_key=idempotency_key,
        )
        if issued is not None:
            return dict(issued)
    raise InvalidValue(
        f"no marketing block of this stack issues coupons for promotion {promotion_id!r}; check the "
        "promotion id against the marketing block's configuration"
    )


def member_coupons(hooks: Hooks, ctx: FlowContext, member_id: str) -> list[MemberCoupon]:
    """The coupons every marketing block issued to ``member_id`` that may still be used, blocks in manifest
    order."""
    found = hooks.each(marketing.marketing_member_coupons, ctx, member_id)
    return [coupon for _block, coupons in found for coupon in coupons or ()]


def block_findings(hooks: Hooks, ctx: FlowContext) -> list[tuple[str, AuditFinding]]:
    """Every block's audit of its own invariants, with the block's id."""
    return [
        (block_id, finding) for block_id, found in hooks.each(lifecycle.stack_audit, ctx) for finding in found or ()
    ]


def maintain(hooks: Hooks, ctx: FlowContext) -> None:
    """The housekeeping every block has due (expired reservations, points, unknown payment outcomes)."""
    hooks.each(lifecycle.stack_maintain, ctx)
