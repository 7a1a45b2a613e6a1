"""Segments evaluated over member profiles: the manifest's rules, each one a plain comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from retailblocks.fusion.profile import MemberProfile
from retailblocks.manifest import Segment


def matches(segment: Segment, profile: MemberProfile) -> bool:
    """True when every rule the segment gives holds for the profile."""
    checks = [
        segment.min_orders is None or profile.orders >= segment.min_orders,
        segment.max_orders is None or profile.orders <= segment.max_orders,
        segment.min_spend is None or profile.monetary >= segment.min_spend,
        segment.max_spend is None or profile.monetary <= segment.max_spend,
        segment.purchased_within_days is None
        or (profile.recency_days is not None and profile.recency_days <= segment.purchased_within_days),
        # A member who never bought has not bought for as long as anyone could ask.
        segment.not_purchased_for_days is None
        or profile.recency_days is None
        or profile.recency_days >= segment.not_purchased_for_days,
        not segment.tiers or profile.tier in segment.tiers,
        not segment.channels or bool(segment.channels & set(profile.channel_mix)),
        not segment.skus or bool(segment.skus & profile.skus),
        not segment.categories or bool(segment.categories & profile.categories),
        segment.last_purchase_before is None
        or (profile.last_purchase is not None and profile.last_purchase.date() < segment.last_purchase_before),
        segment.last_purchase_after is None
        or (profile.last_purchase is not None and profile.last_purchase.date() >= segment.last_purchase_after),
    ]
    return all(checks)


def with_segments(profiles: Mapping[str, MemberProfile], segments: Sequence[Segment]) -> dict[str, MemberProfile]:
    """The profiles, each carrying the ids of the segments it belongs to."""
    return {
        member_id: attrs.evolve(profile, segments=tuple(s.id for s in segments if matches(s, profile)))
        for member_id, profile in profiles.items()
    }


def members_of(segment: Segment, profiles: Mapping[str, MemberProfile]) -> list[str]:
    """The member ids in ``segment``, sorted so a campaign issues in the same order every run."""
    return sorted(member_id for member_id, profile in profiles.items() if matches(segment, profile))
