"""The contracts a block's tests inherit (see docs/testing-blocks.md)."""

from retailblocks.testing.contracts._base import Contract, secret_leaks
from retailblocks.testing.contracts.inventory import InventoryContract
from retailblocks.testing.contracts.lifecycle import LifecycleContract
from retailblocks.testing.contracts.logistics import LogisticsContract
from retailblocks.testing.contracts.marketing import MarketingContract
from retailblocks.testing.contracts.membership import MembershipContract
from retailblocks.testing.contracts.payment import REFUSED, PaymentContract, at_once
from retailblocks.testing.contracts.reach import ReachContract

__all__ = [
    "REFUSED",
    "Contract",
    "InventoryContract",
    "LifecycleContract",
    "LogisticsContract",
    "MarketingContract",
    "MembershipContract",
    "PaymentContract",
    "ReachContract",
    "at_once",
    "secret_leaks",
]
