"""A shopper as a member, for the faces that act for one: sign-in by identity, the member, linking, the
coupons in their wallet and points redeemed with a partner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from retailblocks.errors import InvalidValue, UnknownMember
from retailblocks.flows.capabilities import member_coupons as member_coupons_of
from retailblocks.fusion.settlement import find_partner
from retailblocks.hookspecs import membership
from retailblocks.hookspecs.marketing import MemberCoupon
from retailblocks.model import Identity, Member, PointsMovement
from retailblocks.model.limits import MAX_POINTS, check_key

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime


def sign_in(stack: Runtime, channel: str, identities: Sequence[Identity]) -> Member:
    """The member ``identities`` resolve to in ``channel``, enrolled if none does (as checkout enrols)."""
    if not identities:
        raise InvalidValue("sign-in needs at least one identity")
    if not stack.hooks.provides(membership.membership_identify):
        raise InvalidValue("this stack has no membership block: shoppers cannot sign in")
    with stack.context(channel, flow="sign-in") as ctx:
        member = stack.hooks.call(membership.membership_identify, ctx, identities, True)
    if member is None:  # pragma: no cover - a block that enrols returns the member
        raise InvalidValue("the membership block enrolled no member")
    return member


def member_of(stack: Runtime, member_id: str) -> Member:
    """The member as membership knows them now; UnknownMember if none (or no membership block)."""
    member = None
    if stack.hooks.provides(membership.membership_member):
        with stack.context(flow="read", read_only=True) as ctx:
            member = stack.hooks.call(membership.membership_member, ctx, member_id)
    if member is None:
        raise UnknownMember(f"no member {member_id!r}")
    return member


def link_identity(stack: Runtime, channel: str, member_id: str, identity: Identity) -> Member:
    """Link ``identity`` to the member; an identity that was another member's merges the two (membership
    keeps such merges auditable and reversible), so the member returned may carry another id."""
    member = member_of(stack, member_id)
    return sign_in(stack, channel, [*member.identities, identity])


def member_coupons(stack: Runtime, member_id: str) -> list[MemberCoupon]:
    """The coupons in the member's wallet: issued to them by any marketing block, with uses left."""
    member = member_of(stack, member_id)
    with stack.context(flow="read", read_only=True) as ctx:
        return member_coupons_of(stack.hooks, ctx, member.id)


def redeem_points(
    stack: Runtime, member_id: str, partner: str, points: int, *, key: str, channel: str | None = None
) -> PointsMovement:
    """Spend ``points`` of the member's for the partner's programme (its points, its rights), once per
    ``key``: the membership block debits the member and credits the partner's clearing account, which
    the partner settlement reports (a ``points_out`` line whose reference is the movement's id).
    A member without enough points is refused by the block, nothing taken."""
    check_key(key)
    find_partner(stack, partner)
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= MAX_POINTS:
        raise InvalidValue(f"a redemption spends a whole number of points between 1 and {MAX_POINTS} (got {points!r})")
    if not stack.hooks.provides(membership.membership_exchange):
        raise InvalidValue("this stack's membership block exchanges no points with partners")
    member = member_of(stack, member_id)
    with stack.context(channel, flow="points") as ctx:
        return stack.hooks.call(membership.membership_exchange, ctx, member.id, partner, -points, key)
