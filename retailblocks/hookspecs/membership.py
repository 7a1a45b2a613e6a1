"""The membership contract: who the shopper is across channels, and the points they earn.

One block answers these hooks. Points postings are idempotent per key, so a replayed request (an
offline store re-syncing, a retried checkout) changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from retailblocks.hookspecs._markers import Dispatch, contract
from retailblocks.model import Money

if TYPE_CHECKING:
    from retailblocks.context import FlowContext
    from retailblocks.model import Identity, Member, Order, PointsMovement


@contract(Dispatch.ONE_PROVIDER, required=True)
def membership_identify(ctx: FlowContext, identities: Sequence[Identity], enroll: bool) -> Member | None:
    """Resolve ``identities`` (those a channel knows the shopper by) into one member.

    Identities that belong to no member are linked to the member the others resolve to; identities that
    resolve to two members merge them (auditably, reversibly). With ``enroll`` a new member is created
    when none resolves; without it, None is returned.
    """


@contract(Dispatch.ONE_PROVIDER, required=True)
def membership_member(ctx: FlowContext, member_id: str) -> Member | None:
    """The member as the block knows them now (tier, points balance, identities), or None."""


@contract(Dispatch.ONE_PROVIDER, required=True)
def membership_earn(ctx: FlowContext, member_id: str, order: Order, idempotency_key: str) -> PointsMovement | None:
    """Credit the points ``order`` earns under the block's rules (by channel, tier, SKU). None if it earns
    none. Idempotent per key."""


@contract(Dispatch.ONE_PROVIDER, required=True)
def membership_reverse(
    ctx: FlowContext,
    member_id: str,
    order_id: str,
    refunded: Money,
    order_total: Money,
    idempotency_key: str,
) -> PointsMovement | None:
    """Take back the share ``refunded`` / ``order_total`` of the points ``order_id`` earned (all of them on a
    cancellation). Never takes back more than was earned for the order. Idempotent per key."""


@contract(Dispatch.ONE_PROVIDER)
def membership_adjust(
    ctx: FlowContext, member_id: str, points: int, reason: str, idempotency_key: str
) -> PointsMovement:
    """Post ``points`` (signed) to a member outside any order: a goodwill credit, a partner transfer.
    Never lets the balance fall below zero. ``reason`` is kept with the movement. Idempotent per key."""


@attrs.frozen
class PartnerPointsMovement:
    """Points that crossed between this programme and a partner's, as the settlement report reads them.

    ``points`` is signed from the member's side: positive when the member brought the partner's points
    in (the partner owes the merchant ``value``), negative when the member sent points out (the merchant
    owes the partner). ``value`` is what ``abs(points)`` of our points are worth at the programme's
    configured points value, so a report built twice from the same ledger gives the same money.
    """

    journal_id: str
    member_id: str
    partner: str
    points: int
    partner_points: int
    value: Money
    at: datetime


@contract(Dispatch.ONE_PROVIDER)
def membership_partner_movements(
    ctx: FlowContext, partner: str, since: datetime, until: datetime
) -> Sequence[PartnerPointsMovement]:
    """Every exchange of points with ``partner`` posted from ``since`` up to (not including) ``until``,
    oldest first. Read-only.

    Optional: a stack whose membership block does not answer it settles partner-funded discounts only.
    """


@contract(Dispatch.ONE_PROVIDER)
def membership_order_points(ctx: FlowContext, order_id: str) -> int:
    """Points ``order_id`` earned, net of what was taken back for it (0 for a cancelled order once its
    reversal is posted). Optional: lets simulations and operators check that no cancelled order keeps
    its points."""


@contract(Dispatch.ONE_PROVIDER)
def membership_exchange(
    ctx: FlowContext, member_id: str, partner: str, points: int, idempotency_key: str
) -> PointsMovement:
    """Exchange points with ``partner``'s programme at the configured rate: a positive ``points`` brings in
    that many of the partner's points (credited as ours), a negative one sends that many of ours out. The
    partner's clearing balance records who owes whom for settlement. Optional. Idempotent per key."""


@contract(Dispatch.ONE_PROVIDER)
def membership_identifiers(ctx: FlowContext, member_id: str) -> Sequence[Identity]:
    """Every identity the member holds, held before (an identity an unmerge gave back, one a merge moved)
    or holds through a member merged into them: what a data-subject export shows and an erasure replaces.
    Optional: without it, erasure replaces the identities :func:`membership_member` answers.

    .. versionadded:: 1.5
    """
