"""Fixtures for the promotions block's tests (their terse builders are in retailblocks_promotions.testing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from retailblocks_promotions import Config, PromotionConfig, Promotions

from retailblocks.clock import ManualClock
from retailblocks.testing import BlockHarness


def names_used(promotions: tuple[PromotionConfig, ...]) -> dict[str, list[str]]:
    """What the rest of a stack declares for these promotions to assemble: their SKUs, categories, tiers,
    segments and funders (the catalog, a membership block, the manifest's partners)."""
    fields = {
        "sku": ("skus", "buy_skus", "get_skus"),
        "category": ("categories", "buy_categories", "get_categories"),
        "tier": ("tiers",),
        "segment": ("segments",),
    }
    names = {
        kind: sorted({v for p in promotions for f in names for v in getattr(p, f)}) for kind, names in fields.items()
    }
    names["partner"] = sorted({p.funder for p in promotions if p.funder is not None})
    return names


@pytest.fixture
def make_harness(database_url: str) -> Iterator[object]:
    """``make_harness(*promotions)``: a block configured with these promotions, on a fresh database."""
    harnesses: list[BlockHarness] = []

    def build(*promotions: PromotionConfig) -> BlockHarness:
        block = Promotions(Config(promotions=list(promotions)))
        harness = BlockHarness(block, database_url, clock=ManualClock(), names=names_used(promotions))
        harnesses.append(harness)
        return harness

    yield build
    for harness in harnesses:
        harness.close()
