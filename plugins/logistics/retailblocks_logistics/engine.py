"""Pure logistics rules: an address's zone, what an option costs, distances, status changes.

Nothing here touches the database or the clock, so the rules are tested directly and read in one
place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from retailblocks.errors import InvalidValue
from retailblocks.model import Address, Money, ShipmentStatus
from retailblocks_logistics.config import ShipFrom, ShippingOption, Zone

#: Mean Earth radius (IUGG), in kilometres.
EARTH_RADIUS_KM = 6371.0088

S = ShipmentStatus
#: The statuses a shipment may move to from each status; final statuses move nowhere.
TRANSITIONS: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    S.PENDING: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.IN_TRANSIT, S.CANCELLED}),
    S.IN_TRANSIT: frozenset({S.DELIVERED, S.CANCELLED}),
    S.READY_FOR_PICKUP: frozenset({S.COLLECTED, S.CANCELLED}),
    S.DELIVERED: frozenset(),
    S.COLLECTED: frozenset(),
    S.CANCELLED: frozenset(),
}
#: Statuses in which the goods have not left, so a cancellation needs no return.
CANCELLABLE: frozenset[ShipmentStatus] = frozenset({S.PENDING, S.READY_FOR_PICKUP})


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def zone_of(address: Address, zones: Sequence[Zone]) -> Zone | None:
    """The zone ``address`` is in: a zone naming its region wins over one naming only its country;
    among equals the first configured wins."""
    region = _norm(address.region)
    country = _norm(address.country)
    country_wide: Zone | None = None
    for zone in zones:
        in_country = not zone.countries or country in {_norm(c) for c in zone.countries}
        if zone.regions:
            if region and in_country and region in {_norm(r) for r in zone.regions}:
                return zone
        elif in_country and country_wide is None:
            country_wide = zone
    return country_wide


def shipping_price(option: ShippingOption, weight_grams: int, order_value: Money) -> Money | None:
    """What ``option`` charges for one parcel of ``weight_grams`` on an order worth ``order_value``.

    The free-shipping threshold comes first (reached at exactly ``free_over``); then the highest
    order-value tier reached; then the first weight tier whose bound holds. None when the parcel is
    heavier than every tier, so the option cannot carry it.
    """
    if option.free_over is not None and order_value >= option.free_over:
        return Money.zero(order_value.currency)
    reached = [rate for rate in option.value_rates if order_value >= rate.min_order_value]
    if reached:
        return max(reached, key=lambda rate: rate.min_order_value.amount).price
    for rate in option.rates:
        if rate.up_to_grams is None or weight_grams <= rate.up_to_grams:
            return rate.price
    return None


def extra_parcel_charge(option: ShippingOption, parcels: int, currency: str) -> Money:
    """The carrier's surcharge for the parcels of a split shipment beyond the first."""
    if option.per_extra_parcel is None or parcels <= 1:
        return Money.zero(currency)
    return option.per_extra_parcel * (parcels - 1)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points (haversine formula), in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def rank_by_distance(
    candidates: Sequence[str],
    locations: Sequence[ShipFrom],
    latitude: float | None,
    longitude: float | None,
) -> list[str]:
    """``candidates`` nearest first, without those configured as not shipping.

    Candidates the configuration does not know keep their relative order after the known ones
    (nothing says they cannot ship, nor where they are). Without coordinates the candidates keep
    their order. Ties keep the candidates' order.
    """
    by_id = {location.id: location for location in locations}
    shipping = [c for c in dict.fromkeys(candidates) if c not in by_id or by_id[c].ships]
    if latitude is None or longitude is None:
        return shipping
    known = [c for c in shipping if c in by_id]
    unknown = [c for c in shipping if c not in by_id]
    known.sort(key=lambda c: distance_km(latitude, longitude, by_id[c].latitude, by_id[c].longitude))
    return known + unknown


def parse_status(value: object) -> ShipmentStatus:
    """``value`` as a :class:`ShipmentStatus`, or InvalidValue listing the statuses there are."""
    try:
        return ShipmentStatus(str(value))
    except ValueError:
        choices = ", ".join(status.value for status in ShipmentStatus)
        raise InvalidValue(f"unknown shipment status {value!r}; expected one of: {choices}") from None


def check_transition(shipment_id: str, current: ShipmentStatus, new: ShipmentStatus) -> None:
    """Raise InvalidValue naming both states unless ``current`` may become ``new``."""
    if new in TRANSITIONS[current]:
        return
    allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing (it is final)"
    raise InvalidValue(
        f"shipment {shipment_id!r} cannot move from {current.value!r} to {new.value!r}; "
        f"from {current.value!r} it may move to: {allowed}"
    )
