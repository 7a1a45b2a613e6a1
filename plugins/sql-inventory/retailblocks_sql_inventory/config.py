"""The block's configuration: stock locations, how each channel sources stock, back-orders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import attrs

from retailblocks.errors import InvalidValue, suggestion
from retailblocks.model.limits import MAX_QUANTITY


def _non_negative(_instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUANTITY:
        raise InvalidValue(f"{attribute.name!r} must be an integer >= 0 and <= {MAX_QUANTITY} (got {value!r})")


def _non_empty(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{attribute.name!r} must be a non-empty string (got {value!r})")


def _positive_duration(_instance: Any, attribute: attrs.Attribute[Any], value: timedelta) -> None:
    if value <= timedelta(0):
        raise InvalidValue(f"{attribute.name!r} must be a positive duration (got {value})")


def _coordinate(limit: float) -> Any:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None and not -limit <= value <= limit:
            raise InvalidValue(f"{attribute.name!r} must be between -{limit:g} and {limit:g} (got {value!r})")

    return check


def _kind(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ("warehouse", "store"):
        raise InvalidValue(f"{attribute.name!r} must be 'warehouse' or 'store' (got {value!r})")


def _backorders(_instance: Any, attribute: attrs.Attribute[Any], value: dict[str, int]) -> None:
    bad = sorted(sku for sku, units in value.items() if isinstance(units, bool) or not 0 <= units <= MAX_QUANTITY)
    if bad:
        raise InvalidValue(
            f"{attribute.name!r} must map each SKU to a number of units >= 0 and <= {MAX_QUANTITY} "
            f"(not so for {', '.join(map(repr, bad))})"
        )


@attrs.frozen
class Location:
    """A place that holds stock: a warehouse, or a store that sells from its shelves."""

    id: str = attrs.field(validator=_non_empty, metadata={"help": "The location's id, e.g. 'sh-dc'."})
    name: str = attrs.field(default="", metadata={"help": "A name for people."})
    kind: Literal["warehouse", "store"] = attrs.field(
        default="warehouse", validator=_kind, metadata={"help": "'warehouse' or 'store'."}
    )
    latitude: float | None = attrs.field(
        default=None, validator=_coordinate(90), metadata={"help": "Latitude in degrees."}
    )
    longitude: float | None = attrs.field(
        default=None, validator=_coordinate(180), metadata={"help": "Longitude in degrees."}
    )


@attrs.frozen
class ChannelSourcing:
    """Where one channel sells from, and how much it leaves for the others."""

    locations: list[str] = attrs.field(
        factory=list,
        metadata={"help": "Location ids the channel sells from, most preferred first."},
    )
    safety_stock: int = attrs.field(
        default=0,
        validator=_non_negative,
        metadata={"help": "Units per SKU per location held back from this channel."},
    )


def _default_locations() -> list[Location]:
    return [Location(id="main", name="Main warehouse", kind="warehouse")]


@attrs.frozen
class SqlInventoryConfig:
    """Configuration of the ``sql-inventory`` block."""

    locations: list[Location] = attrs.field(
        factory=_default_locations,
        metadata={"help": "Stock locations (default: one warehouse called 'main')."},
    )
    channels: dict[str, ChannelSourcing] = attrs.field(
        factory=dict,
        metadata={
            "help": "Per channel id: the locations it sells from and its safety stock. A channel "
            "not listed sells from its store location, or else from every warehouse."
        },
    )
    reservation_ttl: timedelta = attrs.field(
        default=timedelta(minutes=15),
        validator=_positive_duration,
        metadata={"help": "How long a reservation holds stock when the caller names no TTL."},
    )
    backorders: dict[str, int] = attrs.field(
        factory=dict,
        validator=_backorders,
        metadata={"help": "SKU -> units that may be sold beyond stock (reserved as back-ordered)."},
    )
    low_stock_threshold: int = attrs.field(
        default=0,
        validator=_non_negative,
        metadata={"help": "Record 'stock.low' when availability at a location drops to this (0: off)."},
    )

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        duplicates = []
        for location in self.locations:
            if location.id in seen:
                duplicates.append(location.id)
            seen.add(location.id)
        if duplicates:
            raise InvalidValue(f"'locations' must have unique ids (got {', '.join(map(repr, duplicates))} twice)")
        for channel_id, sourcing in self.channels.items():
            for index, name in enumerate(sourcing.locations):
                if name not in seen:
                    # Led by the field, so that assembly points at the very list item.
                    raise InvalidValue(
                        f"channels.{channel_id}.locations[{index}]: unknown location {name!r}"
                        f"{suggestion(name, sorted(seen))} (known locations: {', '.join(sorted(seen))})"
                    )

    @property
    def location_ids(self) -> frozenset[str]:
        return frozenset(location.id for location in self.locations)

    @property
    def warehouses(self) -> list[str]:
        return [location.id for location in self.locations if location.kind == "warehouse"]
