"""The ``sql-inventory`` block: stock per location in the stack's database, reserved, allocated,
shipped and returned with conditional updates, every on-hand change written to a movement ledger."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from retailblocks import AuditFinding, Block, Capability, FlowContext, StackView, hookimpl
from retailblocks.errors import InvalidValue, suggestion
from retailblocks.hookspecs.lifecycle import unknown
from retailblocks.model import (
    Channel,
    ChannelType,
    Merchant,
    Parcel,
    Reservation,
    ReservedStock,
    StockDemand,
    StockLevel,
)
from retailblocks_sql_inventory import stock
from retailblocks_sql_inventory.audit import audit
from retailblocks_sql_inventory.config import SqlInventoryConfig
from retailblocks_sql_inventory.movements import Ledger
from retailblocks_sql_inventory.reservations import EXPIRY_BATCH, Reservations
from retailblocks_sql_inventory.rules import StockRules
from retailblocks_sql_inventory.stock import Movement
from retailblocks_sql_inventory.tables import MIGRATIONS

if TYPE_CHECKING:
    from retailblocks.storage import Migration


class SqlInventory(Block):
    """Stock per location with reservations, allocations, back-orders and a movement ledger: the hooks and
    the operator API, over the reservations (reservations.py) and the ledger (movements.py)."""

    name: ClassVar[str] = "sql-inventory"
    # Its permissions, shown by `blocks plugins` and checked on every statement in tests: its own tables,
    # and no table of the core.
    owns_tables: ClassVar[tuple[str, ...]] = (
        "sql_inventory_allocations",
        "sql_inventory_backorders",
        "sql_inventory_levels",
        "sql_inventory_movements",
        "sql_inventory_operations",
        "sql_inventory_reservation_lines",
        "sql_inventory_reservations",
    )
    reads_core_tables: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.INVENTORY})
    core_api: ClassVar[str] = "1.8"  # storage.together
    Config: ClassVar[type[Any]] = SqlInventoryConfig
    description: ClassVar[str] = (
        "Stock per warehouse and store in the stack's database: per-channel sourcing and safety "
        "stock, reservations that expire, back-orders, and a movement ledger."
    )

    config: SqlInventoryConfig

    def __init__(self, config: SqlInventoryConfig, *, block_id: str | None = None):
        if not isinstance(config, SqlInventoryConfig):
            raise InvalidValue(f"sql-inventory needs a SqlInventoryConfig (got {type(config).__name__})")
        super().__init__(config, block_id=block_id)
        self.rules = StockRules(config)
        self.reservations = Reservations(self.rules)
        self.ledger = Ledger(self.rules)

    @property
    def catalog(self) -> frozenset[str] | None:
        """The SKUs stock may be held of (the stack's catalog once it started; None: any SKU)."""
        return self.rules.catalog

    # -- lifecycle -----------------------------------------------------------------------------

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def stack_names(self) -> Mapping[str, Sequence[str]]:
        return {"location": sorted(self.config.location_ids)}

    @hookimpl
    def stack_check(
        self, merchant: Merchant, channels: Sequence[Channel], names: Mapping[str, frozenset[str]]
    ) -> Sequence[str]:
        """References the configuration makes to the rest of the manifest that lead nowhere.

        A channel the manifest does not declare would have its sourcing never apply; a back-order
        allowance for a SKU the catalog lacks could never be sold; a store channel selling from a
        location this block does not hold would fail its first checkout.
        """
        declared = [channel.id for channel in channels]
        problems = []
        for channel_id in self.config.channels:
            if channel_id not in declared:
                close = difflib.get_close_matches(channel_id, declared, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(
                    f"channels.{channel_id}: the manifest declares no channel {channel_id!r} "
                    f"(channels: {', '.join(declared) or 'none'}){hint}"
                )
        for sku in self.config.backorders:
            if sku not in names["sku"]:
                problems.append(unknown(f"backorders.{sku}", "sku", sku, names["sku"]))
        for channel in channels:
            sourcing = self.config.channels.get(channel.id)
            if sourcing is not None and sourcing.locations:
                continue
            if channel.type == ChannelType.STORE and channel.location not in self.config.location_ids:
                problems.append(
                    f"locations: store channel {channel.id!r} sells from location {channel.location!r}, which is "
                    f"not among this block's locations ({', '.join(sorted(self.config.location_ids))})"
                    f"{suggestion(channel.location or '', sorted(self.config.location_ids))}; add it, or give the "
                    f"channel its locations under 'channels:'"
                )
        return problems

    @hookimpl
    def stack_startup(self, stack: StackView) -> None:
        # Stock of a SKU the catalog lacks could never be sold; the stack's catalog says what exists.
        self.rules.catalog = frozenset(stack.catalog)

    @hookimpl
    def stack_audit(self, ctx: FlowContext) -> Sequence[AuditFinding]:
        return audit(ctx.db)

    @hookimpl
    def stack_maintain(self, ctx: FlowContext) -> None:
        """Release active reservations whose time is up, a batch at a time."""
        while self.reservations.expire_batch(ctx) == EXPIRY_BATCH:
            pass

    # -- where a channel sells from ------------------------------------------------------------

    def channel_locations(self, channel: Channel | None) -> list[str]:
        """The locations ``channel`` sells from, most preferred first."""
        return self.rules.channel_locations(channel)

    def safety_stock(self, channel: Channel | None) -> int:
        return self.rules.safety_stock(channel)

    @hookimpl
    def inventory_locations(self, ctx: FlowContext) -> Sequence[str]:
        return self.rules.channel_locations(ctx.channel)

    @hookimpl
    def inventory_available(self, ctx: FlowContext, skus: Sequence[str]) -> Mapping[str, int]:
        """Units per SKU the channel can sell: stock over its locations after its safety stock, plus
        what the SKU's back-order allowance still has room for."""
        wanted = list(dict.fromkeys(skus))
        if not wanted:
            return {}
        locations = self.rules.channel_locations(ctx.channel)
        safety = self.rules.safety_stock(ctx.channel)
        available = stock.read_available(ctx.db, wanted, locations)
        room = self.rules.backorder_room(ctx.db, wanted)
        totals = {sku: room.get(sku, 0) for sku in wanted}
        for (sku, _location), units in available.items():
            totals[sku] += max(0, units - safety)
        return totals

    # -- reservations and orders ---------------------------------------------------------------

    @hookimpl
    def inventory_reserve(
        self,
        ctx: FlowContext,
        demands: Sequence[StockDemand],
        locations: Sequence[str],
        allow_split: bool,
        ttl: timedelta,
    ) -> Reservation:
        return self.reservations.reserve(ctx, demands, locations, allow_split, ttl)

    @hookimpl
    def inventory_commit(self, ctx: FlowContext, reservation_id: str, order_id: str) -> None:
        self.reservations.commit(ctx, reservation_id, order_id)

    @hookimpl
    def inventory_release(self, ctx: FlowContext, reservation_id: str) -> None:
        self.reservations.release(ctx, reservation_id)

    @hookimpl
    def inventory_fulfil(self, ctx: FlowContext, order_id: str, parcels: Sequence[Parcel]) -> None:
        self.ledger.fulfil(ctx, order_id, parcels)

    @hookimpl
    def inventory_returned(self, ctx: FlowContext, order_id: str) -> Mapping[str, int]:
        return self.ledger.returned(ctx, order_id)

    @hookimpl
    def inventory_return(self, ctx: FlowContext, order_id: str, items: Sequence[ReservedStock], key: str) -> None:
        self.ledger.give_back(ctx, order_id, items, key)

    # -- operator movements --------------------------------------------------------------------

    @hookimpl
    def inventory_adjust(self, ctx: FlowContext, sku: str, location: str, delta: int, reason: str, key: str) -> int:
        kind = "receive" if isinstance(delta, int) and delta > 0 else "adjust"
        return self.ledger.move(ctx, sku, location, delta, kind=kind, reason=reason, key=key)

    @hookimpl
    def inventory_levels(self, ctx: FlowContext, skus: Sequence[str]) -> Sequence[StockLevel]:
        return stock.read_levels(ctx.db, skus)

    def receive(
        self, ctx: FlowContext, sku: str, location: str, quantity: int, *, reason: str = "", key: str | None = None
    ) -> int:
        """Goods arrived: ``quantity`` more on hand. Returns the new on hand."""
        return self.ledger.receive(ctx, sku, location, quantity, reason=reason, key=key)

    def adjust(
        self, ctx: FlowContext, sku: str, location: str, delta: int, *, reason: str, key: str | None = None
    ) -> int:
        """A correction (damage, loss, found goods) with a reason. Returns the new on hand."""
        return self.ledger.adjust(ctx, sku, location, delta, reason=reason, key=key)

    def count(
        self, ctx: FlowContext, sku: str, location: str, counted: int, *, reason: str = "", key: str | None = None
    ) -> int:
        """A stock count, recorded as a ``count`` movement of the difference. Returns the new on hand."""
        return self.ledger.count(ctx, sku, location, counted, reason=reason, key=key)

    def levels(self, ctx: FlowContext, skus: Sequence[str] = ()) -> list[StockLevel]:
        """Stock of ``skus`` (all when empty) at every location."""
        return self.ledger.levels(ctx, skus)

    def movements(self, ctx: FlowContext, skus: Sequence[str] = (), *, limit: int | None = None) -> list[Movement]:
        """The ledger, oldest first; the newest ``limit`` rows when given."""
        return self.ledger.movements(ctx, skus, limit=limit)
