"""The contracts a block's tests inherit (see docs/testing-blocks.md)."""

from retailblocks.testing.contracts._base import Contract, secret_leaks
from retailblocks.testing.contracts.inventory import InventoryContract
from retailblocks.testing.contracts.lifecycle import LifecycleContract
from retailblocks.testing.contracts.payment import REFUSED, PaymentContract, at_once

__all__ = [
    "REFUSED",
    "Contract",
    "InventoryContract",
    "LifecycleContract",
    "PaymentContract",
    "at_once",
    "secret_leaks",
]
