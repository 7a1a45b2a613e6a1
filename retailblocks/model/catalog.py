"""Products as the core knows them: what a SKU is, what it costs, and how heavy it is."""

from __future__ import annotations

import attrs

from retailblocks.model._validators import non_empty, non_negative
from retailblocks.model.money import Money


@attrs.frozen
class Product:
    """A sellable SKU with its list price; channels may override the price and restrict the assortment."""

    sku: str = attrs.field(validator=non_empty)
    title: str = attrs.field(validator=non_empty)
    price: Money
    category: str = "general"
    weight_grams: int = attrs.field(default=0, validator=non_negative)
    # channel id -> price in that channel; absent channels sell at ``price``.
    channel_prices: dict[str, Money] = attrs.field(factory=dict)
    # channel ids that sell this SKU; empty means every channel.
    channels: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset)

    def price_in(self, channel_id: str) -> Money:
        return self.channel_prices.get(channel_id, self.price)

    def sold_in(self, channel_id: str) -> bool:
        return not self.channels or channel_id in self.channels
