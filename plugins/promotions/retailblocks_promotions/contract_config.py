"""The configuration the block kit's contract tests assemble this block with, in a merchant's currency.

Shared by the block's own conformance test and the kit's mutants (broken subclasses of this block that the
contract must fail), so both check the same configuration. Written as a manifest's ``config:`` would be.
"""

from __future__ import annotations

from typing import Any


def contract_config(currency: str) -> dict[str, Any]:
    """Item, order and shipping promotions on every line, a fixed discount larger than the cheap line, a
    coupon usable by one order, and a promotion whose coupons are issued to members."""
    return {
        "promotions": [
            {"id": "kit-items-20", "value_type": "percentage", "value": 20, "priority": 20},
            {
                "id": "kit-fixed-15",
                "description": "15 off one unit of every line",
                "value_type": "fixed",
                "value": f"15.00 {currency}",
                "allocation": "each",
                "max_quantity": 1,
                "priority": 10,
            },
            {
                "id": "kit-order-25",
                "target": "order",
                "allocation": "across",
                "value_type": "fixed",
                "value": f"25.00 {currency}",
                "min_subtotal": f"50.00 {currency}",
            },
            {
                "id": "kit-once",
                "code": "KIT-ONCE",
                "target": "order",
                "allocation": "across",
                "value_type": "percentage",
                "value": 10,
                "usage_limit": 1,
                "campaign": "kit",
            },
            {"id": "kit-shipping-half", "target": "shipping", "value_type": "percentage", "value": 50},
            {
                "id": "kit-issued",
                "automatic": False,
                "target": "order",
                "allocation": "across",
                "value_type": "fixed",
                "value": f"5.00 {currency}",
            },
        ]
    }
