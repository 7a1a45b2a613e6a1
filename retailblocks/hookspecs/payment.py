"""The payment contract: authorize, capture, void, refund, and resolving an unknown outcome.

Every payment method (``card``, ``gift_card``, ``wallet``, ``points``…) is answered by one block: the
block that lists it in its ``payment_methods``, or the one the manifest's ``routing.payment`` names.
Calls on an existing authorization go to the block that made it.

A payment block calls the outside world: it passes ``idempotency_key`` to the provider so that a retry
never charges twice, and makes the outside call before writing through ``ctx.db``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from retailblocks.hookspecs._markers import Dispatch, contract

if TYPE_CHECKING:
    from retailblocks.context import FlowContext
    from retailblocks.model import Identity, Money, PaymentAuthorization, PaymentBalance, PaymentCapture, PaymentRefund


@contract(Dispatch.ROUTED, required=True, route="method")
def payment_authorize(
    ctx: FlowContext,
    method: str,
    amount: Money,
    details: Mapping[str, str],
    member_id: str | None,
    idempotency_key: str,
) -> PaymentAuthorization:
    """Ask the payer's provider to promise ``amount``, with what the shopper gave for ``method`` in
    ``details`` (a card token, a wallet id; secrets among them are never logged nor recorded).

    Raise :class:`~retailblocks.errors.PaymentDeclined` when the provider refuses, and
    :class:`~retailblocks.errors.PaymentOutcomeUnknown` when it cannot tell (a time-out); the core then
    resolves the outcome with :func:`payment_status` under the same key.
    """


@contract(Dispatch.ROUTED, route="method")
def payment_validate(ctx: FlowContext, method: str, details: Mapping[str, str], identities: Sequence[Identity]) -> None:
    """Refuse a payment request that could never be authorized as written, before anything is recorded.

    ``identities`` are the shopper's, as the cart gives them (a wallet with no member named and no
    identity to find one by could never be paid from).

    Raise :class:`~retailblocks.errors.InvalidValue` when ``details`` lack what ``method`` needs or carry
    it malformed (no card number, a number that cannot be one). Judge only the request: whether the
    provider accepts the payer (a declined card, an unknown gift card) is :func:`payment_authorize`'s to
    say, as a decline. Read nothing and write nothing: the core calls it before the order exists, so that
    invalid input leaves no record. Optional.

    .. versionadded:: 1.1
    """


@contract(Dispatch.ROUTED, required=True, route="method")
def payment_status(ctx: FlowContext, method: str, idempotency_key: str) -> PaymentAuthorization | None:
    """What became of the authorization attempted under ``idempotency_key``: the authorization if the
    provider made one, None if it did not. Raises PaymentOutcomeUnknown if it still cannot tell."""


@contract(Dispatch.ROUTED, required=True, route="authorization")
def payment_capture(
    ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
) -> PaymentCapture:
    """Take ``amount`` (at most what is authorized and not yet captured) of an authorization."""


@contract(Dispatch.ROUTED, required=True, route="authorization")
def payment_void(ctx: FlowContext, authorization: PaymentAuthorization, idempotency_key: str) -> None:
    """Compensation for :func:`payment_authorize`: cancel the uncaptured part. Idempotent."""


@contract(Dispatch.ROUTED, required=True, route="authorization")
def payment_refund(
    ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
) -> PaymentRefund:
    """Give ``amount`` of the captured money back to where it came from. May be called several times for
    partial refunds; the refunds of one authorization never exceed its captures. Idempotent per key."""


@contract(Dispatch.ROUTED, route="method")
def payment_issue(ctx: FlowContext, method: str, amount: Money, member_id: str | None, idempotency_key: str) -> str:
    """Issue a stored-value instrument of ``method`` (a gift card, a wallet top-up) loaded with ``amount``
    and return the instrument's reference (a card number, a wallet id). Optional: only blocks that hold
    value implement it. Idempotent per key."""


@contract(Dispatch.ROUTED, route="authorization")
def payment_balance(ctx: FlowContext, authorization: PaymentAuthorization) -> PaymentBalance | None:
    """What the block holds of ``authorization`` now: its status, what was captured of it and what was
    refunded, as the block's own records say (never the core's). Read-only.

    Optional, but ``blocks audit`` reconciles every order against it (the money the orders say went
    back equals what the payment blocks refunded) and reports a block without it as not checked.

    .. versionadded:: 1.1
    """
