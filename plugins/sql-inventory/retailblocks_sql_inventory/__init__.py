"""Stock per location with reservations, back-orders and a movement ledger (a reference block)."""

# The names are loaded when first asked for, not when the package is imported: `blocks --help` imports this
# package's command module, which must not pull in the block and its database layer.
from __future__ import annotations

from typing import TYPE_CHECKING

from retailblocks.lazy import lazy_exports

if TYPE_CHECKING:
    from retailblocks_sql_inventory.block import SqlInventory
    from retailblocks_sql_inventory.config import ChannelSourcing, Location, SqlInventoryConfig
    from retailblocks_sql_inventory.stock import Movement

_EXPORTS = {
    "ChannelSourcing": "retailblocks_sql_inventory.config",
    "Location": "retailblocks_sql_inventory.config",
    "Movement": "retailblocks_sql_inventory.stock",
    "SqlInventory": "retailblocks_sql_inventory.block",
    "SqlInventoryConfig": "retailblocks_sql_inventory.config",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = ["ChannelSourcing", "Location", "Movement", "SqlInventory", "SqlInventoryConfig"]
