"""An in-memory card gateway with scripted failures, for tests of this block and blocks around it.

Inject it into the block instead of the sandbox gateway, then script what the next calls do::

    gateway = FakeCardGateway()
    block = SandboxCard(config, gateway=gateway)
    gateway.decline_next(reason="insufficient_funds")
    gateway.time_out_next(charged=True)      # the gateway acts, but the answer is lost
    gateway.fail_next(2)                     # two calls never reach the gateway

Test card numbers behave as in the sandbox; scripted behaviours take precedence over the card. The
fake is thread-safe and, like the sandbox, idempotent per key.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import attrs

from retailblocks.clock import Clock
from retailblocks.model import Money
from retailblocks_sandbox_card import cards
from retailblocks_sandbox_card.cards import CardOutcome
from retailblocks_sandbox_card.gateway import (
    GatewayCharge,
    GatewayDeclined,
    GatewayOperation,
    GatewayRejected,
    GatewayTimeout,
    GatewayUnavailable,
    OperationKind,
    RejectionCode,
)


@dataclass
class _Script:
    """A scripted behaviour of the next call: decline, time out (with or without effect), fail."""

    kind: str
    reason: str = ""
    charged: bool = False


@dataclass
class _Attempt:
    key: str
    fingerprint: str
    charge: GatewayCharge | None
    decline: GatewayDeclined | None
    resolves_at: datetime | None


@dataclass(frozen=True)
class GatewayCall:
    """One call that reached the fake (a failed-to-connect call is not recorded)."""

    operation: str
    idempotency_key: str


class FakeCardGateway:
    """A :class:`~retailblocks_sandbox_card.gateway.CardGateway` held in memory.

    ``clock`` and ``timeout_resolution`` decide when a timed-out authorization can be told by
    :meth:`status`; without a clock it can be told at once.
    """

    def __init__(self, *, clock: Clock | None = None, timeout_resolution: timedelta = timedelta(0)):
        self._clock = clock
        self._timeout_resolution = timeout_resolution
        self._lock = threading.Lock()
        self._script: deque[_Script] = deque()
        self._attempts: dict[str, _Attempt] = {}
        self._charges: dict[str, GatewayCharge] = {}
        self._operations: dict[str, GatewayOperation] = {}
        self._numbers = itertools.count(1)
        #: Every call that reached the gateway, in order.
        self.calls: list[GatewayCall] = []

    # --- scripting ----------------------------------------------------------------------------

    def decline_next(self, reason: str = "card_declined", *, times: int = 1) -> None:
        """The next ``times`` calls (authorizations or operations) are declined with ``reason``."""
        self._push(_Script("decline", reason=reason), times)

    def time_out_next(self, *, charged: bool, times: int = 1) -> None:
        """The next calls time out; with ``charged`` the gateway acts before the answer is lost."""
        self._push(_Script("timeout", charged=charged), times)

    def fail_next(self, times: int = 1) -> None:
        """The next ``times`` calls never reach the gateway (GatewayUnavailable, no effect)."""
        self._push(_Script("unavailable"), times)

    @property
    def charges(self) -> list[GatewayCharge]:
        """The authorizations the gateway made, as they stand now."""
        with self._lock:
            return list(self._charges.values())

    # --- CardGateway ------------------------------------------------------------------------------

    def authorize(self, card_number: str, amount: Money, *, idempotency_key: str) -> GatewayCharge:
        with self._lock:
            script = self._next_script("authorize", idempotency_key)
            fingerprint = cards.fingerprint(card_number, amount.amount, amount.currency)
            attempt = self._attempts.get(idempotency_key)
            if attempt is not None:
                if attempt.fingerprint != fingerprint:
                    raise GatewayRejected(
                        f"idempotency key {idempotency_key!r} was already used for another request",
                        code=RejectionCode.KEY_REUSED,
                    )
                return self._answer(attempt)
            outcome = cards.outcome_of(card_number)
            decline: GatewayDeclined | None = None
            timed_out = outcome in (
                CardOutcome.TIMEOUT_AUTHORIZED,
                CardOutcome.TIMEOUT_NOT_AUTHORIZED,
            )
            charged = outcome in (CardOutcome.APPROVE, CardOutcome.TIMEOUT_AUTHORIZED)
            if script is not None and script.kind == "decline":
                decline, charged, timed_out = (
                    GatewayDeclined("declined", reason=script.reason),
                    False,
                    False,
                )
            elif script is not None and script.kind == "timeout":
                timed_out, charged = True, script.charged
            elif not charged and not timed_out:
                decline = GatewayDeclined(f"declined: {outcome.value}", reason=outcome.value)
            charge = None
            if charged:
                charge = GatewayCharge(
                    id=f"ch_fake_{next(self._numbers)}",
                    idempotency_key=idempotency_key,
                    amount=amount,
                    captured=0,
                    refunded=0,
                    voided=False,
                    card_last4=cards.last4(card_number),
                    brand=cards.brand_of(card_number),
                    created_at=self._now(),
                )
                self._charges[charge.id] = charge
            elif timed_out:
                decline = GatewayDeclined("timed out, not authorized", reason="processing_error")
            resolves_at = self._now() + self._timeout_resolution if timed_out else None
            self._attempts[idempotency_key] = _Attempt(idempotency_key, fingerprint, charge, decline, resolves_at)
            if timed_out:
                raise GatewayTimeout(f"no answer to the authorization {idempotency_key!r}")
            return self._answer(self._attempts[idempotency_key])

    def status(self, idempotency_key: str) -> GatewayCharge | None:
        with self._lock:
            script = self._next_script("status", idempotency_key)
            if script is not None and script.kind == "timeout":
                raise GatewayTimeout(f"no answer to the status query {idempotency_key!r}")
            attempt = self._attempts.get(idempotency_key)
            if attempt is None or (attempt.decline is not None and attempt.resolves_at is None):
                return None
            try:
                return self._answer(attempt)
            except GatewayDeclined:
                return None

    def capture(self, charge_id: str, amount: Money, *, idempotency_key: str) -> GatewayOperation:
        def apply(charge: GatewayCharge) -> tuple[GatewayCharge, Money]:
            if charge.voided:
                raise GatewayRejected(f"charge {charge_id} was voided", code=RejectionCode.CHARGE_VOIDED)
            if charge.captured + amount.amount > charge.amount.amount:
                raise GatewayRejected(
                    f"cannot capture {amount}: {charge.amount.amount - charge.captured} minor units left",
                    code=RejectionCode.AMOUNT_TOO_LARGE,
                )
            return attrs.evolve(charge, captured=charge.captured + amount.amount), amount

        return self._operate(OperationKind.CAPTURE, charge_id, amount, idempotency_key, apply)

    def void(self, charge_id: str, *, idempotency_key: str) -> GatewayOperation:
        def apply(charge: GatewayCharge) -> tuple[GatewayCharge, Money]:
            if charge.voided:
                return charge, Money.zero(charge.amount.currency)
            remainder = Money(charge.amount.amount - charge.captured, charge.amount.currency)
            return attrs.evolve(charge, voided=True), remainder

        return self._operate(OperationKind.VOID, charge_id, None, idempotency_key, apply)

    def refund(self, charge_id: str, amount: Money, *, idempotency_key: str) -> GatewayOperation:
        def apply(charge: GatewayCharge) -> tuple[GatewayCharge, Money]:
            if charge.refunded + amount.amount > charge.captured:
                raise GatewayRejected(
                    f"cannot refund {amount}: {charge.captured - charge.refunded} minor units refundable",
                    code=RejectionCode.NOT_CAPTURED,
                )
            return attrs.evolve(charge, refunded=charge.refunded + amount.amount), amount

        return self._operate(OperationKind.REFUND, charge_id, amount, idempotency_key, apply)

    # --- helpers ------------------------------------------------------------------------------

    def _push(self, script: _Script, times: int) -> None:
        with self._lock:
            self._script.extend([script] * times)

    def _next_script(self, operation: str, key: str) -> _Script | None:
        script = self._script.popleft() if self._script else None
        if script is not None and script.kind == "unavailable":
            raise GatewayUnavailable("the fake gateway refused the connection (scripted)")
        self.calls.append(GatewayCall(operation, key))
        return script

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime(2026, 1, 1, tzinfo=UTC)

    def _answer(self, attempt: _Attempt) -> GatewayCharge:
        if attempt.resolves_at is not None and self._now() < attempt.resolves_at:
            raise GatewayTimeout(f"the authorization {attempt.key!r} is still being processed")
        if attempt.decline is not None:
            raise attempt.decline
        assert attempt.charge is not None
        return self._charges[attempt.charge.id]

    def _operate(
        self,
        kind: OperationKind,
        charge_id: str,
        amount: Money | None,
        key: str,
        apply: Callable[[GatewayCharge], tuple[GatewayCharge, Money]],
    ) -> GatewayOperation:
        with self._lock:
            script = self._next_script(kind.value, key)
            charge = self._charges.get(charge_id)
            if charge is None:
                raise GatewayRejected(f"no charge {charge_id!r}", code=RejectionCode.NO_SUCH_CHARGE)
            if amount is not None and amount.currency != charge.amount.currency:
                raise GatewayRejected(
                    f"charge {charge_id} is in {charge.amount.currency}",
                    code=RejectionCode.CURRENCY_MISMATCH,
                )
            earlier = self._operations.get(key)
            if earlier is not None:
                if (
                    earlier.kind != kind
                    or earlier.charge.id != charge_id
                    or (amount is not None and earlier.amount != amount)
                ):
                    raise GatewayRejected(
                        f"idempotency key {key!r} was already used for another request",
                        code=RejectionCode.KEY_REUSED,
                    )
                return _evolve_operation(earlier, self._charges[charge_id])
            if script is not None and script.kind == "decline":
                raise GatewayDeclined(f"the {kind.value} was declined (scripted)", reason=script.reason)
            updated, moved = apply(charge)
            operation = GatewayOperation(
                id=f"{kind.value[:2]}_fake_{next(self._numbers)}",
                idempotency_key=key,
                kind=kind,
                charge=updated,
                amount=moved,
            )
            if script is not None and script.kind == "timeout" and not script.charged:
                raise GatewayTimeout(f"no answer to the {kind.value} {key!r}")
            self._charges[charge_id] = updated
            self._operations[key] = operation
            if script is not None and script.kind == "timeout":
                raise GatewayTimeout(f"no answer to the {kind.value} {key!r}")
            return operation


def _evolve_operation(operation: GatewayOperation, charge: GatewayCharge) -> GatewayOperation:
    return attrs.evolve(operation, charge=charge)


__all__ = ["FakeCardGateway", "GatewayCall"]
