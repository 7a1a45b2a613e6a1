"""The payment contract: what every payment block does, in two currencies, with declines, unknown
outcomes and concurrent calls."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import ClassVar, TypeVar

import pytest

from retailblocks.errors import (
    BlockFailure,
    BusinessRejection,
    InvalidInput,
    PaymentDeclined,
    PaymentOutcomeUnknown,
    RetailBlocksError,
)
from retailblocks.hookspecs import payment
from retailblocks.model import Money, PaymentAuthorization, PaymentCapture, PaymentRefund, PaymentStatus
from retailblocks.testing.contracts._base import Contract
from retailblocks.testing.harness import BlockHarness

T = TypeVar("T")
#: How a block refuses a request: a clear error of the core's, never a crash (BlockFailure).
REFUSED = (InvalidInput, BusinessRejection)
#: How many threads call at once with one key in the concurrency tests.
CONCURRENT_CALLS = 6


class PaymentContract(Contract):
    """Authorize, capture, refund and void, each idempotent per key; every result in the currency asked
    for (the tests use both of ``currencies``); declines; unknown outcomes resolved by status under the
    same key; never more captured than authorized, never more refunded than captured, nothing captured
    after a void; one key never charges twice, also when calls with it race.

    Say how to pay with ``method`` and ``details``, how to be declined with ``declined_details`` (return
    None only if the method can never decline), and, if your provider can time out, how to provoke one
    with ``unknown_outcome_details`` (the clock then moves on by ``outcome_known_after`` before the
    contract asks ``payment_status``)."""

    method: ClassVar[str] = "card"
    currencies: ClassVar[tuple[str, str]] = ("CNY", "EUR")
    outcome_known_after: ClassVar[timedelta] = timedelta(minutes=5)

    # -- what the author says ---------------------------------------------------------------------

    def details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        """Payment details that authorize ``amount`` (set up a payer through the harness if needed)."""
        return {}

    def declined_details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str] | None:
        """Payment details the block declines for ``amount``; None if the method never declines."""
        pytest.fail(
            f"{type(self).__name__}: define declined_details(harness, amount) returning payment details your "
            "block declines (a refused card, an empty wallet), or None if the method can never decline"
        )

    def unknown_outcome_details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str] | None:
        """Payment details for which the provider times out (PaymentOutcomeUnknown); None: cannot happen."""
        return None

    def member_id(self) -> str | None:
        return None

    # -- calls --------------------------------------------------------------------------------------

    def money(self, amount: int, currency: str | None = None) -> Money:
        return Money(amount, currency or self.currencies[0])

    def authorize(
        self, harness: BlockHarness, amount: Money, key: str, details: Mapping[str, str] | None = None
    ) -> PaymentAuthorization:
        paid_with = self.details(harness, amount) if details is None else details
        with harness.context(flow_id=f"order-{key}") as ctx:
            return harness.call(payment.payment_authorize, ctx, self.method, amount, paid_with, self.member_id(), key)

    def status(self, harness: BlockHarness, key: str) -> PaymentAuthorization | None:
        return harness.call(payment.payment_status, method=self.method, idempotency_key=key)

    def capture(self, harness: BlockHarness, auth: PaymentAuthorization, amount: Money, key: str) -> PaymentCapture:
        return harness.call(payment.payment_capture, authorization=auth, amount=amount, idempotency_key=key)

    def refund(self, harness: BlockHarness, auth: PaymentAuthorization, amount: Money, key: str) -> PaymentRefund:
        return harness.call(payment.payment_refund, authorization=auth, amount=amount, idempotency_key=key)

    def void(self, harness: BlockHarness, auth: PaymentAuthorization, key: str) -> None:
        harness.call(payment.payment_void, authorization=auth, idempotency_key=key)

    def authorized(self, harness: BlockHarness, amount: Money, key: str) -> PaymentAuthorization:
        """An authorization of ``amount``, checked: this block's, this method's, in the currency asked for."""
        made = self.authorize(harness, amount, key)
        assert made.amount == amount, f"authorized {amount} under {key!r}, the block answered {made.amount}"
        assert made.block == harness.block_id and made.method == self.method, made
        assert made.status is PaymentStatus.AUTHORIZED, made
        return made

    # -- the contract -------------------------------------------------------------------------------

    def test_authorize_answers_in_the_currency_asked_and_is_idempotent_per_key(self, harness: BlockHarness) -> None:
        for currency in self.currencies:
            amount = self.money(1_000, currency)
            details = self.details(harness, amount)
            first = self.authorize(harness, amount, f"auth-{currency}", details)
            again = self.authorize(harness, amount, f"auth-{currency}", details)
            assert first.amount == amount, f"asked to authorize {amount}, the block answered {first.amount}"
            assert again.id == first.id, f"the same key authorized twice: {first.id} and {again.id}"
            assert again.amount == amount

    def test_status_finds_an_authorization_by_its_key(self, harness: BlockHarness) -> None:
        for currency in self.currencies:
            made = self.authorized(harness, self.money(500, currency), f"status-{currency}")
            found = self.status(harness, f"status-{currency}")
            assert found is not None and found.id == made.id, found
            assert found.amount == made.amount, f"status answers {found.amount} for an authorization of {made.amount}"
        assert self.status(harness, "never-used") is None

    def test_capture_and_refund_answer_in_the_currency_asked(self, harness: BlockHarness) -> None:
        for currency in self.currencies:
            auth = self.authorized(harness, self.money(1_000, currency), f"auth-{currency}")
            captured = self.capture(harness, auth, self.money(600, currency), f"capture-{currency}")
            assert captured.amount == self.money(600, currency), f"captured 600 {currency}: {captured.amount}"
            assert captured.authorization_id == auth.id
            refunded = self.refund(harness, auth, self.money(250, currency), f"refund-{currency}")
            assert refunded.amount == self.money(250, currency), f"refunded 250 {currency}: {refunded.amount}"
            assert refunded.authorization_id == auth.id
            if harness.implements(payment.payment_balance):
                balance = harness.call(payment.payment_balance, authorization=auth)
                assert balance is not None
                assert (balance.captured, balance.refunded) == (self.money(600, currency), self.money(250, currency))

    def test_a_capture_in_another_currency_is_refused(self, harness: BlockHarness) -> None:
        first, second = self.currencies
        auth = self.authorized(harness, self.money(1_000, first), "auth-1")
        with pytest.raises(REFUSED):
            self.capture(harness, auth, self.money(500, second), "capture-other-currency")

    def test_a_capture_replayed_under_its_key_captures_once(self, harness: BlockHarness) -> None:
        currency = self.currencies[1]
        auth = self.authorized(harness, self.money(1_000, currency), "auth-1")
        first = self.capture(harness, auth, self.money(400, currency), "capture-1")
        again = self.capture(harness, auth, self.money(400, currency), "capture-1")
        assert again.id == first.id, f"one capture key captured twice: {first.id} and {again.id}"
        # Only 400 was captured, so no more than 400 can go back.
        self.refund(harness, auth, self.money(400, currency), "refund-1")
        with pytest.raises(REFUSED):
            self.refund(harness, auth, self.money(1, currency), "refund-2")

    def test_capture_beyond_the_authorization_is_refused(self, harness: BlockHarness) -> None:
        auth = self.authorized(harness, self.money(1_000), "auth-1")
        with pytest.raises(REFUSED):
            self.capture(harness, auth, self.money(1_001), "capture-too-much")
        self.capture(harness, auth, self.money(600), "capture-1")
        with pytest.raises(REFUSED):
            self.capture(harness, auth, self.money(600), "capture-2")
        self.capture(harness, auth, self.money(400), "capture-3")

    def test_capture_after_void_is_refused(self, harness: BlockHarness) -> None:
        auth = self.authorized(harness, self.money(800), "auth-1")
        self.void(harness, auth, "void-1")
        with pytest.raises(REFUSED):
            self.capture(harness, auth, self.money(800), "capture-after-void")
        with pytest.raises(REFUSED):
            self.capture(harness, auth, self.money(1), "capture-a-little-after-void")

    def test_void_is_idempotent(self, harness: BlockHarness) -> None:
        auth = self.authorized(harness, self.money(800), "auth-1")
        for key in ("void-1", "void-1", "void-2"):
            self.void(harness, auth, key)
        with pytest.raises(REFUSED):
            self.capture(harness, auth, self.money(800), "capture-after-void")

    def test_refunds_never_exceed_captures(self, harness: BlockHarness) -> None:
        auth = self.authorized(harness, self.money(1_000), "auth-1")
        with pytest.raises(REFUSED):
            self.refund(harness, auth, self.money(100), "refund-before-capture")
        self.capture(harness, auth, self.money(600), "capture-1")
        self.refund(harness, auth, self.money(400), "refund-1")
        with pytest.raises(REFUSED):
            self.refund(harness, auth, self.money(300), "refund-2")
        self.refund(harness, auth, self.money(200), "refund-3")
        with pytest.raises(REFUSED):
            self.refund(harness, auth, self.money(1), "refund-4")

    def test_a_refund_replayed_under_its_key_refunds_once(self, harness: BlockHarness) -> None:
        auth = self.authorized(harness, self.money(1_000), "auth-1")
        self.capture(harness, auth, self.money(1_000), "capture-1")
        first = self.refund(harness, auth, self.money(300), "refund-1")
        again = self.refund(harness, auth, self.money(300), "refund-1")
        assert again.id == first.id, f"one refund key refunded twice: {first.id} and {again.id}"
        self.refund(harness, auth, self.money(700), "refund-2")  # 300 + 700: all of it, once

    def test_a_decline_raises_payment_declined_and_authorizes_nothing(self, harness: BlockHarness) -> None:
        amount = self.money(1_000, self.currencies[1])
        details = self.declined_details(harness, amount)
        if details is None:
            pytest.skip(f"{type(self).__name__} says {self.method!r} never declines")
        with pytest.raises(PaymentDeclined):
            self.authorize(harness, amount, "declined-1", details)
        assert self.status(harness, "declined-1") is None

    def test_an_unknown_outcome_is_resolved_by_status_under_the_same_key(self, harness: BlockHarness) -> None:
        amount = self.money(1_000, self.currencies[1])
        details = self.unknown_outcome_details(harness, amount)
        if details is None:
            pytest.skip(f"{type(self).__name__} gives no unknown_outcome_details: its provider never times out")
        with pytest.raises(PaymentOutcomeUnknown):
            self.authorize(harness, amount, "unknown-1", details)
        harness.clock.advance(self.outcome_known_after)
        found = self.status(harness, "unknown-1")
        if found is not None:
            assert found.amount == amount, f"the resolved authorization is for {found.amount}, not {amount}"
            again = self.authorize(harness, amount, "unknown-1", details)
            assert again.id == found.id, "retrying a resolved authorization under its key charged again"
        assert self.status(harness, "unknown-1") == found

    def test_one_key_never_authorizes_twice_under_concurrent_calls(self, harness: BlockHarness) -> None:
        amount = self.money(1_000, self.currencies[1])
        details = self.details(harness, amount)
        made = at_once(lambda: self.authorize(harness, amount, "race-1", details))
        assert made, "no concurrent authorization under one key succeeded"
        assert len({auth.id for auth in made}) == 1, f"one key authorized {len({a.id for a in made})} times"
        found = self.status(harness, "race-1")
        assert found is not None and found.id == made[0].id

    def test_one_key_never_captures_twice_under_concurrent_calls(self, harness: BlockHarness) -> None:
        currency = self.currencies[1]
        auth = self.authorized(harness, self.money(1_000, currency), "auth-1")
        # 400 twice would still fit in the authorization: only the key can keep it to once.
        made = at_once(lambda: self.capture(harness, auth, self.money(400, currency), "race-capture"))
        assert made, "no concurrent capture under one key succeeded"
        assert len({capture.id for capture in made}) == 1, "one capture key captured more than once"
        self.refund(harness, auth, self.money(400, currency), "refund-1")
        with pytest.raises(REFUSED):
            self.refund(harness, auth, self.money(1, currency), "refund-2")

    # -- for the lifecycle contract ------------------------------------------------------------------

    def exercise(self, harness: BlockHarness) -> None:
        """Every state change of the contract once, and calls the block must refuse."""
        auth = self.authorized(harness, self.money(1_000), "exercise-auth-1")
        self.capture(harness, auth, self.money(600), "exercise-capture-1")
        self.refund(harness, auth, self.money(100), "exercise-refund-1")
        with pytest.raises(REFUSED):
            self.refund(harness, auth, self.money(10_000), "exercise-refund-too-much")
        other = self.authorized(harness, self.money(500, self.currencies[1]), "exercise-auth-2")
        self.void(harness, other, "exercise-void-1")
        with pytest.raises(REFUSED):
            self.capture(harness, other, self.money(500, self.currencies[1]), "exercise-capture-after-void")
        declined = self.declined_details(harness, self.money(700))
        if declined is not None:
            with pytest.raises(PaymentDeclined):
                self.authorize(harness, self.money(700), "exercise-declined", declined)


def at_once(call: Callable[[], T], count: int = CONCURRENT_CALLS) -> list[T]:
    """Run ``call`` in ``count`` threads released together; the results of those that succeeded. A
    RetailBlocksError (a block refusing a duplicate in flight) is allowed; anything else is re-raised."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            result = call()
        except BlockFailure as error:
            with lock:
                failures.append(error)
            return
        except RetailBlocksError:
            return
        except BaseException as error:
            with lock:
                failures.append(error)
            return
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results


__all__ = ["REFUSED", "PaymentContract", "at_once"]
