"""The card gateway as the block sees it: the :class:`CardGateway` protocol, answers and errors.

The gateway is the outside world. Every call carries an idempotency key; the same key with the
same request returns the first answer without a second effect, the same key with another request
is refused.

::

    GatewayError
    ├── GatewayDeclined      the issuer refused (``reason``: card_declined, insufficient_funds…)
    ├── GatewayRejected      the request breaks a rule (``code``: amount_too_large, key_reused…)
    ├── GatewayTimeout       no answer: the call may or may not have taken effect
    └── GatewayUnavailable   the call never reached the gateway: nothing happened, retry freely
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol

import attrs

from retailblocks.model import Money, PaymentStatus


class GatewayError(Exception):
    """Base of what a card gateway raises."""


class GatewayDeclined(GatewayError):
    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class RejectionCode(enum.StrEnum):
    NO_SUCH_CHARGE = "no_such_charge"
    KEY_REUSED = "idempotency_key_reused"
    CURRENCY_MISMATCH = "currency_mismatch"
    AMOUNT_TOO_LARGE = "amount_too_large"
    CHARGE_VOIDED = "charge_voided"
    NOT_CAPTURED = "amount_exceeds_captured"


class GatewayRejected(GatewayError):
    def __init__(self, message: str, *, code: RejectionCode):
        super().__init__(message)
        self.code = code


class GatewayTimeout(GatewayError):
    """No answer in time; ask :meth:`CardGateway.status` what became of the request."""


class GatewayUnavailable(GatewayError):
    """The request never reached the gateway (connection refused): retrying is safe."""


class OperationKind(enum.StrEnum):
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


@attrs.frozen
class GatewayCharge:
    """An authorization held by the gateway, as it stands after the call that returned it."""

    id: str
    idempotency_key: str
    amount: Money
    captured: int
    refunded: int
    voided: bool
    card_last4: str
    brand: str
    created_at: datetime

    @property
    def status(self) -> PaymentStatus:
        return charge_status(self.amount.amount, self.captured, self.refunded, voided=self.voided)


@attrs.frozen
class GatewayOperation:
    """A capture, void or refund; ``amount`` is what it moved (a void: the remainder released)."""

    id: str
    idempotency_key: str
    kind: OperationKind
    charge: GatewayCharge
    amount: Money


def charge_status(amount: int, captured: int, refunded: int, *, voided: bool) -> PaymentStatus:
    """The status of an authorization from its totals."""
    if refunded:
        return PaymentStatus.REFUNDED if refunded >= captured else PaymentStatus.PARTIALLY_REFUNDED
    if voided:
        return PaymentStatus.VOIDED if captured == 0 else PaymentStatus.CAPTURED
    if captured == 0:
        return PaymentStatus.AUTHORIZED
    return PaymentStatus.CAPTURED if captured >= amount else PaymentStatus.PARTIALLY_CAPTURED


class CardGateway(Protocol):
    """A card gateway: the block's only door to the outside world.

    Implementations: :class:`~retailblocks_sandbox_card.sandbox.SandboxGateway` (persisted, used
    by the block in a stack) and :class:`~retailblocks_sandbox_card.testing.FakeCardGateway` (in
    memory, with scripted failures, for tests).
    """

    def authorize(self, card_number: str, amount: Money, *, idempotency_key: str) -> GatewayCharge:
        """Hold ``amount``; raises GatewayDeclined, GatewayTimeout or GatewayUnavailable."""
        ...

    def capture(self, charge_id: str, amount: Money, *, idempotency_key: str) -> GatewayOperation:
        """Take part or all of what is held and not yet captured."""
        ...

    def void(self, charge_id: str, *, idempotency_key: str) -> GatewayOperation:
        """Release what is held and not captured; voiding a voided charge changes nothing."""
        ...

    def refund(self, charge_id: str, amount: Money, *, idempotency_key: str) -> GatewayOperation:
        """Give back part of what was captured; refunds never exceed captures."""
        ...

    def status(self, idempotency_key: str) -> GatewayCharge | None:
        """The charge an authorization under ``idempotency_key`` made, None if it made none.

        Raises GatewayTimeout while the gateway itself cannot tell yet.
        """
        ...
