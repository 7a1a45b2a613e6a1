"""What a channel may sell now, and where the stock is: for listings, pick-up in store and "which store
has it"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.flows.capabilities import stock_locations
from retailblocks.hookspecs import inventory
from retailblocks.model.limits import MAX_ID_LENGTH, check_text

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

#: SKUs one question may name: enough for a page of a listing, bounded so a caller cannot ask for all.
MAX_SKUS = 200


@attrs.frozen
class Availability:
    #: Units the channel may sell now, by SKU (after safety stock, over the channel's locations).
    sellable: Mapping[str, int]
    #: Units available at each of the channel's locations, by SKU then location (before safety stock).
    by_location: Mapping[str, Mapping[str, int]]


def availability(stack: Runtime, channel: str, skus: Sequence[str]) -> Availability:
    if not skus or len(skus) > MAX_SKUS:
        raise InvalidValue(f"name 1 to {MAX_SKUS} SKUs (got {len(skus)})")
    for sku in skus:
        check_text(sku, "a SKU", max_length=MAX_ID_LENGTH, allow_empty=False)
    wanted = list(dict.fromkeys(skus))
    with stack.context(channel, flow="read", read_only=True) as ctx:
        sellable = dict(stack.hooks.call(inventory.inventory_available, ctx, wanted))
        locations = set(stock_locations(stack.hooks, ctx))
        levels = stack.hooks.maybe(inventory.inventory_levels, ctx, wanted) or ()
    by_location: dict[str, dict[str, int]] = {sku: {} for sku in wanted}
    for level in levels:
        if level.sku in by_location and level.location in locations:
            by_location[level.sku][level.location] = max(0, level.available)
    return Availability({sku: sellable.get(sku, 0) for sku in wanted}, by_location)
