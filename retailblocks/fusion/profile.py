"""Member profiles: what the fused data says about each member (recency, frequency, monetary, channel mix).

Orders are read from the core's orders table, which is the truth about money; membership says who the
member is now (a merged member's old ids count towards the survivor), and the timeline adds the
external signals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from retailblocks.clock import as_utc
from retailblocks.context import FlowContext
from retailblocks.fusion.timeline import signal_counts
from retailblocks.hookspecs import membership
from retailblocks.model import Member, Money, Order, OrderStatus

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

#: Orders that never became a sale (or were undone entirely) say nothing about a member's buying.
NOT_SALES = frozenset({OrderStatus.PENDING, OrderStatus.FAILED, OrderStatus.CANCELLED})
#: Orders no listener has heard of as placed: they name no member in profiles, facts or aggregates.
NEVER_PLACED = frozenset({OrderStatus.PENDING, OrderStatus.FAILED})


@attrs.frozen
class MemberProfile:
    member_id: str
    identities: tuple[str, ...]
    tier: str
    points: int
    #: every member id the member's orders were placed under (more than one after a merge)
    member_ids: tuple[str, ...]
    orders: int
    monetary: Money
    first_purchase: datetime | None
    last_purchase: datetime | None
    recency_days: int | None
    channel_mix: Mapping[str, int]
    skus: frozenset[str]
    categories: frozenset[str]
    signals: int
    segments: tuple[str, ...] = ()

    def to_data(self, money: Callable[[Money], object] = str) -> dict[str, object]:
        """Plain data; ``money`` renders each amount (the CLI passes its one JSON shape of money)."""
        return {
            "member_id": self.member_id,
            "identities": list(self.identities),
            "tier": self.tier,
            "points": self.points,
            "member_ids": list(self.member_ids),
            "orders": self.orders,
            "monetary": money(self.monetary),
            "first_purchase": self.first_purchase.isoformat() if self.first_purchase else None,
            "last_purchase": self.last_purchase.isoformat() if self.last_purchase else None,
            "recency_days": self.recency_days,
            "channel_mix": dict(self.channel_mix),
            "skus": sorted(self.skus),
            "categories": sorted(self.categories),
            "signals": self.signals,
            "segments": list(self.segments),
        }


class MemberResolver:
    """Member ids as membership knows them now, asked once per id (merges point old ids at the survivor)."""

    def __init__(self, stack: Runtime, ctx: FlowContext):
        self._stack, self._ctx = stack, ctx
        self._members: dict[str, Member | None] = {}

    def member(self, member_id: str) -> Member | None:
        if member_id not in self._members:
            self._members[member_id] = self._stack.hooks.maybe(membership.membership_member, self._ctx, member_id)
        return self._members[member_id]

    def canonical(self, member_id: str) -> str:
        member = self.member(member_id)
        return member.id if member is not None else member_id


def build_profiles(
    stack: Runtime, ctx: FlowContext, orders: Iterable[Order], extra_member_ids: Iterable[str] = ()
) -> dict[str, MemberProfile]:
    """A profile for every member who bought (or is named in ``extra_member_ids``), keyed by member id."""
    resolver = MemberResolver(stack, ctx)
    by_member: dict[str, list[Order]] = {}
    aliases: dict[str, set[str]] = {}
    for order in orders:
        # An order never placed (under way, or failed: a declined card) makes no one a buyer.
        if order.member_id is None or order.status in NEVER_PLACED:
            continue
        member_id = resolver.canonical(order.member_id)
        aliases.setdefault(member_id, set()).add(order.member_id)
        if order.status not in NOT_SALES:
            by_member.setdefault(member_id, []).append(order)
    for extra in extra_member_ids:
        member_id = resolver.canonical(extra)
        aliases.setdefault(member_id, set()).add(extra)
    signals = signal_counts(ctx.db)
    now = ctx.clock.now()
    profiles: dict[str, MemberProfile] = {}
    for member_id in sorted(aliases):
        member = resolver.member(member_id)
        bought = sorted(by_member.get(member_id, []), key=lambda o: (as_utc(o.created_at), o.id))
        identities = tuple(str(i) for i in member.identities) if member is not None else ()
        first = as_utc(bought[0].created_at) if bought else None
        last = as_utc(bought[-1].created_at) if bought else None
        skus = frozenset(line.sku for order in bought for line in order.lines)
        profiles[member_id] = MemberProfile(
            member_id=member_id,
            identities=identities,
            tier=member.tier if member is not None else "",
            points=member.points if member is not None else 0,
            member_ids=tuple(sorted(aliases[member_id] | {member_id})),
            orders=len(bought),
            monetary=Money(sum(net_amount(order) for order in bought), stack.currency),
            first_purchase=first,
            last_purchase=last,
            recency_days=(now - last).days if last is not None else None,
            channel_mix=dict(sorted(Counter(order.channel for order in bought).items())),
            skus=skus,
            categories=frozenset(stack.catalog[sku].category for sku in skus if sku in stack.catalog),
            signals=sum(signals.get(owner, 0) for owner in {*aliases[member_id], member_id, *identities}),
        )
    return profiles


def net_amount(order: Order) -> int:
    """What the order is worth now: its total less what was refunded (minor units)."""
    return order.total.amount - (order.refunded.amount if order.refunded else 0)
