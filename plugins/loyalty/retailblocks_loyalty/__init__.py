"""retailblocks-loyalty: members across channels, tiers and a double-entry points ledger.

The block is :class:`Loyalty` (entry point ``loyalty``); its configuration is :class:`LoyaltyConfig`.
"""

# The names are loaded when first asked for, not when the package is imported: `blocks --help` imports this
# package's command module, which must not pull in the block and its database layer.
from __future__ import annotations

from typing import TYPE_CHECKING

from retailblocks.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "EarningRules",
    "InsufficientPoints",
    "JournalEntry",
    "Loyalty",
    "LoyaltyConfig",
    "PartnerExchange",
    "Tier",
]
