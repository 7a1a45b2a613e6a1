"""Pure reservation planning: which locations an order's SKUs are taken from, no database in sight.

The block reads a snapshot of availability, asks :func:`plan_reservation` for a plan, and applies it
with conditional updates; if a concurrent checkout took the stock in between, it plans again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from retailblocks.model import StockDemand
from retailblocks.model.limits import MAX_ID_LENGTH, check_quantity, check_text

# Units of a SKU at a location that may come from stock; units of a SKU that may be back-ordered.
_Stock = Callable[[str, str], int]
_Room = Callable[[str], int]


@attrs.frozen
class PlannedLine:
    """Units of one SKU to take at one location; ``backordered`` of them beyond stock."""

    sku: str
    location: str
    quantity: int
    backordered: int = 0

    @property
    def from_stock(self) -> int:
        return self.quantity - self.backordered


@attrs.frozen
class Shortfall:
    """Why no plan exists: the SKU that cannot be covered, how much was asked, how much is there."""

    sku: str
    requested: int
    available: int
    message: str


def sum_demands(demands: Iterable[StockDemand]) -> dict[str, int]:
    """Units per SKU, sorted by SKU: two lines of one SKU are one demand, checked once."""
    totals: dict[str, int] = {}
    for demand in demands:
        check_text(demand.sku, "a demanded SKU", max_length=MAX_ID_LENGTH, allow_empty=False)
        check_quantity(demand.quantity, f"the demand for {demand.sku!r}", minimum=1)
        totals[demand.sku] = check_quantity(
            totals.get(demand.sku, 0) + demand.quantity, f"the demand for {demand.sku!r}", minimum=1
        )
    return dict(sorted(totals.items()))


def plan_reservation(
    demands: Mapping[str, int],
    locations: Sequence[str],
    available: Mapping[tuple[str, str], int],
    backorder_room: Mapping[str, int],
    *,
    allow_split: bool,
) -> list[PlannedLine] | Shortfall:
    """Plan taking ``demands`` (units per SKU) from ``locations`` (most preferred first).

    ``available`` is channel-facing availability per (SKU, location), missing meaning 0;
    ``backorder_room`` the units per SKU that may still be sold beyond stock. Stock comes before
    back-orders, and one location covering the whole order before a split: first one location from
    stock; then, if splitting is allowed, each SKU from the locations in order with any remainder
    back-ordered at the most preferred location; else one location with back-orders for its gaps.
    """
    if not demands:
        return []
    if not locations:
        sku, quantity = next(iter(demands.items()))
        return Shortfall(sku, quantity, 0, f"{sku!r} cannot be had: {_listed(locations)}")

    def stock(sku: str, location: str) -> int:
        return max(0, available.get((sku, location), 0))

    def room(sku: str) -> int:
        return max(0, backorder_room.get(sku, 0))

    whole = _one_location(demands, locations, stock, lambda _sku: 0)
    if whole is not None:
        return whole
    if allow_split:
        return _split(demands, locations, stock, room)
    whole = _one_location(demands, locations, stock, room)
    if whole is not None:
        return whole
    return _single_location_shortfall(demands, locations, stock, room)


def _one_location(
    demands: Mapping[str, int],
    locations: Sequence[str],
    stock: _Stock,
    room: _Room,
) -> list[PlannedLine] | None:
    for location in locations:
        if all(quantity - stock(sku, location) <= room(sku) for sku, quantity in demands.items()):
            return [
                PlannedLine(sku, location, quantity, max(0, quantity - stock(sku, location)))
                for sku, quantity in demands.items()
            ]
    return None


def _split(
    demands: Mapping[str, int], locations: Sequence[str], stock: _Stock, room: _Room
) -> list[PlannedLine] | Shortfall:
    lines: list[PlannedLine] = []
    for sku, quantity in demands.items():
        taken: dict[str, int] = {}
        remaining = quantity
        for location in locations:
            take = min(remaining, stock(sku, location))
            if take > 0:
                taken[location] = take
                remaining -= take
            if remaining == 0:
                break
        if remaining > room(sku):
            total = sum(stock(sku, location) for location in locations)
            return Shortfall(
                sku,
                quantity,
                total + room(sku),
                f"only {total + room(sku)} of {quantity} units of {sku!r} can be had at {_listed(locations)}",
            )
        backordered = {locations[0]: remaining} if remaining else {}
        for location in locations:
            units = taken.get(location, 0) + backordered.get(location, 0)
            if units:
                lines.append(PlannedLine(sku, location, units, backordered.get(location, 0)))
    return lines


def _single_location_shortfall(
    demands: Mapping[str, int], locations: Sequence[str], stock: _Stock, room: _Room
) -> Shortfall:
    def best(sku: str) -> int:
        return max((stock(sku, location) for location in locations), default=0) + room(sku)

    for sku, quantity in demands.items():
        if best(sku) < quantity:
            return Shortfall(
                sku,
                quantity,
                best(sku),
                f"only {best(sku)} of {quantity} units of {sku!r} can be had at any one location "
                f"of {_listed(locations)}",
            )
    # Every SKU fits somewhere, just not all of them in the same place.
    first = locations[0]
    sku, quantity = next(
        (sku, quantity) for sku, quantity in demands.items() if quantity - stock(sku, first) > room(sku)
    )
    return Shortfall(
        sku,
        quantity,
        best(sku),
        f"no single location of {_listed(locations)} has every item of the order "
        f"({sku!r} is short at {first!r}) and splitting is not allowed",
    )


def _listed(locations: Sequence[str]) -> str:
    return ", ".join(map(repr, locations)) if locations else "no location (the channel sells from none)"
