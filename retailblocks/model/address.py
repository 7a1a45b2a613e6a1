"""Postal addresses and what a shopper asks for: delivery, or collection at a store."""

from __future__ import annotations

import enum

import attrs

from retailblocks.model._validators import text
from retailblocks.model.limits import MAX_ID_LENGTH, MAX_SLUG_LENGTH, MAX_TEXT_LENGTH


def _line(what: str) -> str:
    field: str = attrs.field(default="", validator=text(f"an address's {what}", MAX_TEXT_LENGTH, allow_empty=True))
    return field


@attrs.frozen
class Address:
    """A delivery address. ``region`` is the province or state, which shipping zones are drawn on."""

    country: str = attrs.field(validator=text("an address's country", MAX_TEXT_LENGTH, allow_empty=True))
    region: str = _line("region")
    city: str = _line("city")
    postal_code: str = _line("postal code")
    line1: str = _line("line1")
    name: str = _line("name")
    phone: str = _line("phone")
    # Coordinates, when known, let logistics choose the nearest location.
    latitude: float | None = None
    longitude: float | None = None


class FulfilmentKind(enum.StrEnum):
    DELIVERY = "delivery"  # ship to an address
    PICKUP = "pickup"  # click-and-collect at a store
    CARRY_OUT = "carry_out"  # the shopper walks out with it (store sale, scan-and-go)


@attrs.frozen
class Fulfilment:
    """How the order reaches the shopper."""

    kind: FulfilmentKind = attrs.field(converter=FulfilmentKind)
    address: Address | None = None
    pickup_location: str | None = attrs.field(
        default=None, validator=text("a pickup location", MAX_SLUG_LENGTH, optional=True)
    )
    # The shipping option the shopper picked (a quote's ``option_id``); None lets logistics choose the cheapest.
    option_id: str | None = attrs.field(default=None, validator=text("a shipping option", MAX_ID_LENGTH, optional=True))
