"""Authorization against the sandbox gateway: every test card, replays, key reuse, concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from retailblocks_sandbox_card import SandboxCard
from retailblocks_sandbox_card.tables import gateway_charges, payments

from retailblocks.errors import IdempotencyConflict, InvalidValue, PaymentDeclined
from retailblocks.model import Money, PaymentAuthorization, PaymentStatus
from retailblocks.testing import BlockHarness

CNY_100 = Money(10_000, "CNY")


def authorize(
    harness: BlockHarness,
    key: str,
    *,
    card: str = "4242424242424242",
    amount: Money = CNY_100,
    details: dict[str, str] | None = None,
) -> PaymentAuthorization:
    block = harness.block
    assert isinstance(block, SandboxCard)
    with harness.context("web", flow_id="ord_1") as ctx:
        return block.payment_authorize(ctx, "card", amount, details or {"card_number": card}, "mem_1", key)


def gateway_charge_count(harness: BlockHarness) -> int:
    with harness.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(gateway_charges)).scalar_one())


def test_approved_card(harness: BlockHarness) -> None:
    auth = authorize(harness, "ord_1:authorize")
    assert auth.block == "card"
    assert auth.method == "card"
    assert auth.amount == CNY_100
    assert auth.status is PaymentStatus.AUTHORIZED
    assert auth.reference == "visa ending 4242"
    [event] = harness.events("payment.authorized")
    assert event.payload["authorization_id"] == auth.id
    assert event.payload["amount"] == 10_000
    assert event.order_id == "ord_1"
    assert event.member_id == "mem_1"
    assert event.source == "card"
    with harness.engine.connect() as connection:
        row = connection.execute(sa.select(payments)).mappings().one()
    assert (row["id"], row["flow_id"], row["amount"], row["captured"], row["status"]) == (
        auth.id,
        "ord_1",
        10_000,
        0,
        "authorized",
    )


DECLINED_CARDS = [
    ("4000000000000002", "card_declined"),
    ("4000000000009995", "insufficient_funds"),
    ("4242424242424241", "invalid_card"),  # fails Luhn
    ("42424242", "invalid_card"),  # too short
    ("4111111111111111", "invalid_card"),  # valid, but not a test card
]


def test_declined_cards(harness: BlockHarness) -> None:
    # One database for all the cards: each case is keyed apart, and a fresh database costs a second.
    for card, reason in DECLINED_CARDS:
        with pytest.raises(PaymentDeclined) as info:
            authorize(harness, f"k-{card}", card=card)
        assert info.value.reason == reason, card
        assert card not in str(info.value)  # never echo a card number
    with harness.engine.connect() as connection:
        assert connection.execute(sa.select(payments)).first() is None
    assert harness.events("payment.authorized") == []


def test_declined_event_is_recorded_in_the_step(harness: BlockHarness) -> None:
    block = harness.block
    assert isinstance(block, SandboxCard)
    # A core that catches the decline and commits its step keeps the event.
    with harness.context("web", flow_id="ord_9") as ctx, pytest.raises(PaymentDeclined):
        block.payment_authorize(ctx, "card", CNY_100, {"card_number": "4000000000000002"}, None, "ord_9:auth")
    [event] = harness.events("payment.declined")
    assert event.payload["reason"] == "card_declined"
    assert event.payload["card_last4"] == "0002"
    assert event.order_id == "ord_9"


def test_a_declined_key_replays_the_decline(harness: BlockHarness) -> None:
    for _ in range(2):
        with pytest.raises(PaymentDeclined, match="insufficient funds"):
            authorize(harness, "k", card="4000000000009995")
    assert gateway_charge_count(harness) == 1


def test_tokens(harness: BlockHarness) -> None:
    auth = authorize(harness, "k1", details={"token": "tok_unionpay"})
    assert auth.reference == "unionpay ending 0005"
    with pytest.raises(PaymentDeclined) as info:
        authorize(harness, "k2", details={"token": "tok_insufficient_funds"})
    assert info.value.reason == "insufficient_funds"
    with pytest.raises(PaymentDeclined) as info:
        authorize(harness, "k3", details={"token": "tok_unknown"})
    assert info.value.reason == "invalid_card"


def test_same_key_twice_is_one_charge_and_one_event(harness: BlockHarness) -> None:
    first = authorize(harness, "ord_1:authorize")
    second = authorize(harness, "ord_1:authorize")
    assert first == second
    assert gateway_charge_count(harness) == 1
    assert len(harness.events("payment.authorized")) == 1


def test_same_key_with_another_amount_is_refused(harness: BlockHarness) -> None:
    authorize(harness, "ord_1:authorize")
    with pytest.raises(InvalidValue, match="already used") as info:
        authorize(harness, "ord_1:authorize", amount=Money(9_999, "CNY"))
    assert isinstance(info.value, IdempotencyConflict)
    with pytest.raises(InvalidValue, match="already used"):
        authorize(harness, "ord_1:authorize", card="5555555555554444")
    assert gateway_charge_count(harness) == 1


def test_same_key_from_eight_threads_charges_once(harness: BlockHarness) -> None:
    barrier = threading.Barrier(8)

    def attempt(_: int) -> PaymentAuthorization:
        barrier.wait()
        return authorize(harness, "ord_1:authorize")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert len({auth.id for auth in results}) == 1
    assert gateway_charge_count(harness) == 1
    assert len(harness.events("payment.authorized")) == 1


BAD_ARGUMENTS: list[tuple[str, Money, dict[str, str], str, str]] = [
    ("gift_card", CNY_100, {"card_number": "4242424242424242"}, "k", "only the payment method 'card'"),
    ("card", Money(0, "CNY"), {"card_number": "4242424242424242"}, "k", "amount > 0"),
    ("card", Money(-5, "CNY"), {"card_number": "4242424242424242"}, "k", "amount > 0"),
    ("card", CNY_100, {}, "k", "details\\['card_number'\\]"),
    ("card", CNY_100, {"card_number": "4242424242424242"}, "", "idempotency key"),
]


def test_bad_arguments(harness: BlockHarness) -> None:
    block = harness.block
    assert isinstance(block, SandboxCard)
    for method, amount, details, key, message in BAD_ARGUMENTS:
        with pytest.raises(InvalidValue, match=message), harness.context("web") as ctx:
            block.payment_authorize(ctx, method, amount, details, None, key)
    assert gateway_charge_count(harness) == 0
