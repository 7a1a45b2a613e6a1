"""Pure rules of the loyalty programme: identity normalization, tiers, points earned, shares, values.

Nothing here touches the database, so every rule can be tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase

from retailblocks.errors import CurrencyMismatch, InvalidValue
from retailblocks.model import (
    Identity,
    IdentityKind,
    Money,
    Order,
    allocate_integer,
    currency_exponent,
)
from retailblocks_loyalty.config import EarningRules, Tier

BASE_TIER = "base"

_PHONE_NOISE = re.compile(r"[\s\-().]")


def normalize_identity(identity: Identity) -> Identity:
    """The canonical form an identity is stored and matched under.

    Phones lose spaces, dashes, dots and brackets; emails are lowercased; every value is stripped.
    """
    value = identity.value.strip()
    if identity.kind is IdentityKind.PHONE:
        value = _PHONE_NOISE.sub("", value)
        if not re.fullmatch(r"\+?\d+", value):
            raise InvalidValue(f"a phone identity must be digits with an optional leading '+' (got {identity.value!r})")
        digits = len(value.lstrip("+"))
        if not 3 <= digits <= 20:
            raise InvalidValue(f"a phone identity must have between 3 and 20 digits (got {digits})")
    elif identity.kind is IdentityKind.EMAIL:
        value = value.lower()
        if "@" not in value:
            raise InvalidValue(f"an email identity must contain '@' (got {identity.value!r})")
    if not value:
        raise InvalidValue(f"identity {identity.kind.value!r} has an empty value")
    return Identity(identity.kind, value)


def normalize_identities(identities: Sequence[Identity]) -> list[Identity]:
    """Normalized identities without duplicates, in the order given."""
    if not identities:
        raise InvalidValue("identify needs at least one identity (got none)")
    seen: dict[Identity, None] = {}
    for identity in identities:
        if not isinstance(identity, Identity):
            raise InvalidValue(f"expected Identity values (got {identity!r})")
        seen.setdefault(normalize_identity(identity), None)
    return list(seen)


def tier_for(tiers: Sequence[Tier], lifetime_spend: Money) -> Tier | None:
    """The highest tier whose threshold ``lifetime_spend`` has reached, or None (the base tier)."""
    reached: Tier | None = None
    for tier in sorted(tiers, key=lambda t: t.threshold.amount):
        if tier.threshold.currency != lifetime_spend.currency:
            raise CurrencyMismatch(
                f"tier {tier.name!r} has its threshold in {tier.threshold.currency}, but spend is in "
                f"{lifetime_spend.currency}"
            )
        if lifetime_spend.amount >= tier.threshold.amount:
            reached = tier
    return reached


def tier_name(tiers: Sequence[Tier], lifetime_spend: Money) -> str:
    tier = tier_for(tiers, lifetime_spend)
    return tier.name if tier is not None else BASE_TIER


def tier_multiplier(tiers: Sequence[Tier], name: str) -> int:
    for tier in tiers:
        if tier.name == name:
            return tier.earn_multiplier_percent
    return 100


def sku_multiplier(rules: EarningRules, sku: str) -> int:
    """The SKU's earn rate: an exact entry wins; else the first matching pattern; else 100."""
    exact = rules.sku_multipliers_percent.get(sku)
    if exact is not None:
        return exact
    for pattern, percent in rules.sku_multipliers_percent.items():
        if fnmatchcase(sku, pattern):
            return percent
    return 100


def channel_multiplier(rules: EarningRules, channel_id: str, channel_type: str | None) -> int:
    """The channel's earn rate, by channel id first and channel type second; else 100."""
    by_id = rules.channel_multipliers_percent.get(channel_id)
    if by_id is not None:
        return by_id
    if channel_type is not None:
        return rules.channel_multipliers_percent.get(channel_type, 100)
    return 100


def paid_for_goods(order: Order) -> Money:
    """What the shopper paid for the goods: the order total without shipping, never below zero."""
    paid = order.total - order.shipping
    return paid if paid.amount > 0 else Money.zero(order.currency)


def line_points(
    order: Order, rules: EarningRules, *, channel_type: str | None, tier_percent: int
) -> list[tuple[int, str, int]]:
    """Points per line: ``(line index, sku, points)``.

    The paid total is spread over the lines in proportion to their totals (so order-level discounts
    are shared), then each line earns ``points_per_unit`` per whole currency unit of its share, times
    the channel, SKU and tier multipliers, rounded down.
    """
    paid = paid_for_goods(order)
    if not order.lines or paid.amount == 0:
        return []
    weights = [max(line.total.amount, 0) for line in order.lines]
    shares = allocate_integer(paid.amount, weights)
    unit = 10 ** currency_exponent(order.currency)
    channel_percent = channel_multiplier(rules, order.channel, channel_type)
    result: list[tuple[int, str, int]] = []
    for line, share in zip(order.lines, shares, strict=True):
        numerator = share * rules.points_per_unit * channel_percent * sku_multiplier(rules, line.sku)
        numerator *= tier_percent
        result.append((line.index, line.sku, numerator // (unit * 100 * 100 * 100)))
    return result


def share_of(total_points: int, part: int, whole: int) -> int:
    """``floor(total_points * part / whole)``, all of it once ``part`` reaches ``whole``."""
    if whole <= 0 or part >= whole:
        return total_points
    if part <= 0:
        return 0
    return total_points * part // whole


def points_for_amount(amount: Money, points_value: Money) -> int:
    """Points needed to pay ``amount`` when 100 points are worth ``points_value``, rounded up."""
    if amount.currency != points_value.currency:
        raise CurrencyMismatch(f"points are valued in {points_value.currency}, cannot pay {amount} with them")
    if amount.amount <= 0:
        return 0
    # Integer ceiling division: floats would round large amounts wrongly.
    return -(-amount.amount * 100 // points_value.amount)


def exchange_in_points(partner_points: int, rate_percent: int) -> int:
    """Our points for ``partner_points`` of a partner whose point is worth ``rate_percent``/100 of ours."""
    return partner_points * rate_percent // 100


def exchange_out_partner_points(points: int, rate_percent: int) -> int:
    """Partner points our ``points`` buy, rounded down."""
    return points * 100 // rate_percent
