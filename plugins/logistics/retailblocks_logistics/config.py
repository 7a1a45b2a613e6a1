"""The logistics block's configuration: zones, carriers and options, ship-from and pickup locations.

Cross-field rules (unknown zone ids, duplicate option ids, rate tiers out of order) are checked when
the configuration is built, so a bad manifest fails at ``blocks assemble``, not at a checkout.
The merchant's currency is not known here; :func:`money_fields` lets the block check it once it is.
"""

# No ``from __future__ import annotations``: the manifest reads these annotations as real types.

import datetime
from collections.abc import Iterator
from typing import Any, Literal

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.model import Money

#: Option ids the block answers without a carrier; configured options may not reuse them.
CLICK_AND_COLLECT = "click-and-collect"
CARRY_OUT = "carry-out"
RESERVED_OPTION_IDS = frozenset({CLICK_AND_COLLECT, CARRY_OUT})


def _non_empty(_instance: Any, attribute: "attrs.Attribute[Any]", value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{attribute.name!r} must be a non-empty string (got {value!r})")


def _non_negative_money(_instance: Any, attribute: "attrs.Attribute[Any]", value: Money | None) -> None:
    if value is not None and value.amount < 0:
        raise InvalidValue(f"{attribute.name!r} cannot be negative (got {value})")


@attrs.frozen
class Zone:
    """Where an option delivers: provinces/states (``regions``) and/or countries (``countries``).

    A zone with regions matches an address whose region is one of them (and, when ``countries`` is
    given too, whose country is one of those); a zone with only countries matches all addresses in
    them.
    """

    id: str = attrs.field(validator=_non_empty, metadata={"help": "The zone's id, used by options."})
    regions: list[str] = attrs.field(
        factory=list,
        metadata={"help": "Province or state names, matched case-insensitively to the address region."},
    )
    countries: list[str] = attrs.field(
        factory=list, metadata={"help": "Country codes (e.g. CN), matched case-insensitively."}
    )

    def __attrs_post_init__(self) -> None:
        if not self.regions and not self.countries:
            raise InvalidValue(f"zone {self.id!r} needs 'regions' or 'countries' (got neither)")


@attrs.frozen
class WeightRate:
    """A price for parcels up to ``up_to_grams``; None is the unbounded last tier."""

    price: Money = attrs.field(validator=_non_negative_money, metadata={"help": "The shipping price."})
    up_to_grams: int | None = attrs.field(
        default=None,
        metadata={"help": "Upper weight bound in grams (inclusive); omit for no bound."},
    )

    def __attrs_post_init__(self) -> None:
        bound = self.up_to_grams
        if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool) or bound <= 0):
            raise InvalidValue(f"'up_to_grams' must be an integer > 0 or omitted (got {bound!r})")


@attrs.frozen
class ValueRate:
    """A price for orders worth at least ``min_order_value``; overrides the weight rates."""

    min_order_value: Money = attrs.field(
        validator=_non_negative_money,
        metadata={"help": "The order value from which this price applies."},
    )
    price: Money = attrs.field(validator=_non_negative_money, metadata={"help": "The shipping price."})


@attrs.frozen
class ShippingOption:
    """One service a carrier sells: where it goes, how long it takes and what it costs."""

    id: str = attrs.field(validator=_non_empty, metadata={"help": "Unique across all carriers."})
    name: str = attrs.field(validator=_non_empty, metadata={"help": "Shown to the shopper."})
    zones: list[str] = attrs.field(metadata={"help": "Ids of the zones this option delivers to."})
    min_days: int = attrs.field(default=1, metadata={"help": "Fewest days to deliver."})
    max_days: int = attrs.field(default=3, metadata={"help": "Most days to deliver."})
    rates: list[WeightRate] = attrs.field(
        factory=list,
        metadata={"help": "Weight tiers, lightest first; the first that holds applies."},
    )
    value_rates: list[ValueRate] = attrs.field(
        factory=list,
        metadata={"help": "Order-value tiers; the highest reached overrides the weight rates."},
    )
    free_over: Money | None = attrs.field(
        default=None,
        validator=_non_negative_money,
        metadata={"help": "Shipping is free for orders worth at least this much."},
    )
    per_extra_parcel: Money | None = attrs.field(
        default=None,
        validator=_non_negative_money,
        metadata={"help": "Carrier surcharge for each parcel beyond the first of a split shipment."},
    )

    def __attrs_post_init__(self) -> None:
        where = f"option {self.id!r}"
        if self.id in RESERVED_OPTION_IDS:
            raise InvalidValue(f"{where}: the id is reserved for the block's own service; choose another")
        if not self.zones:
            raise InvalidValue(f"{where}: 'zones' must name at least one zone (got none)")
        for name in ("min_days", "max_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidValue(f"{where}: {name!r} must be an integer >= 0 (got {value!r})")
        if self.min_days > self.max_days:
            raise InvalidValue(f"{where}: 'min_days' ({self.min_days}) must not exceed 'max_days' ({self.max_days})")
        if not self.rates and not self.value_rates:
            raise InvalidValue(f"{where}: give 'rates' or 'value_rates' (got neither)")
        previous: int | None = 0
        for index, rate in enumerate(self.rates):
            if previous is None:
                raise InvalidValue(
                    f"{where}: rates[{index - 1}] has no 'up_to_grams' bound, so it must be the last tier"
                )
            if rate.up_to_grams is not None and rate.up_to_grams <= previous:
                raise InvalidValue(
                    f"{where}: rates[{index}].up_to_grams must be greater than the tier before "
                    f"({previous}), got {rate.up_to_grams}; list tiers lightest first"
                )
            previous = rate.up_to_grams


@attrs.frozen
class Carrier:
    """A carrier and the options it sells. ``api`` says how bookings reach it."""

    id: str = attrs.field(validator=_non_empty, metadata={"help": "The carrier's id."})
    name: str = attrs.field(validator=_non_empty, metadata={"help": "Shown to the shopper."})
    options: list[ShippingOption] = attrs.field(metadata={"help": "The services this carrier sells."})
    api: Literal["sandbox"] = attrs.field(
        default="sandbox",
        metadata={"help": "Booking API: 'sandbox' books locally with made-up tracking numbers."},
    )


@attrs.frozen
class ShipFrom:
    """A stock location parcels can leave from, with its coordinates for choosing the nearest."""

    id: str = attrs.field(validator=_non_empty, metadata={"help": "The stock location's id."})
    latitude: float = attrs.field(metadata={"help": "Degrees north, -90 to 90."})
    longitude: float = attrs.field(metadata={"help": "Degrees east, -180 to 180."})
    ships: bool = attrs.field(default=True, metadata={"help": "False for a store that sells but cannot ship parcels."})

    def __attrs_post_init__(self) -> None:
        if not -90 <= self.latitude <= 90:
            raise InvalidValue(f"location {self.id!r}: latitude must be in [-90, 90] (got {self.latitude})")
        if not -180 <= self.longitude <= 180:
            raise InvalidValue(f"location {self.id!r}: longitude must be in [-180, 180] (got {self.longitude})")


def _unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise InvalidValue(f"{kind} id {item!r} is used twice; ids must be unique")
        seen.add(item)


@attrs.frozen
class LogisticsConfig:
    """Configuration of the ``logistics`` block."""

    zones: list[Zone] = attrs.field(factory=list, metadata={"help": "Shipping zones."})
    carriers: list[Carrier] = attrs.field(factory=list, metadata={"help": "Carriers and their options."})
    locations: list[ShipFrom] = attrs.field(
        factory=list, metadata={"help": "Locations parcels ship from, with coordinates."}
    )
    pickup_locations: list[str] = attrs.field(factory=list, metadata={"help": "Stores that offer click-and-collect."})
    pickup_ready_in: datetime.timedelta = attrs.field(
        default=datetime.timedelta(hours=2),
        metadata={"help": "How long after the order a click-and-collect order is ready."},
    )

    def __attrs_post_init__(self) -> None:
        _unique("zone", [zone.id for zone in self.zones])
        _unique("carrier", [carrier.id for carrier in self.carriers])
        _unique(
            "shipping option",
            [option.id for carrier in self.carriers for option in carrier.options],
        )
        _unique("location", [location.id for location in self.locations])
        _unique("pickup location", list(self.pickup_locations))
        known = {zone.id for zone in self.zones}
        for carrier in self.carriers:
            for option in carrier.options:
                for zone in option.zones:
                    if zone not in known:
                        raise InvalidValue(
                            f"option {option.id!r} of carrier {carrier.id!r} names zone {zone!r}, "
                            f"which is not configured (zones: {', '.join(sorted(known)) or 'none'})"
                        )
        if self.pickup_ready_in < datetime.timedelta():
            raise InvalidValue(f"'pickup_ready_in' cannot be negative (got {self.pickup_ready_in})")


def money_fields(config: LogisticsConfig) -> Iterator[tuple[str, Money]]:
    """Every amount in ``config`` with its path (``carriers[0].options[1].rates[0].price``)."""
    for c, carrier in enumerate(config.carriers):
        for o, option in enumerate(carrier.options):
            base = f"carriers[{c}].options[{o}]"
            for r, rate in enumerate(option.rates):
                yield f"{base}.rates[{r}].price", rate.price
            for v, value_rate in enumerate(option.value_rates):
                yield f"{base}.value_rates[{v}].min_order_value", value_rate.min_order_value
                yield f"{base}.value_rates[{v}].price", value_rate.price
            if option.free_over is not None:
                yield f"{base}.free_over", option.free_over
            if option.per_extra_parcel is not None:
                yield f"{base}.per_extra_parcel", option.per_extra_parcel
