"""The marketing contract: promotions and coupons priced into a cart, and their usage recorded.

Every marketing block contributes adjustments. The core calls them in manifest order and gives each the
adjustments the earlier ones made, so stacking across blocks is explicit. Inside a block, the block's own
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
    from retailblocks.model import Member, Money, PriceAdjustment, PricedLine


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
    rejects codes no block used.
    """


@contract(Dispatch.EVERY_BLOCK, required=True)
def marketing_redeem(
    ctx: FlowContext,
    order_id: str,
    member_id: str | None,
    adjustments: Sequence[PriceAdjustment],
) -> None:
    """The order is placed with these ``adjustments`` (the block's own): count coupon uses and spend campaign
    budgets, with conditional updates so that concurrent orders never exceed a limit. Raise
    :class:`~retailblocks.errors.PromotionRejected` if a limit is reached. Idempotent per order."""


@contract(Dispatch.EVERY_BLOCK, required=True)
def marketing_release(ctx: FlowContext, order_id: str) -> None:
    """Compensation for :func:`marketing_redeem`: give back the order's coupon uses and budget. Idempotent."""


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
