"""Capture, void and refund on the sandbox gateway: partial amounts, limits, replays, events."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from retailblocks_sandbox_card import SandboxCard
from retailblocks_sandbox_card.tables import gateway_charges, gateway_operations, operations, payments

from retailblocks.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidValue,
    NotRefundable,
)
from retailblocks.model import Money, PaymentAuthorization
from retailblocks.testing import BlockHarness


def cny(yuan: int) -> Money:
    return Money(yuan * 100, "CNY")


def card(harness: BlockHarness) -> SandboxCard:
    assert isinstance(harness.block, SandboxCard)
    return harness.block


def authorize(harness: BlockHarness, amount: Money = cny(100), key: str = "ord_1:auth") -> PaymentAuthorization:
    with harness.context("web", flow_id="ord_1") as ctx:
        return card(harness).payment_authorize(ctx, "card", amount, {"card_number": "4242424242424242"}, "mem_1", key)


def capture(harness: BlockHarness, auth: PaymentAuthorization, amount: Money, key: str) -> None:
    with harness.context("web", flow_id="ord_1") as ctx:
        result = card(harness).payment_capture(ctx, auth, amount, key)
    assert result.amount == amount
    assert result.authorization_id == auth.id


def refund(harness: BlockHarness, auth: PaymentAuthorization, amount: Money, key: str) -> None:
    with harness.context("web", flow_id="ord_1") as ctx:
        result = card(harness).payment_refund(ctx, auth, amount, key)
    assert result.amount == amount


def void(harness: BlockHarness, auth: PaymentAuthorization, key: str) -> None:
    with harness.context("web", flow_id="ord_1") as ctx:
        card(harness).payment_void(ctx, auth, key)


def view(harness: BlockHarness, auth: PaymentAuthorization) -> tuple[int, int, bool, str]:
    with harness.engine.connect() as connection:
        row = connection.execute(sa.select(payments).where(payments.c.id == auth.id)).mappings().one()
        gateway = connection.execute(sa.select(gateway_charges).where(gateway_charges.c.id == auth.id)).mappings().one()
    ours = (row["captured"], row["refunded"], bool(row["voided"]))
    assert ours == (gateway["captured"], gateway["refunded"], bool(gateway["voided"]))
    return (*ours, row["status"])


def count(harness: BlockHarness, table: sa.Table) -> int:
    with harness.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_capture_twice_refund_twice_then_over_refund_is_rejected(harness: BlockHarness) -> None:
    auth = authorize(harness)
    capture(harness, auth, cny(30), "ord_1:capture:1")
    assert view(harness, auth) == (3000, 0, False, "partially_captured")
    capture(harness, auth, cny(50), "ord_1:capture:2")
    assert view(harness, auth) == (8000, 0, False, "partially_captured")
    refund(harness, auth, cny(20), "ord_1:refund:1")
    assert view(harness, auth) == (8000, 2000, False, "partially_refunded")
    refund(harness, auth, cny(40), "ord_1:refund:2")
    assert view(harness, auth) == (8000, 6000, False, "partially_refunded")
    with pytest.raises(NotRefundable, match=r"20\.00 CNY refundable"):
        refund(harness, auth, cny(21), "ord_1:refund:3")
    refund(harness, auth, cny(20), "ord_1:refund:4")
    assert view(harness, auth) == (8000, 8000, False, "refunded")
    events = [event.type for event in harness.events() if event.type.startswith("payment.")]
    assert events == [
        "payment.authorized",
        "payment.captured",
        "payment.captured",
        "payment.refunded",
        "payment.refunded",
        "payment.refunded",
    ]
    last = harness.events("payment.refunded")[-1]
    assert last.payload["captured"] == 8000
    assert last.payload["refunded"] == 8000
    assert last.order_id == "ord_1"


def test_full_capture(harness: BlockHarness) -> None:
    auth = authorize(harness)
    capture(harness, auth, cny(100), "c")
    assert view(harness, auth) == (10_000, 0, False, "captured")


def test_capturing_more_than_authorized_is_rejected(harness: BlockHarness) -> None:
    auth = authorize(harness)
    capture(harness, auth, cny(70), "c1")
    with pytest.raises(InvalidValue, match=r"30\.00 CNY left"):
        capture(harness, auth, cny(31), "c2")
    with pytest.raises(InvalidValue, match=r"authorization \S+ is for 100\.00 CNY"):
        capture(harness, auth, cny(101), "c3")
    assert view(harness, auth) == (7000, 0, False, "partially_captured")


def test_refund_before_capture_is_not_refundable(harness: BlockHarness) -> None:
    auth = authorize(harness)
    with pytest.raises(NotRefundable, match=r"0\.00 CNY captured"):
        refund(harness, auth, cny(1), "r")


def test_amount_and_currency_checks(harness: BlockHarness) -> None:
    auth = authorize(harness)
    with pytest.raises(CurrencyMismatch, match="which is in CNY"):
        capture(harness, auth, Money(100, "USD"), "c")
    with pytest.raises(InvalidValue, match="must be > 0"):
        capture(harness, auth, cny(0), "c")
    with pytest.raises(InvalidValue, match="must be > 0"):
        refund(harness, auth, Money(-1, "CNY"), "r")


def test_void_releases_the_rest_and_is_idempotent(harness: BlockHarness) -> None:
    auth = authorize(harness)
    capture(harness, auth, cny(40), "c1")
    void(harness, auth, "v1")
    void(harness, auth, "v1")  # replay
    void(harness, auth, "v2")  # another key: still nothing more to release
    assert view(harness, auth) == (4000, 0, True, "captured")
    [event] = harness.events("payment.voided")
    assert event.payload["amount"] == 6000  # the released remainder
    with pytest.raises(InvalidValue, match="voided"):
        capture(harness, auth, cny(10), "c2")
    refund(harness, auth, cny(40), "r1")  # what was captured can still be refunded
    assert view(harness, auth) == (4000, 4000, True, "refunded")


def test_void_before_capture(harness: BlockHarness) -> None:
    auth = authorize(harness)
    void(harness, auth, "v")
    assert view(harness, auth) == (0, 0, True, "voided")


def test_replays_move_money_once(harness: BlockHarness) -> None:
    auth = authorize(harness)
    for _ in range(3):
        capture(harness, auth, cny(60), "c")
        refund(harness, auth, cny(10), "r")
    assert view(harness, auth) == (6000, 1000, False, "partially_refunded")
    assert count(harness, gateway_operations) == 2
    assert count(harness, operations) == 2
    assert len(harness.events("payment.captured")) == 1
    assert len(harness.events("payment.refunded")) == 1


def test_an_operation_key_reused_for_another_amount_is_refused(harness: BlockHarness) -> None:
    auth = authorize(harness)
    capture(harness, auth, cny(60), "c")
    with pytest.raises(IdempotencyConflict, match=r"already used for a capture of 60\.00 CNY"):
        capture(harness, auth, cny(10), "c")
    with pytest.raises(InvalidValue, match="already used"):
        refund(harness, auth, cny(60), "c")


def test_an_authorization_of_another_block_is_refused(harness: BlockHarness) -> None:
    auth = authorize(harness)
    foreign = PaymentAuthorization(auth.id, "stored-value", "card", auth.amount)
    with pytest.raises(InvalidValue, match="belongs to block 'stored-value'"):
        capture(harness, foreign, cny(1), "c")


def test_an_unknown_authorization_is_refused(harness: BlockHarness) -> None:
    ghost = PaymentAuthorization("ch_nope", "card", "card", cny(10))
    with pytest.raises(InvalidValue, match="no authorized charge 'ch_nope'"):
        capture(harness, ghost, cny(1), "c")


def test_concurrent_captures_never_exceed_the_authorization(harness: BlockHarness) -> None:
    auth = authorize(harness)
    barrier = threading.Barrier(8)

    def attempt(index: int) -> bool:
        barrier.wait()
        try:
            capture(harness, auth, cny(20), f"c{index}")
        except InvalidValue:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        accepted = sum(pool.map(attempt, range(8)))
    assert accepted == 5
    assert view(harness, auth) == (10_000, 0, False, "captured")
    assert len(harness.events("payment.captured")) == 5


def test_the_same_capture_from_eight_threads_captures_once(harness: BlockHarness) -> None:
    auth = authorize(harness)
    barrier = threading.Barrier(8)

    def attempt(_: int) -> None:
        barrier.wait()
        capture(harness, auth, cny(30), "ord_1:capture")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(attempt, range(8)))
    assert view(harness, auth) == (3000, 0, False, "partially_captured")
    assert count(harness, gateway_operations) == 1
    assert len(harness.events("payment.captured")) == 1
