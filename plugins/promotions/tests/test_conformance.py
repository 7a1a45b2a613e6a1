"""The promotions block passes the marketing contract of the block kit, on both databases and currencies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retailblocks_promotions import Promotions
from retailblocks_promotions.contract_config import contract_config

from retailblocks.testing.contracts.lifecycle import LifecycleContract
from retailblocks.testing.contracts.marketing import MarketingContract


class TestPromotionsConformance(MarketingContract, LifecycleContract):
    block_class = Promotions
    coupon = "KIT-ONCE"
    issued_promotion = "kit-issued"

    def config_for(self, currency: str) -> Mapping[str, Any]:
        return contract_config(currency)
