"""Authorizations the block refuses, and why: every refusal is a PaymentDeclined with a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from retailblocks_stored_value import StoredValue, StoredValueConfig

from retailblocks.errors import InvalidValue, PaymentDeclined
from retailblocks.model import Money
from retailblocks.testing import BlockHarness


def cny(text: str) -> Money:
    return Money.parse(f"{text} CNY")


def test_insufficient_funds_states_balance_and_amount(till):
    code = till.issue("gift_card", cny("20.00"), "issue")
    with pytest.raises(PaymentDeclined, match=r"holds 20\.00 CNY, less than the 30\.00 CNY") as caught:
        till.pay_card(code, cny("30.00"), "auth")
    assert caught.value.reason == "insufficient_funds"
    assert till.balance(code) == cny("20.00")
    assert till.status("auth") is None, "a declined attempt made no authorization"
    # The same key may be tried again once the card can pay.
    assert till.pay_card(code, cny("20.00"), "auth").amount == cny("20.00")
    assert till.audit() == []


def test_unknown_card_and_unknown_wallet(till):
    with pytest.raises(PaymentDeclined) as caught:
        till.pay_card("GC-0000-0000-0000", cny("1.00"), "a")
    assert caught.value.reason == "unknown_card"
    with pytest.raises(PaymentDeclined) as caught:
        till.pay_card("not a card", cny("1.00"), "b")
    assert caught.value.reason == "unknown_card"
    with pytest.raises(PaymentDeclined, match="has no CNY wallet") as caught:
        till.authorize("wallet", cny("1.00"), "c", member_id="nobody")
    assert caught.value.reason == "unknown_wallet"


def test_frozen_card_is_declined_until_unfrozen(till):
    code = till.issue("gift_card", cny("20.00"), "issue")
    with till.harness.context("web") as ctx:
        till.block.freeze(ctx, code)
    with pytest.raises(PaymentDeclined, match="frozen") as caught:
        till.pay_card(code, cny("5.00"), "auth")
    assert caught.value.reason == "frozen"
    with till.harness.context("web") as ctx:
        till.block.unfreeze(ctx, code)
    assert till.pay_card(code, cny("5.00"), "auth").amount == cny("5.00")
    assert [e.type for e in till.harness.events() if e.type.startswith("stored_value.")] == [
        "stored_value.issued",
        "stored_value.frozen",
        "stored_value.unfrozen",
    ]


def test_currency_mismatch_is_declined(till):
    code = till.issue("gift_card", cny("20.00"), "issue")
    with pytest.raises(PaymentDeclined) as caught:
        till.pay_card(code, Money.parse("5.00 USD"), "auth")
    assert caught.value.reason == "currency_mismatch"


def test_a_decline_is_recorded_when_the_step_commits(till):
    code = till.issue("gift_card", cny("1.00"), "issue")
    with till.harness.context("web") as ctx, pytest.raises(PaymentDeclined):
        till.block.payment_authorize(ctx, "gift_card", cny("2.00"), {"code": code}, None, "k")
    [event] = till.harness.events("payment.declined")
    assert event.payload["reason"] == "insufficient_funds"
    assert event.payload["amount"] == 200
    assert till.status("k") is None
    assert till.audit() == []


def test_expired_card_is_declined_and_expiry_returns_value_to_issuance(sqlite_url):
    block = StoredValue(StoredValueConfig(gift_card_validity=timedelta(days=30)))
    harness = BlockHarness(block, sqlite_url)
    try:
        with harness.context() as ctx:
            code = block.payment_issue(ctx, "gift_card", cny("20.00"), None, "issue")
        harness.clock.advance(timedelta(days=31))
        with harness.context() as ctx, pytest.raises(PaymentDeclined, match="expired") as caught:
            block.payment_authorize(ctx, "gift_card", cny("5.00"), {"code": code}, None, "auth")
        assert caught.value.reason == "expired"

        with harness.context() as ctx:
            block.stack_maintain(ctx)
        with harness.context() as ctx:
            assert block.expire_due(ctx) == 0  # nothing left to expire
            assert block.balance(ctx, code) == cny("0.00")
            assert block.balance(ctx, "issuance") == cny("0.00")
            assert block.audit(ctx) == []
        [event] = harness.events("stored_value.expired")
        assert event.payload["amount"] == 2000
    finally:
        harness.close()


def test_limits_from_the_configuration(sqlite_url):
    config = StoredValueConfig(max_gift_card_value=cny("500.00"), max_wallet_balance=cny("100.00"))
    block = StoredValue(config)
    harness = BlockHarness(block, sqlite_url)
    try:
        with harness.context() as ctx, pytest.raises(InvalidValue, match=r"at most 500\.00 CNY"):
            block.payment_issue(ctx, "gift_card", cny("500.01"), None, "a")
        with harness.context() as ctx:
            block.payment_issue(ctx, "wallet", cny("90.00"), "alice", "b")
        with harness.context() as ctx, pytest.raises(InvalidValue, match="above its limit"):
            block.payment_issue(ctx, "wallet", cny("10.01"), "alice", "c")
        with harness.context() as ctx:
            block.payment_issue(ctx, "wallet", cny("10.00"), "alice", "c")
            assert block.balance(ctx, "alice") == cny("100.00")
            assert block.audit(ctx) == []
    finally:
        harness.close()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("code_prefix", "gc", "capital letters"),
        ("gift_card_validity", timedelta(0), "positive duration"),
        ("max_wallet_balance", Money.parse("0.00 CNY"), "positive amount"),
    ],
)
def test_bad_configuration_is_explained(field, value, message):
    with pytest.raises(InvalidValue, match=message):
        StoredValueConfig(**{field: value})
