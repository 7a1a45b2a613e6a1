"""The promotions block's configuration: the promotions it knows and the stacking policy that
combines them.

Every promotion is checked when the configuration is built (a percentage above 100, a buy-get
without a
get quantity, an unreadable date), so a bad manifest fails at ``blocks assemble`` rather than at the
first checkout. The merchant's currency is not known here; the block checks money fields once it is.
"""

# No ``from __future__ import annotations``: the manifest reads these annotations as real types.

import datetime
import functools
from fractions import Fraction
from typing import Any, Literal

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.model import FulfilmentKind, Money
from retailblocks.model.limits import MAX_QUANTITY


def _non_empty(_instance: Any, attribute: "attrs.Attribute[Any]", value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{attribute.name!r} must be a non-empty string (got {value!r})")


def _optional_positive(_instance: Any, attribute: "attrs.Attribute[Any]", value: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_QUANTITY:
        raise InvalidValue(
            f"{attribute.name!r} must be a whole number from 1 to {MAX_QUANTITY} or empty (got {value!r})"
        )


def _optional_money(_instance: Any, attribute: "attrs.Attribute[Any]", value: Money | None) -> None:
    if value is None:
        return
    if not isinstance(value, Money):
        raise InvalidValue(f"{attribute.name!r} must be money like '20.00 CNY' (got {value!r})")
    if value.amount < 0:
        raise InvalidValue(f"{attribute.name!r} cannot be negative (got {value})")


def _optional_moment(_instance: Any, attribute: "attrs.Attribute[Any]", value: str | None) -> None:
    if value is not None:
        parse_moment(value, attribute.name)


def parse_moment(text: str, name: str = "time") -> datetime.datetime:
    """An ISO 8601 date-time; one without a zone is taken as UTC."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidValue(
            f"{name!r} must be an ISO 8601 date-time like '2026-03-01T00:00:00+08:00' (got {text!r})"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def _codes(value: list[str]) -> list[str]:
    return [str(item) for item in value]


def parse_share(value: Any, name: str = "share") -> int:
    """A funder's share in basis points: ``"60%"`` (at most two decimals) or ``"6000bp"``."""
    text = value.strip().lower() if isinstance(value, str) else None
    basis: Fraction | None = None
    try:
        if text is not None and text.endswith("%"):
            basis = Fraction(text[:-1].strip()) * 100
        elif text is not None and text.endswith("bp"):
            basis = Fraction(int(text[:-2].strip()))
    except ValueError:
        basis = None
    if basis is None or basis.denominator != 1 or not 0 < basis <= 10_000:
        raise InvalidValue(
            f"{name!r} must be a share above 0 and at most 100% like '60%', '12.5%' or '6000bp' (got {value!r})"
        )
    return int(basis)


def _fulfilment_kinds(_instance: Any, attribute: "attrs.Attribute[Any]", value: list[str]) -> None:
    kinds = [kind.value for kind in FulfilmentKind]
    for item, kind in enumerate(value):
        if kind not in kinds:
            raise InvalidValue(
                f"{attribute.name}[{item}] is {kind!r}, which is not a fulfilment kind (one of {', '.join(kinds)})"
            )


def parse_rate(value: Any, name: str = "rate") -> int:
    """A tax rate in basis points: ``"13%"`` (at most two decimals, 0% to 100%) or ``"1300bp"``."""
    text = value.strip().lower() if isinstance(value, str) else None
    basis: Fraction | None = None
    try:
        if text is not None and text.endswith("%"):
            basis = Fraction(text[:-1].strip()) * 100
        elif text is not None and text.endswith("bp"):
            basis = Fraction(int(text[:-2].strip()))
    except ValueError:
        basis = None
    if basis is None or basis.denominator != 1 or not 0 <= basis <= 10_000:
        raise InvalidValue(
            f"{name!r} must be a tax rate from 0% to 100% like '13%', '6.5%' or '1300bp' (got {value!r})"
        )
    return int(basis)


def _rate(_instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    parse_rate(value, attribute.name)


def _category_rates(_instance: Any, _attribute: "attrs.Attribute[Any]", value: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        raise InvalidValue(f"category_rates must map categories to rates like {{food: '9%'}} (got {value!r})")
    for category, rate in value.items():
        parse_rate(rate, f"category_rates.{category}")


@attrs.frozen
class TaxConfig:
    """How the catalog's prices relate to tax, for promotions written on the other side of it.

    The core prices carry no tax of their own; this tells the promotions block whether they include it
    and at which rate, so a promotion can say "20.00 off before tax" on tax-inclusive prices.
    """

    prices_include_tax: bool = attrs.field(
        default=True, metadata={"help": "Whether the catalog's prices include tax (gross) or not (net)."}
    )
    default_rate: Any = attrs.field(
        default="0%", validator=_rate, metadata={"help": "The tax rate of lines: '13%' or '1300bp'."}
    )
    category_rates: dict[str, Any] = attrs.field(
        factory=dict, validator=_category_rates, metadata={"help": "Rates by category, instead of default_rate."}
    )
    shipping_rate: Any = attrs.field(
        default=None,
        validator=attrs.validators.optional(_rate),
        metadata={"help": "Shipping's rate; default: default_rate."},
    )

    def rate_of(self, category: str) -> int:
        """The rate of a line of ``category`` in basis points."""
        rate = self.category_rates.get(category)
        return parse_rate(rate if rate is not None else self.default_rate)

    @property
    def shipping_basis_points(self) -> int:
        return parse_rate(self.shipping_rate if self.shipping_rate is not None else self.default_rate)


def _share(_instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value is not None:
        parse_share(value, attribute.name)


@attrs.frozen
class FunderShare:
    """One party's part of a co-funded promotion: ``{partner: tea-farm, share: 60%}`` or ``{merchant: 40%}``."""

    partner: str | None = attrs.field(default=None, metadata={"help": "The partner paying this part."})
    share: Any = attrs.field(default=None, validator=_share, metadata={"help": "The partner's share: 60% or 6000bp."})
    merchant: Any = attrs.field(
        default=None, validator=_share, metadata={"help": "The merchant's own share: 40% or 4000bp."}
    )

    def __attrs_post_init__(self) -> None:
        if (self.partner is None) == (self.merchant is None):
            raise InvalidValue("a funder is either '{partner: ID, share: 60%}' or '{merchant: 40%}'")
        if self.partner is not None and (not isinstance(self.partner, str) or not self.partner.strip()):
            raise InvalidValue(f"partner: must be a partner's id (got {self.partner!r})")
        if self.partner is not None and self.share is None:
            raise InvalidValue(f"share: partner {self.partner!r} needs a share like '60%'")
        if self.merchant is not None and self.share is not None:
            raise InvalidValue("share: the merchant's share is written as '{merchant: 40%}'")

    @property
    def basis_points(self) -> int:
        return parse_share(self.share if self.partner is not None else self.merchant)

    def party(self, merchant_id: str) -> str:
        """Who pays: the partner's id, or the merchant's."""
        return self.partner if self.partner is not None else merchant_id


def _funder_shares(_instance: Any, attribute: "attrs.Attribute[Any]", value: list[FunderShare]) -> None:
    if not value:
        return
    total = sum(share.basis_points for share in value)
    if total != 10_000:
        raise InvalidValue(f"the funders' shares must add up to exactly 100% (they add up to {total / 100:g}%)")
    parties = [share.partner if share.partner is not None else "merchant" for share in value]
    twice = sorted({party for party in parties if parties.count(party) > 1})
    if twice:
        raise InvalidValue(f"each funder is named once (twice: {', '.join(twice)})")


@attrs.frozen
class PromotionConfig:
    """One promotion: who may have it, what it discounts, by how much, and how it stacks.

    ``value`` is a percentage (``10`` or ``12.5``) when ``value_type`` is ``percentage`` and money
    (``"20.00 CNY"``) when it is ``fixed``. A promotion applies automatically when ``automatic`` is
    true,
    or when it has no ``code`` and ``automatic`` is left empty; otherwise it needs its ``code`` or a
    coupon issued for it.
    """

    id: str = attrs.field(validator=_non_empty, metadata={"help": "Stable id, kept in usage and reports."})
    value_type: Literal["percentage", "fixed"] = attrs.field(
        metadata={"help": "percentage: value is a percent (10, 12.5); fixed: value is money."}
    )
    value: float | Money = attrs.field(
        metadata={"help": "The discount: a percent (10) or money ('20.00 CNY'), per value_type."}
    )
    description: str = attrs.field(default="", metadata={"help": "Shown to shoppers in the reason."})
    code: str | None = attrs.field(default=None, metadata={"help": "Coupon code that unlocks it (case-insensitive)."})
    automatic: bool | None = attrs.field(
        default=None,
        metadata={"help": "Applies without a code; empty means 'automatic when it has no code'."},
    )
    type: Literal["standard", "buyget"] = attrs.field(
        default="standard", metadata={"help": "standard, or buyget (buy X get Y)."}
    )
    target: Literal["items", "order", "shipping"] = attrs.field(
        default="items", metadata={"help": "What is discounted: items, the order, or shipping."}
    )
    allocation: Literal["each", "across", "once"] = attrs.field(
        default="each",
        metadata={
            "help": "each: per matching line (per unit up to max_quantity); across: spread; once: "
            "max_quantity units in all, cheapest first."
        },
    )
    max_quantity: int | None = attrs.field(
        default=None,
        validator=_optional_positive,
        metadata={"help": "Units per line discounted ('each'); target units in all for buyget."},
    )
    skus: list[str] = attrs.field(factory=list, converter=_codes, metadata={"help": "Lines it applies to."})
    categories: list[str] = attrs.field(factory=list, converter=_codes, metadata={"help": "Categories it applies to."})
    channels: list[str] = attrs.field(
        factory=list, converter=_codes, metadata={"help": "Channel ids or types; empty = any."}
    )
    fulfilments: list[str] = attrs.field(
        factory=list,
        converter=_codes,
        validator=_fulfilment_kinds,
        metadata={"help": "Lines leaving this way (delivery, pickup, carry_out); empty = any."},
    )
    delivery_options: list[str] = attrs.field(
        factory=list,
        converter=_codes,
        metadata={"help": "Lines sent by these shipping options (a quote's option_id); empty = any."},
    )
    regions: list[str] = attrs.field(
        factory=list,
        converter=_codes,
        metadata={"help": "Lines going to an address in these regions (province, state); empty = anywhere."},
    )
    tiers: list[str] = attrs.field(factory=list, converter=_codes, metadata={"help": "Member tiers; empty = anyone."})
    segments: list[str] = attrs.field(
        factory=list,
        converter=_codes,
        metadata={"help": "Member segments (any of); empty = anyone."},
    )
    min_subtotal: Money | None = attrs.field(
        default=None,
        validator=_optional_money,
        metadata={"help": "Spend threshold on the matching lines' list prices ('spend 100, save 20')."},
    )
    min_cart_subtotal: Money | None = attrs.field(
        default=None,
        validator=_optional_money,
        metadata={"help": "Spend threshold on the whole cart, after earlier blocks' discounts."},
    )
    amounts: Literal["as_priced", "tax_inclusive", "tax_exclusive"] = attrs.field(
        default="as_priced",
        metadata={
            "help": "Whether value, cap and spend thresholds include tax; as_priced: as the prices do "
            "(needs 'taxes' otherwise)."
        },
    )
    buy_skus: list[str] = attrs.field(factory=list, converter=_codes, metadata={"help": "buyget: buy."})
    buy_categories: list[str] = attrs.field(
        factory=list, converter=_codes, metadata={"help": "buyget: buy categories."}
    )
    buy_quantity: int | None = attrs.field(
        default=None,
        validator=_optional_positive,
        metadata={"help": "buyget: units to buy per set."},
    )
    get_skus: list[str] = attrs.field(factory=list, converter=_codes, metadata={"help": "buyget: get."})
    get_categories: list[str] = attrs.field(
        factory=list, converter=_codes, metadata={"help": "buyget: get categories."}
    )
    get_quantity: int | None = attrs.field(
        default=None,
        validator=_optional_positive,
        metadata={"help": "buyget: units discounted per set."},
    )
    priority: int = attrs.field(default=0, metadata={"help": "Higher is evaluated first."})
    exclusive: bool = attrs.field(
        default=False, metadata={"help": "When it applies, no other promotion of this block does."}
    )
    stacking_group: str | None = attrs.field(
        default=None, metadata={"help": "At most one promotion per group applies (the best)."}
    )
    cap: Money | None = attrs.field(
        default=None,
        validator=_optional_money,
        metadata={"help": "Most this promotion takes off an order."},
    )
    usage_limit: int | None = attrs.field(
        default=None,
        validator=_optional_positive,
        metadata={"help": "Orders it may be used in, in all."},
    )
    per_member_limit: int | None = attrs.field(
        default=None, validator=_optional_positive, metadata={"help": "Orders per member."}
    )
    budget: Money | None = attrs.field(
        default=None,
        validator=_optional_money,
        metadata={"help": "Campaign budget: money it may give."},
    )
    funder: str | None = attrs.field(
        default=None,
        metadata={"help": "Who pays for it; default the merchant (a partner id otherwise)."},
    )
    funders: list[FunderShare] = attrs.field(
        factory=list,
        validator=_funder_shares,
        metadata={"help": "Several payers by share, summing to 100% (instead of 'funder')."},
    )
    campaign: str | None = attrs.field(default=None, metadata={"help": "Campaign for attribution."})
    starts_at: str | None = attrs.field(
        default=None, validator=_optional_moment, metadata={"help": "ISO 8601 start (inclusive)."}
    )
    ends_at: str | None = attrs.field(
        default=None, validator=_optional_moment, metadata={"help": "ISO 8601 end (exclusive)."}
    )

    def __attrs_post_init__(self) -> None:
        where = f"promotion {self.id!r}"
        if self.value_type == "percentage":
            if isinstance(self.value, (Money, bool)) or not isinstance(self.value, int | float):
                raise InvalidValue(f"{where}: a percentage value must be a number like 10 (got {self.value!r})")
            basis = Fraction(str(self.value)) * 100
            if basis.denominator != 1:
                raise InvalidValue(f"{where}: a percentage may have at most two decimals (got {self.value!r})")
            if not 0 < basis <= 10_000:
                raise InvalidValue(f"{where}: a percentage must be > 0 and <= 100 (got {self.value!r})")
        else:
            if not isinstance(self.value, Money):
                raise InvalidValue(f"{where}: a fixed value must be money like '20.00 CNY' (got {self.value!r})")
            if self.value.amount <= 0:
                raise InvalidValue(f"{where}: a fixed value must be > 0 (got {self.value})")
        if self.code is not None and not self.code.strip():
            raise InvalidValue(f"{where}: 'code' must be non-empty when given (got {self.code!r})")
        if self.type == "buyget":
            if self.target != "items":
                raise InvalidValue(f"{where}: a buyget promotion targets items (got {self.target!r})")
            if self.buy_quantity is None or self.get_quantity is None:
                raise InvalidValue(
                    f"{where}: a buyget promotion needs 'buy_quantity' and 'get_quantity' "
                    f"(got {self.buy_quantity!r} and {self.get_quantity!r})"
                )
        if self.allocation == "once":
            if self.type != "standard" or self.target != "items":
                raise InvalidValue(f"allocation: {where}: 'once' is for standard promotions on items")
            if self.max_quantity is None:
                raise InvalidValue(
                    f"max_quantity: {where} allocates 'once' and needs 'max_quantity', the units discounted in all"
                )
        if self.funder is not None and self.funders:
            raise InvalidValue(f"funders: {where} names 'funder' and 'funders'; give one of them")
        if self.starts_at and self.ends_at and parse_moment(self.starts_at) >= parse_moment(self.ends_at):
            raise InvalidValue(f"{where}: 'starts_at' must be before 'ends_at'")

    @functools.cached_property
    def basis_points(self) -> int:
        """The percentage in basis points (12.5% → 1250); only for percentage promotions. Worked out once:
        every cart priced reads it for every line."""
        return int(Fraction(str(self.value)) * 100)

    @property
    def fixed(self) -> Money:
        """The fixed amount; only for fixed promotions."""
        assert isinstance(self.value, Money)
        return self.value

    @property
    def is_automatic(self) -> bool:
        return self.automatic if self.automatic is not None else self.code is None

    def money_fields(self) -> list[tuple[str, Money]]:
        """The money this promotion is configured with, to check against the merchant's currency."""
        fields = [("value", self.value)] if isinstance(self.value, Money) else []
        for name in ("min_subtotal", "min_cart_subtotal", "cap", "budget"):
            money = getattr(self, name)
            if money is not None:
                fields.append((name, money))
        return fields


def _promotions(value: list[PromotionConfig]) -> list[PromotionConfig]:
    promotions = list(value)
    seen: set[str] = set()
    codes: dict[str, str] = {}
    for promotion in promotions:
        if promotion.id in seen:
            raise InvalidValue(f"promotion ids must be unique ({promotion.id!r} appears twice)")
        seen.add(promotion.id)
        if promotion.code is not None:
            key = promotion.code.strip().upper()
            if key in codes:
                raise InvalidValue(
                    f"coupon code {promotion.code!r} is used by both {codes[key]!r} and {promotion.id!r}"
                )
            codes[key] = promotion.id
    return promotions


@attrs.frozen
class Config:
    """The promotions this block prices, and how they combine (see SEMANTICS.md)."""

    promotions: list[PromotionConfig] = attrs.field(
        factory=list, converter=_promotions, metadata={"help": "The promotions, in config order."}
    )
    taxes: TaxConfig | None = attrs.field(
        default=None,
        metadata={"help": "Whether prices include tax and its rates; needed by promotions with 'amounts'."},
    )
    stacking: Literal["priority"] = attrs.field(
        default="priority",
        metadata={
            "help": "priority: items, then order, then shipping; within each, priority desc then "
            "config order; exclusive and stacking groups honoured."
        },
    )

    def __attrs_post_init__(self) -> None:
        if self.taxes is None:
            for index, promotion in enumerate(self.promotions):
                if promotion.amounts != "as_priced":
                    raise InvalidValue(
                        f"promotions[{index}].amounts: promotion {promotion.id!r} is written "
                        f"{promotion.amounts.replace('_', '-')}, which needs 'taxes' (do prices include tax, "
                        "at which rate)"
                    )
