"""The configuration the block kit's contract tests assemble this block with, in a merchant's currency.

Shared by the block's own conformance test and the kit's mutants (broken subclasses of this block that the
contract must fail), so both check the same configuration. Written as a manifest's ``config:`` would be.
"""

from __future__ import annotations

from typing import Any


def contract_config(currency: str) -> dict[str, Any]:
    """Two carriers into Shanghai and the rest of China, with weight, value and free-shipping rates."""
    return {
        "zones": [{"id": "shanghai", "regions": ["Shanghai"]}, {"id": "mainland", "countries": ["CN"]}],
        "carriers": [
            {
                "id": "sf",
                "name": "SF Express",
                "options": [
                    {
                        "id": "sf-standard",
                        "name": "Standard",
                        "zones": ["shanghai", "mainland"],
                        "min_days": 1,
                        "max_days": 3,
                        "rates": [
                            {"up_to_grams": 1000, "price": f"12.00 {currency}"},
                            {"price": f"20.00 {currency}"},
                        ],
                        "free_over": f"199.00 {currency}",
                        "per_extra_parcel": f"6.00 {currency}",
                    }
                ],
            },
            {
                "id": "zto",
                "name": "ZTO",
                "options": [
                    {
                        "id": "zto-economy",
                        "name": "Economy",
                        "zones": ["mainland"],
                        "min_days": 3,
                        "max_days": 5,
                        "value_rates": [
                            {"min_order_value": f"0.00 {currency}", "price": f"10.00 {currency}"},
                            {"min_order_value": f"100.00 {currency}", "price": f"5.00 {currency}"},
                            {"min_order_value": f"300.00 {currency}", "price": f"0.00 {currency}"},
                        ],
                    }
                ],
            },
        ],
        "locations": [{"id": "store-1", "latitude": 31.2215, "longitude": 121.5447}],
        "pickup_locations": ["store-1"],
        "pickup_ready_in": "2h",
    }
