"""Reading the fused data: profiles with their segments, and one member's profile with their timeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

import attrs
import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import InvalidValue, UnknownMember, suggestion
from retailblocks.events.dispatcher import dispatch
from retailblocks.flows.orders import list_orders
from retailblocks.fusion.memberships import Explanation, explain, segment_members
from retailblocks.fusion.profile import MemberProfile, build_profiles
from retailblocks.fusion.tables import campaign_coupons, timeline
from retailblocks.fusion.timeline import TimelineEntry, read_timeline
from retailblocks.hookspecs import membership
from retailblocks.manifest import Campaign, Segment
from retailblocks.model import Identity

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

T = TypeVar("T")


def catch_up(stack: Runtime) -> None:
    """Deliver pending outbox events, so the timeline holds everything committed before the report."""
    dispatch(stack)


def profiles(stack: Runtime, ctx: FlowContext) -> dict[str, MemberProfile]:
    """Every known member's profile (buyers, members with signals or coupons), with their segments."""
    known = [
        *ctx.db.execute(sa.select(timeline.c.member_id).where(timeline.c.member_id.is_not(None)).distinct()).scalars(),
        *ctx.db.execute(sa.select(campaign_coupons.c.member_id).distinct()).scalars(),
    ]
    built = build_profiles(stack, ctx, list_orders(stack.engine), known)
    members = segment_members(stack, ctx)
    return {
        member_id: attrs.evolve(profile, segments=tuple(s for s, ids in members.items() if member_id in ids))
        for member_id, profile in built.items()
    }


def member_view(
    stack: Runtime, ctx: FlowContext, *, member_id: str | None = None, identity: str | None = None
) -> tuple[MemberProfile, list[TimelineEntry]]:
    """One member's profile and timeline, found by member id or by an identity (``kind:value``)."""
    if identity is not None:
        member = stack.hooks.maybe(membership.membership_identify, ctx, [parse_identity(identity)], False)
        if member is None:
            raise UnknownMember(f"no member is known by {identity!r}")
        member_id = member.id
    elif member_id is None:
        raise InvalidValue("give a member id or an identity")
    member = stack.hooks.maybe(membership.membership_member, ctx, member_id)
    canonical = member.id if member is not None else member_id
    found = profiles(stack, ctx).get(canonical)
    if found is None:
        raise UnknownMember(f"unknown member {member_id!r}: no membership record, order or signal names it")
    entries = read_timeline(ctx.db, found.member_ids, found.identities)
    return found, entries


def explain_segment(stack: Runtime, segment_id: str, member: str) -> Explanation:
    """Why ``member`` (a member id, or an identity as ``kind:value``) is in ``segment_id`` or not, now: each
    condition with the member's figure and the threshold. Pending events are delivered first."""
    segment = find_segment(stack, segment_id)
    catch_up(stack)
    with stack.context(flow="report", read_only=True) as ctx:
        member_id = member
        if ":" in member:
            found = stack.hooks.maybe(membership.membership_identify, ctx, [parse_identity(member)], False)
            if found is None:
                raise UnknownMember(f"no member is known by {member!r}")
            member_id = found.id
        return explain(stack, ctx, segment, member_id)


def parse_identity(text: str) -> Identity:
    """``kind:value`` as an :class:`Identity`, with a message that lists the kinds on a typo."""
    kind, sep, value = text.partition(":")
    if not sep or not kind or not value.strip():
        raise InvalidValue(f"expected an identity as kind:value, e.g. phone:+8613800000000 (got {text!r})")
    try:
        return Identity(kind.strip(), value.strip())
    except ValueError:
        from retailblocks.model.member import IdentityKind

        kinds = [k.value for k in IdentityKind]
        raise InvalidValue(
            f"unknown identity kind {kind!r}{suggestion(kind, kinds)} (kinds: {', '.join(kinds)})"
        ) from None


def find_segment(stack: Runtime, segment_id: str) -> Segment:
    return _find(segment_id, {s.id: s for s in stack.manifest.segments}, "segment")


def find_campaign(stack: Runtime, campaign_id: str) -> Campaign:
    return _find(campaign_id, {c.id: c for c in stack.manifest.campaigns}, "campaign")


def _find(wanted: str, declared: Mapping[str, T], what: str) -> T:
    try:
        return declared[wanted]
    except KeyError:
        names = sorted(declared)
        listed = ", ".join(names) or f"none; declare {what}s under '{what}s:' in the manifest"
        raise InvalidValue(f"unknown {what} {wanted!r}{suggestion(wanted, names)} (declared: {listed})") from None
