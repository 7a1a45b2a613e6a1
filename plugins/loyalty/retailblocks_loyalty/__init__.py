"""retailblocks-loyalty: members across channels, tiers and a double-entry points ledger.

The block is :class:`Loyalty` (entry point ``loyalty``); its configuration is :class:`LoyaltyConfig`.
"""

# The names are loaded when first asked for, not when the package is imported: `blocks --help` imports this
# package's command module, which must not pull in the block and its database layer.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retailblocks_loyalty.block import Loyalty
    from retailblocks_loyalty.config import EarningRules, LoyaltyConfig, PartnerExchange, Tier
    from retailblocks_loyalty.ledger import InsufficientPoints
    from retailblocks_loyalty.points import JournalEntry

_EXPORTS = {
    "EarningRules": "retailblocks_loyalty.config",
    "InsufficientPoints": "retailblocks_loyalty.ledger",
    "JournalEntry": "retailblocks_loyalty.points",
    "Loyalty": "retailblocks_loyalty.block",
    "LoyaltyConfig": "retailblocks_loyalty.config",
    "PartnerExchange": "retailblocks_loyalty.config",
    "Tier": "retailblocks_loyalty.config",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "EarningRules",
    "InsufficientPoints",
    "JournalEntry",
    "Loyalty",
    "LoyaltyConfig",
    "PartnerExchange",
    "Tier",
]
