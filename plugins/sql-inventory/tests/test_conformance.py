"""The inventory and lifecycle contracts every inventory block must meet, run against this one."""

from __future__ import annotations

from retailblocks_sql_inventory import SqlInventory

from retailblocks.testing.conformance import InventoryContract, LifecycleContract


class TestSqlInventoryMeetsTheContract(InventoryContract, LifecycleContract):
    block_class = SqlInventory
    config = {"locations": [{"id": "store-1", "kind": "store"}]}
