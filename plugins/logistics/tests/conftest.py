"""Shared configuration and harness for the logistics block's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from retailblocks_logistics import Logistics
from retailblocks_logistics.testing import example_config

from retailblocks.testing import BlockHarness


def stock_locations(block: Logistics) -> list[str]:
    """The locations the block ships from, which an inventory block declares in a stack."""
    return [location.id for location in block.config.locations]


@pytest.fixture
def block() -> Logistics:
    return Logistics(example_config())


@pytest.fixture
def harness(block: Logistics, database_url: str) -> Iterator[BlockHarness]:
    h = BlockHarness(block, database_url, names={"location": stock_locations(block)})
    yield h
    h.close()


@pytest.fixture
def sqlite_harness(block: Logistics, sqlite_url: str) -> Iterator[BlockHarness]:
    """For behaviour that stores nothing (quotes, ranking): SQLite alone is enough."""
    h = BlockHarness(block, sqlite_url, names={"location": stock_locations(block)})
    yield h
    h.close()
