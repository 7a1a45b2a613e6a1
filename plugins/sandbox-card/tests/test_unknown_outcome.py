"""Unknown outcomes: time-outs, crashes between the gateway and the commit, and their resolution."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from retailblocks_sandbox_card import SandboxCard
from retailblocks_sandbox_card.tables import attempts, payments

from retailblocks.errors import PaymentDeclined, PaymentOutcomeUnknown
from retailblocks.model import Money, PaymentAuthorization, PaymentStatus
from retailblocks.testing import BlockHarness

CNY_50 = Money(5_000, "CNY")


def card(harness: BlockHarness) -> SandboxCard:
    assert isinstance(harness.block, SandboxCard)
    return harness.block


def authorize(harness: BlockHarness, number: str, key: str) -> PaymentAuthorization:
    with harness.context("web", flow_id="ord_7") as ctx:
        return card(harness).payment_authorize(ctx, "card", CNY_50, {"card_number": number}, None, key)


def status(harness: BlockHarness, key: str) -> PaymentAuthorization | None:
    with harness.context("web", flow_id="ord_7") as ctx:
        return card(harness).payment_status(ctx, "card", key)


def attempt_status(harness: BlockHarness, key: str) -> str:
    with harness.engine.connect() as connection:
        return str(
            connection.execute(sa.select(attempts.c.status).where(attempts.c.idempotency_key == key)).scalar_one()
        )


def test_time_out_after_authorizing_resolves_to_the_authorization(harness: BlockHarness) -> None:
    with pytest.raises(PaymentOutcomeUnknown, match="payment_status"):
        authorize(harness, "4000000000000119", "ord_7:auth")
    assert harness.events("payment.authorized") == []
    harness.clock.advance(timedelta(seconds=10))
    with pytest.raises(PaymentOutcomeUnknown, match="cannot yet tell"):
        status(harness, "ord_7:auth")
    harness.clock.advance(timedelta(seconds=20))
    auth = status(harness, "ord_7:auth")
    assert auth is not None
    assert auth.amount == CNY_50
    assert auth.status is PaymentStatus.AUTHORIZED
    assert status(harness, "ord_7:auth") == auth  # asking again records nothing more
    [event] = harness.events("payment.authorized")
    assert event.order_id == "ord_7"
    assert attempt_status(harness, "ord_7:auth") == "authorized"
    # Retrying the authorization under the key now returns the same authorization, no new charge.
    assert authorize(harness, "4000000000000119", "ord_7:auth") == auth


def test_time_out_without_authorizing_resolves_to_none(harness: BlockHarness) -> None:
    with pytest.raises(PaymentOutcomeUnknown):
        authorize(harness, "4000000000000127", "ord_7:auth")
    with pytest.raises(PaymentOutcomeUnknown):
        status(harness, "ord_7:auth")
    harness.clock.advance(timedelta(seconds=30))
    assert status(harness, "ord_7:auth") is None
    assert attempt_status(harness, "ord_7:auth") == "not_authorized"
    with pytest.raises(PaymentDeclined) as info:
        authorize(harness, "4000000000000127", "ord_7:auth")
    assert info.value.reason == "processing_error"


def test_status_of_a_key_never_seen_is_none(harness: BlockHarness) -> None:
    assert status(harness, "never-sent") is None


def test_status_of_a_declined_attempt_is_none(harness: BlockHarness) -> None:
    with pytest.raises(PaymentDeclined):
        authorize(harness, "4000000000000002", "k")
    assert status(harness, "k") is None


def authorize_then_crash(harness: BlockHarness, key: str) -> None:
    """The gateway commits on its own; the step's transaction then dies before committing."""
    with harness.context("web", flow_id="ord_7") as ctx:
        card(harness).payment_authorize(ctx, "card", CNY_50, {"card_number": "4242424242424242"}, None, key)
        raise RuntimeError("crash before commit")


def test_crash_after_the_gateway_charged_is_recovered_by_status(harness: BlockHarness) -> None:
    with pytest.raises(RuntimeError, match="crash"):
        authorize_then_crash(harness, "ord_7:auth")
    with harness.engine.connect() as connection:
        assert connection.execute(sa.select(payments)).first() is None
    assert harness.events("payment.authorized") == []
    auth = status(harness, "ord_7:auth")
    assert auth is not None
    assert len(harness.events("payment.authorized")) == 1


def test_maintain_resolves_pending_attempts_idempotently(harness: BlockHarness) -> None:
    with pytest.raises(PaymentOutcomeUnknown):
        authorize(harness, "4000000000000119", "a")
    with pytest.raises(PaymentOutcomeUnknown):
        authorize(harness, "4000000000000127", "b")
    with pytest.raises(RuntimeError):
        authorize_then_crash(harness, "c")

    def maintain() -> None:
        with harness.context(None, flow="maintenance") as ctx:
            card(harness).stack_maintain(ctx)

    maintain()  # too early: nothing is due, nothing changes
    assert {attempt_status(harness, key) for key in "abc"} == {"pending"}
    harness.clock.advance(timedelta(seconds=31))
    maintain()
    assert [attempt_status(harness, key) for key in "abc"] == ["authorized", "not_authorized", "authorized"]
    maintain()  # again: nothing left to do
    events = harness.events("payment.authorized")
    assert len(events) == 2
    assert {event.order_id for event in events} == {"ord_7"}
