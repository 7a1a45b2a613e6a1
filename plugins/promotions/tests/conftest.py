"""Fixtures for the promotions block's tests (their terse builders are in retailblocks_promotions.testing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from retailblocks_promotions import Config, PromotionConfig, Promotions

from retailblocks.clock import ManualClock
from retailblocks.testing import BlockHarness


@pytest.fixture
def make_harness(database_url: str) -> Iterator[object]:
    """``make_harness(*promotions)``: a block configured with these promotions, on a fresh database."""
    harnesses: list[BlockHarness] = []

    def build(*promotions: PromotionConfig) -> BlockHarness:
        block = Promotions(Config(promotions=list(promotions)))
        harness = BlockHarness(block, database_url, clock=ManualClock())
        harnesses.append(harness)
        return harness

    yield build
    for harness in harnesses:
        harness.close()
