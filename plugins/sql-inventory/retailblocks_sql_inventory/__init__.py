"""Stock per location with reservations, back-orders and a movement ledger (a reference block)."""

from retailblocks_sql_inventory.block import SqlInventory
from retailblocks_sql_inventory.config import ChannelSourcing, Location, SqlInventoryConfig
from retailblocks_sql_inventory.stock import Movement

__all__ = ["ChannelSourcing", "Location", "Movement", "SqlInventory", "SqlInventoryConfig"]
