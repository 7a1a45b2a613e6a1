"""The logistics block passes the logistics contract of the block kit, on both databases and currencies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retailblocks_logistics import Logistics
from retailblocks_logistics.contract_config import contract_config

from retailblocks.testing.contracts.lifecycle import LifecycleContract
from retailblocks.testing.contracts.logistics import LogisticsContract


class TestLogisticsConformance(LogisticsContract, LifecycleContract):
    block_class = Logistics

    def config_for(self, currency: str) -> Mapping[str, Any]:
        return contract_config(currency)
