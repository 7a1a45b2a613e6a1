"""Fixtures for the promotions block's tests; makes ``promotions_helpers`` importable beside them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from retailblocks_promotions import Config, PromotionConfig, Promotions

from retailblocks.clock import ManualClock
from retailblocks.testing import BlockHarness

# The suite runs with --import-mode=importlib, so sibling helper modules need their folder on the path.
sys.path.insert(0, str(Path(__file__).parent))


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
