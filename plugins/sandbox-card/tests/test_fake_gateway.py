"""The block on the in-memory FakeCardGateway: scripted declines, time-outs and outages."""

from __future__ import annotations

import pytest
from retailblocks_sandbox_card import SandboxCard
from retailblocks_sandbox_card.testing import FakeCardGateway, GatewayCall

from retailblocks.errors import NotRefundable, PaymentDeclined, PaymentOutcomeUnknown
from retailblocks.model import Money, PaymentAuthorization
from retailblocks.testing import BlockHarness

CNY_80 = Money(8_000, "CNY")


def card(harness: BlockHarness) -> SandboxCard:
    assert isinstance(harness.block, SandboxCard)
    return harness.block


def authorize(harness: BlockHarness, key: str = "k", number: str = "4242424242424242") -> PaymentAuthorization:
    with harness.context("web", flow_id="ord_2") as ctx:
        return card(harness).payment_authorize(ctx, "card", CNY_80, {"card_number": number}, None, key)


def test_the_fake_answers_test_cards_like_the_sandbox(fake_harness: BlockHarness, fake: FakeCardGateway) -> None:
    auth = authorize(fake_harness)
    assert auth.id.startswith("ch_fake_")
    with pytest.raises(PaymentDeclined) as info:
        authorize(fake_harness, "k2", "4000000000009995")
    assert info.value.reason == "insufficient_funds"
    assert fake.calls == [GatewayCall("authorize", "k"), GatewayCall("authorize", "k2")]


def test_decline_next(fake_harness: BlockHarness, fake: FakeCardGateway) -> None:
    fake.decline_next(reason="do_not_honor")
    with pytest.raises(PaymentDeclined) as info:
        authorize(fake_harness, "k1")
    assert info.value.reason == "do_not_honor"
    authorize(fake_harness, "k2")
    assert len(fake.charges) == 1


def test_outages_are_retried_with_the_same_key(fake_harness: BlockHarness, fake: FakeCardGateway) -> None:
    fake.fail_next(2)
    authorize(fake_harness)
    assert fake.calls == [GatewayCall("authorize", "k")]
    assert len(fake.charges) == 1


def test_too_many_outages_leave_the_outcome_unknown(fake_harness: BlockHarness, fake: FakeCardGateway) -> None:
    fake.fail_next(3)
    with pytest.raises(PaymentOutcomeUnknown, match="could not be reached in 3 tries"):
        authorize(fake_harness)
    assert fake.charges == []
    with fake_harness.context("web") as ctx:
        assert card(fake_harness).payment_status(ctx, "card", "k") is None


def test_time_out_having_charged(fake_harness: BlockHarness, fake: FakeCardGateway) -> None:
    fake.time_out_next(charged=True)
    with pytest.raises(PaymentOutcomeUnknown):
        authorize(fake_harness)
    with fake_harness.context("web") as ctx:
        auth = card(fake_harness).payment_status(ctx, "card", "k")
    assert auth is not None
    assert authorize(fake_harness) == auth
    assert len(fake.charges) == 1
    assert len(fake_harness.events("payment.authorized")) == 1


def test_time_out_without_charging(fake_harness: BlockHarness, fake: FakeCardGateway) -> None:
    fake.time_out_next(charged=False)
    with pytest.raises(PaymentOutcomeUnknown):
        authorize(fake_harness)
    with fake_harness.context("web") as ctx:
        assert card(fake_harness).payment_status(ctx, "card", "k") is None


def test_a_capture_that_times_out_is_retried_safely(fake_harness: BlockHarness, fake: FakeCardGateway) -> None:
    auth = authorize(fake_harness)
    fake.time_out_next(charged=True)
    with pytest.raises(PaymentOutcomeUnknown, match="same idempotency key is safe"), fake_harness.context("web") as ctx:
        card(fake_harness).payment_capture(ctx, auth, Money(5_000, "CNY"), "cap")
    with fake_harness.context("web") as ctx:
        card(fake_harness).payment_capture(ctx, auth, Money(5_000, "CNY"), "cap")
    [charge] = fake.charges
    assert charge.captured == 5_000
    assert len(fake_harness.events("payment.captured")) == 1


def test_a_declined_refund_is_not_refundable(fake_harness: BlockHarness, fake: FakeCardGateway) -> None:
    auth = authorize(fake_harness)
    with fake_harness.context("web") as ctx:
        card(fake_harness).payment_capture(ctx, auth, CNY_80, "cap")
    fake.decline_next(reason="refund_window_closed")
    with pytest.raises(NotRefundable, match="declined"), fake_harness.context("web") as ctx:
        card(fake_harness).payment_refund(ctx, auth, CNY_80, "ref")
