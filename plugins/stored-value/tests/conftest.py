"""Fixtures for the stored-value tests: a harness on each database and a till that drives the block."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from retailblocks_stored_value import StoredValue, StoredValueConfig

from retailblocks.model import Money, PaymentAuthorization, PaymentCapture, PaymentRefund
from retailblocks.testing import BlockHarness


class Till:
    """Calls the block the way a flow does: one committed step per call."""

    def __init__(self, harness: BlockHarness, block: StoredValue):
        self.harness = harness
        self.block = block

    def issue(self, method: str, amount: Money, key: str, member_id: str | None = None) -> str:
        with self.harness.context("web") as ctx:
            return self.block.payment_issue(ctx, method, amount, member_id, key)

    def authorize(
        self,
        method: str,
        amount: Money,
        key: str,
        details: Mapping[str, str] | None = None,
        member_id: str | None = None,
        flow_id: str = "",
    ) -> PaymentAuthorization:
        with self.harness.context("web", flow_id=flow_id) as ctx:
            return self.block.payment_authorize(ctx, method, amount, details or {}, member_id, key)

    def pay_card(self, code: str, amount: Money, key: str) -> PaymentAuthorization:
        return self.authorize("gift_card", amount, key, {"code": code})

    def capture(self, auth: PaymentAuthorization, amount: Money, key: str) -> PaymentCapture:
        with self.harness.context("web") as ctx:
            return self.block.payment_capture(ctx, auth, amount, key)

    def void(self, auth: PaymentAuthorization, key: str) -> None:
        with self.harness.context("web") as ctx:
            self.block.payment_void(ctx, auth, key)

    def refund(self, auth: PaymentAuthorization, amount: Money, key: str) -> PaymentRefund:
        with self.harness.context("web") as ctx:
            return self.block.payment_refund(ctx, auth, amount, key)

    def status(self, key: str, method: str = "gift_card") -> PaymentAuthorization | None:
        with self.harness.context("web") as ctx:
            return self.block.payment_status(ctx, method, key)

    def balance(self, reference: str, currency: str | None = None) -> Money:
        with self.harness.context("web") as ctx:
            return self.block.balance(ctx, reference, currency)

    def audit(self) -> list[str]:
        with self.harness.context("web") as ctx:
            return self.block.audit(ctx)


def make_till(database_url: str, config: StoredValueConfig | None = None) -> Iterator[Till]:
    block = StoredValue(config)
    harness = BlockHarness(block, database_url)
    try:
        yield Till(harness, block)
    finally:
        harness.close()


@pytest.fixture
def till(database_url: str) -> Iterator[Till]:
    yield from make_till(database_url)


@pytest.fixture
def sqlite_till(sqlite_url: str) -> Iterator[Till]:
    yield from make_till(sqlite_url)
