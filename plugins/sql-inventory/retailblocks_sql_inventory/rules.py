"""What every part of the block checks and reads the same way: where a channel sells from, its safety
stock, which SKUs and locations exist, back-order room, and the low-stock signal."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from retailblocks import FlowContext
from retailblocks.errors import InvalidValue, UnknownSku, suggestion
from retailblocks.model import Channel, ChannelType, ReservedStock
from retailblocks.model.limits import MAX_ID_LENGTH, check_text
from retailblocks_sql_inventory import stock
from retailblocks_sql_inventory.config import SqlInventoryConfig
from retailblocks_sql_inventory.engine import PlannedLine
from retailblocks_sql_inventory.stock import Pair


class StockRules:
    def __init__(self, config: SqlInventoryConfig):
        self.config = config
        #: The SKUs stock may be held of: the stack's catalog once the stack has started; None for a
        #: block used on its own, which then takes any SKU.
        self.catalog: frozenset[str] | None = None

    def channel_locations(self, channel: Channel | None) -> list[str]:
        """The locations ``channel`` sells from, most preferred first."""
        if channel is not None:
            sourcing = self.config.channels.get(channel.id)
            if sourcing is not None and sourcing.locations:
                return list(sourcing.locations)
            if channel.type == ChannelType.STORE and channel.location:
                return [channel.location]
        return self.config.warehouses

    def safety_stock(self, channel: Channel | None) -> int:
        sourcing = self.config.channels.get(channel.id) if channel is not None else None
        return sourcing.safety_stock if sourcing is not None else 0

    def check_locations(self, locations: Iterable[str]) -> None:
        unknown = [location for location in locations if location not in self.config.location_ids]
        if unknown:
            raise InvalidValue(
                f"unknown stock location(s) {', '.join(map(repr, unknown))}; known locations: "
                f"{', '.join(sorted(self.config.location_ids))}"
            )

    def check_item(self, sku: str, location: str) -> None:
        check_text(sku, "a SKU", max_length=MAX_ID_LENGTH, allow_empty=False)
        if self.catalog is not None and sku not in self.catalog:
            known = sorted(self.catalog)
            raise UnknownSku(
                f"unknown SKU {sku!r}{suggestion(sku, known)}: the catalog does not have it "
                f"(add it to the manifest's 'catalog:' first)"
            )
        self.check_locations([location])

    def backorder_room(self, connection: sa.Connection, skus: Sequence[str]) -> dict[str, int]:
        limits = {sku: self.config.backorders[sku] for sku in skus if sku in self.config.backorders}
        if not limits:
            return {}
        outstanding = stock.read_outstanding(connection, limits)
        return {sku: max(0, limit - outstanding.get(sku, 0)) for sku, limit in limits.items()}

    def record_low(self, ctx: FlowContext, decreases: Mapping[Pair, int]) -> None:
        """Record ``stock.low`` where availability just crossed down to the threshold."""
        threshold = self.config.low_stock_threshold
        if threshold <= 0:
            return
        for (sku, location), decrease in sorted(decreases.items()):
            after = stock.read_level(ctx.db, sku, location).available
            if after + decrease > threshold >= after:
                ctx.record(
                    "stock.low",
                    {"sku": sku, "location": location, "available": after, "threshold": threshold},
                )


def backordered_by_sku(lines: Iterable[PlannedLine]) -> dict[str, int]:
    units: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.backordered:
            units[line.sku] += line.backordered
    return dict(units)


def reserved_stock(plan: Sequence[PlannedLine]) -> tuple[ReservedStock, ...]:
    lines: list[ReservedStock] = []
    for line in plan:
        if line.from_stock:
            lines.append(ReservedStock(line.sku, line.location, line.from_stock))
        if line.backordered:
            lines.append(ReservedStock(line.sku, line.location, line.backordered, backordered=True))
    return tuple(lines)


def lines_payload(lines: Iterable[PlannedLine]) -> list[dict[str, Any]]:
    return [
        {
            "sku": line.sku,
            "location": line.location,
            "quantity": line.quantity,
            "backordered": line.backordered,
        }
        for line in lines
    ]
