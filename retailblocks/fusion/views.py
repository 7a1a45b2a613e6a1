"""Reading the fused data: profiles with their segments, and one member's profile with their timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.context import FlowContext
from retailblocks.errors import InvalidValue, UnknownMember, suggestion
from retailblocks.events.dispatcher import dispatch
from retailblocks.flows.orders import list_orders
from retailblocks.fusion import aggregates
from retailblocks.fusion.memberships import Explanation, explain, needs_rebuild, segment_members, segments_of
from retailblocks.fusion.profile import MemberProfile, MemberResolver, build_profiles
from retailblocks.fusion.tables import campaign_coupons, timeline
from retailblocks.fusion.timeline import TimelineEntry, read_timeline
from retailblocks.hookspecs import membership
from retailblocks.manifest import Campaign, Segment
from retailblocks.model import Identity, Money

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

T = TypeVar("T")


def catch_up(stack: Runtime) -> None:
    """Deliver pending outbox events, so the timeline holds everything committed before the report."""
    dispatch(stack)


def profiles(
    stack: Runtime, ctx: FlowContext, *, after: str | None = None, limit: int | None = None
) -> dict[str, MemberProfile]:
    """Known members' profiles (buyers, members with signals or coupons), with their segments, by member id:
    those after ``after``, at most ``limit`` of them (every one when None)."""
    return profile_page(stack, ctx, after=after, limit=limit).profiles


@attrs.frozen
class ProfilePage:
    profiles: dict[str, MemberProfile]
    #: how many known members there are in all
    total: int
    #: the ``after`` that reads the next page; None on the last one
    next_after: str | None


def profile_page(
    stack: Runtime, ctx: FlowContext, *, after: str | None = None, limit: int | None = None
) -> ProfilePage:
    """A page of :func:`profiles`: read from the kept member totals (only the page's members' rows), or
    computed from every order while those are not built."""
    if limit is not None and limit < 1:
        raise InvalidValue(f"a page holds at least one member (got {limit})")
    if aggregates.usable(stack, ctx.db):
        rows, total = aggregates.member_page(ctx.db, after=after, limit=limit)
        found = _kept_profiles(stack, ctx, rows)
    else:
        known = [
            *ctx.db.execute(
                sa.select(timeline.c.member_id).where(timeline.c.member_id.is_not(None)).distinct()
            ).scalars(),
            *ctx.db.execute(sa.select(campaign_coupons.c.member_id).distinct()).scalars(),
        ]
        built = build_profiles(stack, ctx, list_orders(stack.engine), known)
        total = len(built)
        chosen = [m for m in sorted(built) if after is None or m > after][:limit]
        inside = segments_of(stack, ctx, chosen) if not needs_rebuild(ctx.db) else _raw_segments(stack, ctx)
        found = {m: attrs.evolve(built[m], segments=inside.get(m, ())) for m in chosen}
    last = next(reversed(found), None) if found else None
    more = limit is not None and len(found) == limit
    return ProfilePage(found, total, last if more else None)


def _raw_segments(stack: Runtime, ctx: FlowContext) -> dict[str, tuple[str, ...]]:
    members = segment_members(stack, ctx)
    inside: dict[str, list[str]] = {}
    for segment, ids in members.items():
        for member_id in ids:
            inside.setdefault(member_id, []).append(segment)
    return {member_id: tuple(segments) for member_id, segments in inside.items()}


def _kept_profiles(stack: Runtime, ctx: FlowContext, rows: Sequence[Any]) -> dict[str, MemberProfile]:
    resolver = MemberResolver(stack, ctx)
    inside = segments_of(stack, ctx, [row["member_id"] for row in rows])
    now = ctx.clock.now()
    found: dict[str, MemberProfile] = {}
    for row in rows:
        member_id = row["member_id"]
        member = resolver.member(member_id)
        identities = tuple(str(i) for i in member.identities) if member is not None else ()
        aliases = tuple(sorted(set(row["aliases"]) | {member_id}))
        last = as_utc(row["last_purchase"]) if row["last_purchase"] is not None else None
        skus = frozenset(row["skus"] or ())
        found[member_id] = MemberProfile(
            member_id=member_id,
            identities=identities,
            tier=member.tier if member is not None else "",
            points=member.points if member is not None else 0,
            member_ids=aliases,
            orders=int(row["orders"]),
            monetary=Money(int(row["spend"]), stack.currency),
            first_purchase=as_utc(row["first_purchase"]) if row["first_purchase"] is not None else None,
            last_purchase=last,
            recency_days=(now - last).days if last is not None else None,
            channel_mix={str(k): int(v) for k, v in sorted((row["channel_mix"] or {}).items())},
            skus=skus,
            categories=frozenset(stack.catalog[sku].category for sku in skus if sku in stack.catalog),
            signals=_signals(ctx.db, aliases, identities),
            segments=inside.get(member_id, ()),
        )
    return found


def _signals(connection: sa.Connection, member_ids: Sequence[str], identities: Sequence[str]) -> int:
    """External signals of the member: under any of their ids, or by an identity no member was known for."""
    owner: sa.ColumnElement[bool] = timeline.c.member_id.in_(member_ids)
    if identities:
        owner = sa.or_(owner, sa.and_(timeline.c.member_id.is_(None), timeline.c.identity.in_(identities)))
    query = sa.select(sa.func.count()).select_from(timeline).where(timeline.c.source == "signal", owner)
    return int(connection.execute(query).scalar_one())


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
    found = _one_profile(stack, ctx, canonical)
    if found is None:
        raise UnknownMember(f"unknown member {member_id!r}: no membership record, order or signal names it")
    entries = read_timeline(ctx.db, found.member_ids, found.identities)
    return found, entries


def _one_profile(stack: Runtime, ctx: FlowContext, member_id: str) -> MemberProfile | None:
    if aggregates.usable(stack, ctx.db):
        row = aggregates.member_row(ctx.db, member_id)
        return None if row is None else _kept_profiles(stack, ctx, [row])[member_id]
    return profiles(stack, ctx).get(member_id)


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
