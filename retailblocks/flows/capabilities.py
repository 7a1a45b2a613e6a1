"""The few calls whose answer the flows combine from several blocks, or complete with a default: one
place each, so every flow (and the simulation) asks the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager

import attrs

from retailblocks.assembly.hooks import Hooks
from retailblocks.context import AuditFinding, FlowContext
from retailblocks.errors import InvalidValue
from retailblocks.hookspecs import inventory as inventory_hooks
from retailblocks.hookspecs import lifecycle, logistics, marketing, reach
from retailblocks.hookspecs.marketing import MemberCoupon
from retailblocks.hookspecs.reach import ReachDelivery, ReachMessage
from retailblocks.model import Fulfilment, Member, Money, Order, PriceAdjustment, PricedLine, ShippingQuote


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


@attrs.frozen
class StackedAdjustments:
    """The adjustments the stacking policy kept, and for each coupon code (casefolded) used only by
    adjustments it set aside, why: a coupon refused because it does not combine says so."""

    kept: tuple[PriceAdjustment, ...]
    set_aside: Mapping[str, str] = attrs.field(factory=dict)


def price_adjustments(
    hooks: Hooks,
    ctx: FlowContext,
    lines: Sequence[PricedLine],
    shipping: Money,
    member: Member | None,
    coupons: Sequence[str],
) -> StackedAdjustments:
    """Every marketing block's adjustments, combined as the stack's stacking policy says (see
    retailblocks.assembly.stacking): blocks in the policy's order, each seeing the adjustments kept before
    it; of a best_of group only the largest discount; an exclusive block alone against all the rest."""
    implementers = hooks.implementers(marketing.marketing_adjustments)
    policy = hooks.routes.marketing.covering(implementers)
    answering = set(implementers)

    def ask(block_id: str, existing: Sequence[PriceAdjustment]) -> list[PriceAdjustment]:
        made = hooks.at(
            block_id,
            marketing.marketing_adjustments,
            ctx,
            lines=lines,
            shipping=shipping,
            member=member,
            coupons=coupons,
            existing=tuple(existing),
        )
        return list(made or ())

    set_aside: dict[str, str] = {}
    kept: list[PriceAdjustment] = []
    for stage in policy.stages():
        members = [block_id for block_id in stage if block_id in answering]
        answers = [(block_id, ask(block_id, kept)) for block_id in members]
        if not answers:
            continue
        # max() keeps the first of equals: a tie goes to the block that comes first in the order.
        best_block, best = max(answers, key=lambda answer: _discount_of(answer[1]))
        for block_id, answer in answers:
            if block_id != best_block:
                _set_aside(set_aside, answer, f"only the best of {', '.join(members)} applies: {best_block}'s")
        kept.extend(best)
    rank = {block_id: index for index, block_id in enumerate(policy.order)}
    first_kept = min((rank.get(a.block, len(rank)) for a in kept), default=len(rank))
    outcomes: list[tuple[int, str, list[PriceAdjustment]]] = [(first_kept, "", kept)]
    for block_id in policy.order:
        if block_id in policy.exclusive and block_id in answering:
            alone = ask(block_id, ())
            if alone:
                outcomes.append((rank[block_id], block_id, alone))
    # The larger discount wins; of equal discounts, what comes first in the order.
    _position, winner, chosen = max(outcomes, key=lambda outcome: (_discount_of(outcome[2]), -outcome[0]))
    for _, block_id, answer in outcomes:
        if answer is chosen:
            continue
        if winner:
            _set_aside(set_aside, answer, f"block {winner!r} is exclusive and gives more")
        else:
            _set_aside(set_aside, answer, f"block {block_id!r} is exclusive and the other promotions give more")
    return StackedAdjustments(tuple(chosen), set_aside)


def _discount_of(adjustments: Sequence[PriceAdjustment]) -> int:
    return sum(adjustment.amount.amount for adjustment in adjustments)


def _set_aside(set_aside: dict[str, str], adjustments: Sequence[PriceAdjustment], why: str) -> None:
    for adjustment in adjustments:
        if adjustment.coupon:
            set_aside.setdefault(adjustment.coupon.casefold(), why)


def place_adjustments(hooks: Hooks, ctx: FlowContext, order: Order, member: Member | None) -> None:
    """Each marketing block places its own adjustments of ``order`` (coupon uses, budgets), in the stacking
    policy's order: with marketing_place, or the deprecated marketing_redeem for a block that implements
    only that."""
    placing = set(hooks.implementers(marketing.marketing_place))
    redeeming = set(hooks.implementers(marketing.marketing_redeem))
    for block_id in hooks.routes.marketing.covering(sorted(placing | redeeming)).order:
        own = tuple(adjustment for adjustment in order.adjustments if adjustment.block == block_id)
        if not own:
            continue
        if block_id in placing:
            hooks.at(block_id, marketing.marketing_place, ctx, order=order, member=member, adjustments=own)
        elif block_id in redeeming:
            hooks.at(
                block_id, marketing.marketing_redeem, ctx, order_id=order.id, member_id=order.member_id, adjustments=own
            )


def release_adjustments(hooks: Hooks, ctx: FlowContext, order: Order) -> None:
    hooks.each(marketing.marketing_release, ctx, order_id=order.id, order=order)


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


def send_message(hooks: Hooks, ctx: FlowContext, message: ReachMessage, idempotency_key: str) -> ReachDelivery:
    """The delivery of the first reach block, in manifest order, that serves the message's medium."""
    for block_id in hooks.implementers(reach.reach_send):
        delivery = hooks.at(block_id, reach.reach_send, ctx, message=message, idempotency_key=idempotency_key)
        if delivery is not None:
            return delivery
    raise InvalidValue(f"no reach block of this stack sends {message.medium} messages")


def opt_out(hooks: Hooks, ctx: FlowContext, member_id: str, medium: str, source: str) -> list[str]:
    """Record the member's opt-out with every reach block that serves ``medium``; the blocks that did."""
    found = hooks.each(reach.reach_opt_out, ctx, member_id=member_id, medium=medium, source=source)
    recorded = [block_id for block_id, answer in found if answer is not None]
    if not recorded:
        raise InvalidValue(f"no reach block of this stack sends {medium} messages")
    return recorded


def block_findings(hooks: Hooks, ctx: FlowContext) -> list[tuple[str, AuditFinding]]:
    """Every block's audit of its own invariants, with the block's id."""
    return [
        (block_id, finding) for block_id, found in hooks.each(lifecycle.stack_audit, ctx) for finding in found or ()
    ]


def maintain(hooks: Hooks, context: Callable[[], AbstractContextManager[FlowContext]]) -> None:
    """The housekeeping every block has due (expired reservations, points, unknown payment outcomes), each
    block's in a transaction of its own from ``context``.

    One transaction for all of them held one block's locks while the next block took its own: the stock's
    expired reservations, then a card's payments. A checkout takes the same rows the other way round (its
    card records the payment, then its order commits the reservation), and the two deadlocked. Apart, no
    block's housekeeping waits while holding another's rows, and one that fails leaves the others' done.
    """
    for block_id in hooks.implementers(lifecycle.stack_maintain):
        with context() as ctx:
            hooks.at(block_id, lifecycle.stack_maintain, ctx)
