"""The configuration the block kit's contract tests assemble this block with, in a merchant's currency.

Shared by the block's own conformance test and the kit's mutants (broken subclasses of this block that the
contract must fail), so both check the same configuration. Written as a manifest's ``config:`` would be.
"""

from __future__ import annotations

from typing import Any


def contract_config(currency: str) -> dict[str, Any]:
    """Points worth 1.00 per 100 and two tiers, in the merchant's currency."""
    return {
        "points_value": f"1.00 {currency}",
        "tiers": [
            {"name": "base", "threshold": f"0.00 {currency}"},
            {"name": "silver", "threshold": f"300.00 {currency}", "earn_multiplier_percent": 125},
        ],
        "earning": {"points_per_unit": 1, "channel_multipliers_percent": {"store": 150}},
    }
