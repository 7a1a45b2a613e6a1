"""Fixtures: the block on a real database (SQLite and PostgreSQL), with the sandbox or the fake gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from retailblocks_sandbox_card import SandboxCard, SandboxCardConfig
from retailblocks_sandbox_card.testing import FakeCardGateway

from retailblocks.clock import ManualClock
from retailblocks.testing import BlockHarness

TEST_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


@pytest.fixture
def block() -> SandboxCard:
    return SandboxCard(SandboxCardConfig(secret_key=TEST_KEY), block_id="card")


@pytest.fixture
def harness(block: SandboxCard, database_url: str) -> Iterator[BlockHarness]:
    bench = BlockHarness(block, database_url, clock=ManualClock())
    yield bench
    bench.close()


@pytest.fixture
def fake() -> FakeCardGateway:
    return FakeCardGateway()


@pytest.fixture
def fake_harness(fake: FakeCardGateway, database_url: str) -> Iterator[BlockHarness]:
    block = SandboxCard(SandboxCardConfig(secret_key=TEST_KEY), block_id="card", gateway=fake)
    bench = BlockHarness(block, database_url, clock=ManualClock())
    yield bench
    bench.close()
