"""A brand with a mini-program, a marketplace storefront and a store, a partner platform sharing points
and funding a coupon, and a segment with a campaign: the merchant the boundaryless stories are told about."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retailblocks.stack import Stack
from tests.helpers import SHOP_MANIFEST, make_stack

BRAND = (
    SHOP_MANIFEST.replace(
        "  - {id: web, type: online}\n",
        "  - {id: web, type: online, name: mini-program}\n",
    )
    .replace(
        "        market: {locations: [dc]}\n",
        "        market: {locations: [dc]}\n"
        # Endless aisle: the store sells what the warehouse holds, and ships it.
        "        store-a: {locations: [store-a, dc]}\n",
    )
    .replace(
        "      tiers: [{name: base",
        "      partners: {metro: {rate_percent: 50}}\n      tiers: [{name: base",
    )
    .replace(
        "           usage_limit: 1000}\n",
        "           usage_limit: 1000}\n"
        "        - {id: mall-8, code: MALL8, target: order, allocation: across, value_type: fixed,\n"
        '           value: "8.00 CNY", funder: metro, campaign: metro-spring}\n'
        "        - {id: comeback-12, automatic: false, target: order, allocation: across, value_type: fixed,\n"
        '           value: "12.00 CNY", campaign: comeback}\n',
    )
    .replace(
        "routing:",
        "partners:\n"
        "  - {id: metro, name: Metro Mall, type: platform}\n"
        "segments:\n"
        "  - {id: store-regulars, channels: [store-a], min_orders: 1, description: bought in the store}\n"
        "  - {id: big-spenders, min_spend: '200.00 CNY'}\n"
        "  - {id: tea-drinkers, categories: [tea], purchased_within_days: 30}\n"
        "campaigns:\n"
        "  - {id: comeback, segment: store-regulars, promotion: comeback-12, channel: web}\n"
        "routing:",
    )
)


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    the_stack = make_stack(tmp_path, database_url, text=BRAND, stock=20)
    yield the_stack
    the_stack.close()
