"""The ``stored-value`` block: gift cards and member wallets paid from a double-entry ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from retailblocks import AuditFinding, Block, Capability, FlowContext, hookimpl
from retailblocks.model import Identity, Money, PaymentAuthorization, PaymentBalance, PaymentCapture, PaymentRefund
from retailblocks.storage import Migration
from retailblocks_stored_value.audit import audit_ledger
from retailblocks_stored_value.config import StoredValueConfig
from retailblocks_stored_value.ledger import AccountStatus
from retailblocks_stored_value.operations import METHODS, StatementLine, StoredValueBook
from retailblocks_stored_value.tables import MIGRATIONS


class StoredValue(Block):
    """Gift cards (``gift_card``, paid with ``details["code"]``) and member wallets (``wallet``,
    paid by ``member_id``), issued with :func:`payment_issue` and spent through the payment hooks.

    Value moves between accounts in balanced postings: issuing takes it from the merchant's
    issuance account, an authorization moves it from the card or wallet to holds, a capture from
    holds to settled, a void from holds back to the card, a refund from settled back to the card
    it came from.
    """

    name = "stored-value"
    # Its permissions, shown by `blocks plugins` and checked on every statement in tests: its own tables,
    # and no table of the core.
    owns_tables = (
        "stored_value_accounts",
        "stored_value_authorizations",
        "stored_value_entries",
        "stored_value_transactions",
    )
    reads_core_tables = ()
    capabilities = frozenset({Capability.PAYMENT})
    core_api = "1.1"
    Config = StoredValueConfig
    payment_methods = METHODS
    description = "Gift cards and member wallets on a double-entry ledger."

    def __init__(self, config: StoredValueConfig | None = None, *, block_id: str | None = None):
        super().__init__(config if config is not None else StoredValueConfig(), block_id=block_id)
        self.book = StoredValueBook(self.config, self.id)

    # -- lifecycle -----------------------------------------------------------------------------

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def stack_maintain(self, ctx: FlowContext) -> None:
        self.book.expire_due(ctx)

    # -- payment -------------------------------------------------------------------------------

    @hookimpl
    def payment_issue(
        self,
        ctx: FlowContext,
        method: str,
        amount: Money,
        member_id: str | None,
        idempotency_key: str,
    ) -> str:
        """A gift card's number, or the id of the member's wallet that was topped up."""
        return self.book.issue(ctx, method, amount, member_id, idempotency_key)

    @hookimpl
    def payment_validate(
        self, ctx: FlowContext, method: str, details: Mapping[str, str], identities: Sequence[Identity]
    ) -> None:
        self.book.validate(method, details, bool(identities))

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
        return self.book.authorize(ctx, method, amount, details, member_id, idempotency_key)

    @hookimpl
    def payment_status(self, ctx: FlowContext, method: str, idempotency_key: str) -> PaymentAuthorization | None:
        return self.book.status(ctx, idempotency_key)

    @hookimpl
    def payment_capture(
        self,
        ctx: FlowContext,
        authorization: PaymentAuthorization,
        amount: Money,
        idempotency_key: str,
    ) -> PaymentCapture:
        return self.book.capture(ctx, authorization, amount, idempotency_key)

    @hookimpl
    def payment_void(self, ctx: FlowContext, authorization: PaymentAuthorization, idempotency_key: str) -> None:
        self.book.void(ctx, authorization, idempotency_key)

    @hookimpl
    def payment_refund(
        self,
        ctx: FlowContext,
        authorization: PaymentAuthorization,
        amount: Money,
        idempotency_key: str,
    ) -> PaymentRefund:
        return self.book.refund(ctx, authorization, amount, idempotency_key)

    # -- operating -----------------------------------------------------------------------------

    @hookimpl
    def payment_balance(self, ctx: FlowContext, authorization: PaymentAuthorization) -> PaymentBalance | None:
        return self.book.payment_balance(ctx, authorization)

    def balance(self, ctx: FlowContext, code_or_member: str, currency: str | None = None) -> Money:
        """What a gift card (by number), a wallet (by id) or a member's wallet holds now.

        ``currency`` picks the member's wallet (default: the merchant's currency); a member without
        a wallet holds zero. A string shaped like a gift card number that matches none is an error.
        """
        return self.book.balance(ctx, code_or_member, currency)

    def statement(self, ctx: FlowContext, account: str, currency: str | None = None) -> list[StatementLine]:
        """Every entry on an account, oldest first, with the running balance.

        ``account`` is a gift card number, a wallet id, a member id, or a system role (``issuance``,
        ``holds``, ``settled``) in ``currency``.
        """
        return self.book.statement(ctx, account, currency)

    def freeze(self, ctx: FlowContext, code: str) -> None:
        """Stop a gift card (or wallet) from paying; refunds and voids still reach it."""
        self.book.set_status(ctx, code, AccountStatus.FROZEN)

    def unfreeze(self, ctx: FlowContext, code: str) -> None:
        """Let a frozen gift card (or wallet) pay again."""
        self.book.set_status(ctx, code, AccountStatus.ACTIVE)

    def audit(self, ctx: FlowContext) -> list[str]:
        """Every violated ledger invariant, as a sentence; empty when the books are consistent."""
        return audit_ledger(ctx.db)

    @hookimpl
    def stack_audit(self, ctx: FlowContext) -> list[AuditFinding]:
        problems = self.audit(ctx)
        return [
            AuditFinding(
                "stored-value ledger balanced: entries sum to zero, balances equal entries, none negative",
                not problems,
                "; ".join(problems[:5]),
            )
        ]

    def expire_due(self, ctx: FlowContext) -> int:
        """Return the value left on expired gift cards to issuance; the number of cards expired."""
        return self.book.expire_due(ctx)
