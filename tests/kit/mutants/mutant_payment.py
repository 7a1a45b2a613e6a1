"""Payment blocks with one bug each; the payment contract must fail every one."""

from __future__ import annotations

from collections.abc import Mapping

from retailblocks_sandbox_card import SandboxCard
from retailblocks_stored_value import StoredValue

from retailblocks import FlowContext, hookimpl
from retailblocks.errors import NotRefundable, PaymentDeclined
from retailblocks.model import Money, PaymentAuthorization, PaymentCapture, PaymentRefund
from tests.kit.mutants.reference import SandboxCardContract, StoredValueContract


class OverRefundingValue(StoredValue):
    @hookimpl
    def payment_refund(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentRefund:
        try:
            return super().payment_refund(ctx, authorization, amount, idempotency_key)
        except NotRefundable:
            # The bug: a refund beyond what was captured is answered as done.
            return PaymentRefund(ctx.ids.new_id("rfd"), authorization.id, amount)


class MutantOverRefund(StoredValueContract):
    """Refunds more than was captured."""

    block_class = OverRefundingValue


class KeyForgettingCard(SandboxCard):
    @hookimpl
    def payment_authorize(
        self,
        ctx: FlowContext,
        method: str,
        amount: Money,
        details: Mapping[str, str],
        member_id: str | None,
        idempotency_key: str,
    ) -> PaymentAuthorization:
        # The bug: each call sends the provider a fresh key, so a retry charges again.
        fresh = f"{idempotency_key}-{ctx.ids.new_id('try')}"
        return super().payment_authorize(ctx, method, amount, details, member_id, fresh)


class MutantDoubleChargeOnOneKey(SandboxCardContract):
    """Authorizes again when called again with the same idempotency key."""

    block_class = KeyForgettingCard


class ForgetfulVoidCard(SandboxCard):
    @hookimpl
    def payment_void(self, ctx: FlowContext, authorization: PaymentAuthorization, idempotency_key: str) -> None:
        # The bug: the void never reaches the provider, so the authorization can still be captured.
        return None


class MutantCaptureAfterVoid(SandboxCardContract):
    """Captures an authorization that was voided."""

    block_class = ForgetfulVoidCard


class MerchantCurrencyCard(SandboxCard):
    @hookimpl
    def payment_capture(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentCapture:
        made = super().payment_capture(ctx, authorization, amount, idempotency_key)
        # The bug: the result is stated in the merchant's currency, whatever was captured.
        return PaymentCapture(made.id, made.authorization_id, Money(made.amount.amount, ctx.merchant.currency))


class MutantWrongCurrency(SandboxCardContract):
    """Answers a capture in another currency than the one captured."""

    block_class = MerchantCurrencyCard


class CurrencyBlindValue(StoredValue):
    @hookimpl
    def payment_authorize(
        self,
        ctx: FlowContext,
        method: str,
        amount: Money,
        details: Mapping[str, str],
        member_id: str | None,
        idempotency_key: str,
    ) -> PaymentAuthorization:
        # The bug: the requested currency is ignored; everything is taken in the merchant's.
        merchants = Money(amount.amount, ctx.merchant.currency)
        return super().payment_authorize(ctx, method, merchants, details, member_id, idempotency_key)

    @hookimpl
    def payment_issue(
        self, ctx: FlowContext, method: str, amount: Money, member_id: str | None, idempotency_key: str
    ) -> str:
        merchants = Money(amount.amount, ctx.merchant.currency)
        return super().payment_issue(ctx, method, merchants, member_id, idempotency_key)


class MutantIgnoredCurrency(StoredValueContract):
    """Ignores the requested currency and charges in the merchant's."""

    block_class = CurrencyBlindValue


class ChattyEventCard(SandboxCard):
    @hookimpl
    def payment_capture(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentCapture:
        made = super().payment_capture(ctx, authorization, amount, idempotency_key)
        # The bug: the account's key goes into an event, for "debugging".
        ctx.record("payment.debug", {"capture": made.id, "account": self.config.secret_key})
        return made


class MutantSecretInEvent(SandboxCardContract):
    """Writes its secret key into an event's payload."""

    block_class = ChattyEventCard


class ChattyErrorCard(SandboxCard):
    @hookimpl
    def payment_authorize(
        self,
        ctx: FlowContext,
        method: str,
        amount: Money,
        details: Mapping[str, str],
        member_id: str | None,
        idempotency_key: str,
    ) -> PaymentAuthorization:
        try:
            return super().payment_authorize(ctx, method, amount, details, member_id, idempotency_key)
        except PaymentDeclined as declined:
            # The bug: the decline names the account by its key.
            raise PaymentDeclined(f"{declined} (account {self.config.secret_key})", reason=declined.reason) from None


class MutantSecretInError(SandboxCardContract):
    """Puts its secret key in the message of an error it raises."""

    block_class = ChattyErrorCard
