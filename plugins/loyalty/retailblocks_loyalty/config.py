"""The loyalty block's configuration: tiers, earning rules, points expiry and value, partner exchanges."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any

import attrs

from retailblocks.errors import InvalidValue, suggestion
from retailblocks.model import IdentityKind, Money


def _non_negative_int(_instance: Any, attribute: Any, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidValue(f"{attribute.name!r} must be an integer >= 0 (got {value!r})")


def _positive_int(_instance: Any, attribute: Any, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidValue(f"{attribute.name!r} must be an integer > 0 (got {value!r})")


def _percent_map(_instance: Any, attribute: Any, value: dict[str, int]) -> None:
    for key, percent in value.items():
        if not isinstance(percent, int) or isinstance(percent, bool) or percent < 0:
            raise InvalidValue(
                f"{attribute.name}[{key!r}] must be a whole percentage >= 0, e.g. 150 for 1.5x (got {percent!r})"
            )


@attrs.frozen
class Tier:
    """A membership level reached when lifetime spend crosses ``threshold``."""

    name: str = attrs.field(metadata={"help": "the tier's name, e.g. 'gold'"})
    threshold: Money = attrs.field(metadata={"help": "lifetime spend from which a member is in this tier"})
    earn_multiplier_percent: int = attrs.field(
        default=100,
        validator=_non_negative_int,
        metadata={"help": "points earned in this tier, in percent of the base rate (150 = 1.5x)"},
    )
    benefits: list[str] = attrs.field(
        factory=list, metadata={"help": "the tier's benefits, as descriptions shown to members"}
    )

    @name.validator
    def _check_name(self, _attribute: Any, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidValue(f"a tier needs a non-empty name (got {value!r})")

    @threshold.validator
    def _check_threshold(self, _attribute: Any, value: Money) -> None:
        if not isinstance(value, Money) or value.amount < 0:
            raise InvalidValue(f"tier threshold must be money >= 0, e.g. '1000.00 CNY' (got {value!r})")


@attrs.frozen
class EarningRules:
    """How many points an order earns.

    Points are ``points_per_unit`` per whole currency unit of what was paid for the goods (the order total
    without shipping, spread over the lines), times the channel's, the SKU's and the member's tier
    multiplier. Multipliers are whole percentages (150 = 1.5x) and multiply together.
    """

    points_per_unit: int = attrs.field(
        default=1,
        validator=_non_negative_int,
        metadata={"help": "points per whole currency unit paid (1 = one point per yuan)"},
    )
    channel_multipliers_percent: dict[str, int] = attrs.field(
        factory=dict,
        validator=_percent_map,
        metadata={"help": "by channel id or channel type: earn rate in percent (200 = double points)"},
    )
    sku_multipliers_percent: dict[str, int] = attrs.field(
        factory=dict,
        validator=_percent_map,
        metadata={
            "help": "by SKU or SKU pattern ('TEA-*'): earn rate in percent; 0 excludes the SKU "
            "(an exact SKU wins over patterns; patterns are tried in the order written)"
        },
    )


@attrs.frozen
class PartnerExchange:
    """A partner programme whose points convert to and from ours."""

    rate_percent: int = attrs.field(
        validator=_positive_int,
        metadata={"help": "our points one partner point is worth, times 100 (50 = half a point)"},
    )
    max_per_exchange: int = attrs.field(
        default=100_000,
        validator=_positive_int,
        metadata={"help": "most of OUR points one exchange may move, in either direction"},
    )
    max_points_per_member_per_day: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_positive_int),
        metadata={"help": "most of OUR points one member may exchange with the partner in a day (UTC), both ways"},
    )
    max_exchanges_per_member_per_day: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_positive_int),
        metadata={"help": "most exchanges one member may make with the partner in a day (UTC), both ways"},
    )


def _tiers(_instance: Any, _attribute: Any, value: list[Tier]) -> None:
    names = [tier.name for tier in value]
    if len(set(names)) != len(names):
        raise InvalidValue(f"tier names must be unique (got {names})")
    if len({tier.threshold.currency for tier in value}) > 1:
        raise InvalidValue(f"tier thresholds must share one currency (got {[str(t.threshold) for t in value]})")


def _positive_duration(_instance: Any, attribute: Any, value: timedelta) -> None:
    if not isinstance(value, timedelta) or value <= timedelta():
        raise InvalidValue(f"{attribute.name!r} must be a positive duration such as '365d' (got {value!r})")


def _positive_money(_instance: Any, attribute: Any, value: Money) -> None:
    if not isinstance(value, Money) or value.amount <= 0:
        raise InvalidValue(f"{attribute.name!r} must be money > 0, e.g. '1.00 CNY' (got {value!r})")


class MergePolicy(enum.StrEnum):
    """When an identity of a kind may merge two members that both hold identities a request names."""

    #: Any shared identity of the kind merges (the behaviour before policies existed).
    AUTO = "auto"
    #: Only when the channel says the person proved they control it (``Identity.verified``).
    VERIFIED = "verified"
    #: Never on its own: a family's shared phone merges nobody unless a second identity also matches.
    NEVER_ALONE = "never_alone"


def _merge_policy(_instance: Any, _attribute: Any, value: dict[str, MergePolicy]) -> None:
    kinds = {kind.value for kind in IdentityKind}
    for kind in value:
        if kind not in kinds:
            known = ", ".join(sorted(kinds))
            raise InvalidValue(f"unknown identity kind {kind!r}{suggestion(kind, kinds)} (kinds: {known})")


@attrs.frozen
class LoyaltyConfig:
    """Configuration of the ``loyalty`` block."""

    tiers: list[Tier] = attrs.field(
        factory=list,
        validator=_tiers,
        metadata={"help": "membership tiers; a member is in the highest tier whose threshold they reached"},
    )
    earning: EarningRules = attrs.field(factory=EarningRules, metadata={"help": "how orders earn points"})
    points_expire_after: timedelta = attrs.field(
        default=timedelta(days=365),
        validator=_positive_duration,
        metadata={"help": "how long earned points stay spendable, e.g. '365d'"},
    )
    points_value: Money = attrs.field(
        default=Money(100, "CNY"),
        validator=_positive_money,
        metadata={"help": "what 100 points are worth when paying with points, e.g. '1.00 CNY'"},
    )
    partners: dict[str, PartnerExchange] = attrs.field(
        factory=dict, metadata={"help": "partner programmes by id, whose points exchange with ours"}
    )
    merge_policy: dict[str, MergePolicy] = attrs.field(
        factory=dict,
        validator=_merge_policy,
        metadata={
            "help": "per identity kind, when a shared identity merges two members: auto (default), "
            "verified, never_alone"
        },
    )

    def policy(self, kind: str) -> MergePolicy:
        return self.merge_policy.get(kind, MergePolicy.AUTO)

    def sorted_tiers(self) -> list[Tier]:
        """Tiers from the lowest threshold to the highest."""
        return sorted(self.tiers, key=lambda tier: tier.threshold.amount)
