"""A shopper as a member, for the faces that act for one: sign-in by identity, the member, linking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from retailblocks.errors import InvalidValue, UnknownMember
from retailblocks.hookspecs import membership
from retailblocks.model import Identity, Member

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
