"""The marketing contract: promotions and coupons priced into a cart, and their usage recorded.

Every marketing block contributes adjustments. Across blocks, the stack's stacking policy decides
(the manifest's ``routing.marketing`` and the blocks' ``exclusive``; docs/marketing-stacking.md): the
blocks are asked in the policy's order, each with the adjustments kept before it, and exclusive blocks and
``best_of`` groups compete so that only the larger discount applies. Inside a block, the block's own
stacking policy decides; every adjustment carries its reason and who funds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from retailblocks.hookspecs._markers import Dispatch, contract

if TYPE_CHECKING:
    from retailblocks.context import FlowContext
    from retailblocks.model import Member, Money, Order, PriceAdjustment, PricedLine


@contract(Dispatch.EVERY_BLOCK, required=True)
def marketing_adjustments(
    ctx: FlowContext,
    lines: Sequence[PricedLine],
    shipping: Money,
    member: Member | None,
    coupons: Sequence[str],
    existing: Sequence[PriceAdjustment],
) -> Sequence[PriceAdjustment]:
    """Price promotions into the cart.

    ``lines`` carry list prices; ``existing`` are adjustments already made (by earlier blocks), which an
    order-wide discount must be computed after. Item and order adjustments allocate their amount over lines
    in ``line_amounts`` summing exactly to ``amount`` and never making a line negative; shipping
    adjustments never exceed ``shipping``. Item and order adjustments must not depend on ``shipping``:
    the core prices a cart with the shipping quoted for its undiscounted value, and prices it again only
    when its discounts change the quote. ``member`` is the shopper (None for a guest) and ``coupons`` the
    codes they presented: a coupon code the block knows but that does not apply is left out; the core
    rejects codes no block used. A code refused because the member has used its promotion as often as one
    member may raises :class:`~retailblocks.errors.MemberLimitReached` instead, so the shopper is told why.

    .. versionchanged:: 1.3
       ``existing`` holds the adjustments the stacking policy kept before this block, in its order.

    .. versionchanged:: 1.5
       Each line's ``fulfilment`` says how it reaches the shopper: its cart line's own, else the cart's.

    .. versionchanged:: 1.6
       For a cart whose lines leave in several ways the core also asks once per delivery group, with that
       group's ``lines`` and ``shipping`` alone, and keeps only the shipping adjustments of those answers.
    """


@contract(Dispatch.EVERY_BLOCK, required=True, supersedes="marketing_redeem")
def marketing_place(
    ctx: FlowContext,
    order: Order,
    member: Member | None,
    adjustments: Sequence[PriceAdjustment],
) -> None:
    """The order is placed with ``adjustments``, this block's own of ``order.adjustments``: count coupon
    uses, spend campaign budgets, take flash-sale units, with conditional updates so that concurrent orders
    never exceed a limit. Called only for a block whose adjustments the order kept.

    ``order`` is the order as placed: its id, channel, lines (SKU, quantity, unit price and each line's
    discount, indexed as the adjustments' ``line_amounts`` are), totals and every block's adjustments.
    ``member`` is the order's member as membership knows them now (None for a guest, or when no
    membership block answers). Raise :class:`~retailblocks.errors.PromotionRejected` if a limit is
    reached (:class:`~retailblocks.errors.MemberLimitReached` if it is the member's own limit).
    Idempotent per order.

    .. versionadded:: 1.3
       Supersedes :func:`marketing_redeem`, which got only the order's id and the member's id.
    """


@contract(
    Dispatch.EVERY_BLOCK,
    deprecated="implement marketing_place(ctx, order, member, adjustments) instead (core API 1.3), which "
    "gets the order's lines and the member",
)
def marketing_redeem(
    ctx: FlowContext,
    order_id: str,
    member_id: str | None,
    adjustments: Sequence[PriceAdjustment],
) -> None:
    """The order is placed with these ``adjustments`` (the block's own): count coupon uses and spend campaign
    budgets, with conditional updates so that concurrent orders never exceed a limit. Raise
    :class:`~retailblocks.errors.PromotionRejected` if a limit is reached. Idempotent per order.

    .. deprecated:: 1.3
       Implement :func:`marketing_place`. A block that implements only this hook still works: the core
       calls it where it would call ``marketing_place``, and registering the block warns.
    """


@contract(Dispatch.EVERY_BLOCK, required=True)
def marketing_release(ctx: FlowContext, order_id: str, order: Order) -> None:
    """Compensation for :func:`marketing_place`: give back the coupon uses and budget of the order
    ``order_id``, and what else placing took. Idempotent. Called for every marketing block, also one that
    placed nothing. ``order`` is the order being undone or cancelled, with its lines and adjustments.

    .. versionchanged:: 1.3
       ``order``: the order being undone or cancelled, with its lines and adjustments.
    """


@contract(Dispatch.EVERY_BLOCK)
def marketing_issue_coupons(
    ctx: FlowContext, promotion_id: str, member_ids: Sequence[str], idempotency_key: str
) -> Mapping[str, str] | None:
    """Issue single-member coupon codes for ``promotion_id`` to ``member_ids``: ``{member_id: code}``.

    A block that does not know ``promotion_id`` returns None, so the core can ask every marketing block
    and take the answer of the one that owns the promotion. Idempotent per key and member: issuing again
    with the same key returns the same codes, and members new to the list get new ones. Optional.
    """


@attrs.frozen
class MemberCoupon:
    """A coupon issued to one member, as the member's wallet shows it: the code to present, what it gives
    (``description``, a sentence a shopper can read) and how many more orders may use it."""

    code: str
    promotion_id: str
    description: str
    uses_left: int
    issued_at: datetime


@contract(Dispatch.EVERY_BLOCK)
def marketing_member_coupons(ctx: FlowContext, member_id: str) -> Sequence[MemberCoupon]:
    """The single-member coupons this block issued to ``member_id`` that may still be used, oldest first
    (an empty sequence when none). Read-only. Optional: the core lists every block's, in manifest order.

    .. versionadded:: 1.2
    """
