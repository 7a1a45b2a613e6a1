"""retailblocks-promotions: a promotion engine with coupons, usage limits, budgets and explicit
stacking.

The block (:class:`Promotions`) answers the marketing hooks; :mod:`retailblocks_promotions.engine`
is the
pure calculation it runs, usable on its own; SEMANTICS.md says how every amount is worked out.
"""

from retailblocks_promotions.block import Promotions
from retailblocks_promotions.config import Config, PromotionConfig
from retailblocks_promotions.usage import Redemption

__all__ = ["Config", "PromotionConfig", "Promotions", "Redemption"]
