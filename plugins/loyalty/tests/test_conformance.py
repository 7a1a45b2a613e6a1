"""The loyalty block passes the membership contract of the block kit, on both databases and currencies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retailblocks_loyalty import Loyalty
from retailblocks_loyalty.contract_config import contract_config

from retailblocks.testing.contracts.lifecycle import LifecycleContract
from retailblocks.testing.contracts.membership import MembershipContract


class TestLoyaltyMembership(MembershipContract, LifecycleContract):
    block_class = Loyalty

    def config_for(self, currency: str) -> Mapping[str, Any]:
        return contract_config(currency)
