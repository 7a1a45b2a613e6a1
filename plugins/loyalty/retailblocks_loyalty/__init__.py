"""retailblocks-loyalty: members across channels, tiers and a double-entry points ledger.

The block is :class:`Loyalty` (entry point ``loyalty``); its configuration is :class:`LoyaltyConfig`.
"""

from retailblocks_loyalty.block import Loyalty
from retailblocks_loyalty.config import EarningRules, LoyaltyConfig, PartnerExchange, Tier
from retailblocks_loyalty.ledger import InsufficientPoints
from retailblocks_loyalty.points import JournalEntry

__all__ = [
    "EarningRules",
    "InsufficientPoints",
    "JournalEntry",
    "Loyalty",
    "LoyaltyConfig",
    "PartnerExchange",
    "Tier",
]
