"""The inventory contract every inventory block must meet, run against this one."""

from __future__ import annotations

from retailblocks_sql_inventory import SqlInventory
from retailblocks_sql_inventory.config import Location, SqlInventoryConfig

from retailblocks.testing.conformance import InventoryContract


class TestSqlInventoryMeetsTheContract(InventoryContract):
    def make_block(self) -> SqlInventory:
        return SqlInventory(SqlInventoryConfig(locations=[Location(id="store-1", kind="store")]))
