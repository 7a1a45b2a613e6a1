"""Postal addresses and what a shopper asks for: delivery, or collection at a store."""

from __future__ import annotations

import enum

import attrs


@attrs.frozen
class Address:
    """A delivery address. ``region`` is the province or state, which shipping zones are drawn on."""

    country: str
    region: str = ""
    city: str = ""
    postal_code: str = ""
    line1: str = ""
    name: str = ""
    phone: str = ""
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
    pickup_location: str | None = None
    # The shipping option the shopper picked (a quote's ``option_id``); None lets logistics choose the cheapest.
    option_id: str | None = None
