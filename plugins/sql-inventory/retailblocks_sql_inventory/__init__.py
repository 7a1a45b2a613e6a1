"""Stock per location with reservations, back-orders and a movement ledger (a reference block)."""

# The names are loaded when first asked for, not when the package is imported: `blocks --help` imports this
# package's command module, which must not pull in the block and its database layer.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["ChannelSourcing", "Location", "Movement", "SqlInventory", "SqlInventoryConfig"]
