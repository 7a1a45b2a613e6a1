"""What the stored-value block does: issue, hold, capture, release, refund and report value.

Each operation is idempotent per key: it first looks for a transaction under the key and replays it;
otherwise it claims the key and posts inside a savepoint, so a refusal (a decline, a limit) leaves
nothing behind in the step's transaction, whose other writes belong to other blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.context import FlowContext
from retailblocks.errors import InvalidValue, NotRefundable, PaymentDeclined
from retailblocks.model import (
    Money,
    PaymentAuthorization,
    PaymentBalance,
    PaymentCapture,
    PaymentRefund,
    PaymentStatus,
)
from retailblocks.model.limits import MAX_AMOUNT, MAX_ID_LENGTH, MAX_SLUG_LENGTH, MAX_TEXT_LENGTH, check_text
from retailblocks.storage import Prepared
from retailblocks_stored_value.codes import code_from_id, mask_code, normalize_code
from retailblocks_stored_value.config import StoredValueConfig
from retailblocks_stored_value.errors import KeyReused
from retailblocks_stored_value.ledger import (
    AccountKind,
    AccountStatus,
    Leg,
    SystemRole,
    TransactionKind,
    claim_transaction,
    customer_leg,
    insert_account,
    post,
    system_account_id,
    system_leg,
    transaction_by_key,
)
from retailblocks_stored_value.tables import accounts, authorizations, entries, transactions

GIFT_CARD = "gift_card"
WALLET = "wallet"
METHODS = (GIFT_CARD, WALLET)

# Fresh gift card numbers that collide with an existing one are drawn again; with 60 bits a second
# collision in a row means something is wrong with the id factory, not bad luck.
_CODE_ATTEMPTS = 5

# The statements of authorize, capture, void and refund, built once at import (docs/block-storage.md);
# writes whose row count is the answer are Prepared.
_ACCOUNT = sa.select(accounts).where(accounts.c.id == sa.bindparam("account_id"))
_GIFT_CARD = sa.select(accounts).where(
    accounts.c.code == sa.bindparam("code"), accounts.c.kind == AccountKind.GIFT_CARD.value
)
_WALLET = sa.select(accounts).where(
    accounts.c.member_id == sa.bindparam("member_id"),
    accounts.c.currency == sa.bindparam("currency"),
    accounts.c.kind == AccountKind.WALLET.value,
)
# An authorization with what the follow-ups report of its account (kind, number, owner), in one read.
# The account's columns never change after it is opened, so reading them with the authorization is
# the same as reading them after the posting.
_AUTHORIZATION = (
    sa.select(
        authorizations,
        accounts.c.kind.label("account_kind"),
        accounts.c.code.label("account_code"),
        accounts.c.member_id.label("account_member_id"),
    )
    .join(accounts, accounts.c.id == authorizations.c.account_id)
    .where(authorizations.c.id == sa.bindparam("authorization_id"))
)
# Only the authorization row is locked (a void against captures of it), as before.
_AUTHORIZATION_LOCKED = _AUTHORIZATION.with_for_update(of=authorizations)
_NEW_AUTHORIZATION = Prepared(
    authorizations.insert().values(
        {
            name: sa.bindparam(name)
            for name in (
                "id",
                "account_id",
                "method",
                "currency",
                "amount",
                "captured",
                "released",
                "refunded",
                "idempotency_key",
                "flow_id",
                "created_at",
            )
        }
    )
)
_settle = sa.bindparam("settle", type_=sa.BigInteger)
_CAPTURE = Prepared(
    authorizations.update()
    .where(
        authorizations.c.id == sa.bindparam("authorization_id"),
        authorizations.c.amount - authorizations.c.captured - authorizations.c.released >= _settle,
    )
    .values(captured=authorizations.c.captured + _settle)
)
_RELEASE = Prepared(
    authorizations.update()
    .where(
        authorizations.c.id == sa.bindparam("authorization_id"),
        authorizations.c.captured == sa.bindparam("was_captured", type_=sa.BigInteger),
        authorizations.c.released == sa.bindparam("was_released", type_=sa.BigInteger),
    )
    .values(released=authorizations.c.released + _settle)
)
_REFUND = Prepared(
    authorizations.update()
    .where(
        authorizations.c.id == sa.bindparam("authorization_id"),
        authorizations.c.captured - authorizations.c.refunded >= _settle,
    )
    .values(refunded=authorizations.c.refunded + _settle)
)


@attrs.frozen
class StatementLine:
    """One entry on an account, with the balance after it."""

    entry_id: int
    transaction_id: str
    kind: str
    amount: Money  # signed: positive raised the balance
    balance: Money
    at: datetime
    authorization_id: str | None
    flow_id: str | None


class _Refused(Exception):
    """A customer leg's condition failed in the savepoint; the caller explains after rollback."""


class _Replayed(Exception):
    """Another request claimed the key first; the caller rolls back and replays."""


@contextmanager
def _savepoint(connection: sa.Connection) -> Iterator[None]:
    nested = connection.begin_nested()
    try:
        yield
    except BaseException:
        if nested.is_active:
            nested.rollback()
        raise
    nested.commit()


class StoredValueBook:
    """The operations of one stored-value block instance, over the step's connection in ``ctx``."""

    def __init__(self, config: StoredValueConfig, block_id: str):
        self.config = config
        self.block_id = block_id

    # -- issuing -------------------------------------------------------------------------------

    def issue(self, ctx: FlowContext, method: str, amount: Money, member_id: str | None, key: str) -> str:
        _check_method(method)
        _check_positive(amount, "the amount to issue")
        _check_key(key)
        if method == WALLET and not member_id:
            raise InvalidValue("a wallet top-up needs the member_id of the wallet's owner (got none)")
        if member_id is not None:
            _check_member(member_id)
        kind = TransactionKind.ISSUE if method == GIFT_CARD else TransactionKind.TOP_UP
        existing = transaction_by_key(ctx.db, key)
        if existing is not None:
            return self._replay_issue(ctx, existing, kind, amount, member_id, key)
        if method == GIFT_CARD:
            limit = self.config.max_gift_card_value
            if limit is not None and limit.currency == amount.currency and amount > limit:
                raise InvalidValue(
                    f"a gift card may be issued with at most {limit}, not {amount} "
                    "(max_gift_card_value in the block's configuration)"
                )
        now = ctx.clock.now()
        transaction_id = ctx.ids.new_id("svt")
        try:
            with _savepoint(ctx.db):
                if method == GIFT_CARD:
                    account_id, reference = self._open_gift_card(ctx, amount.currency, now)
                    ceiling = None
                else:
                    assert member_id is not None
                    account_id = self._wallet_for(ctx, member_id, amount.currency, now)
                    reference = account_id
                    ceiling = self._wallet_ceiling(amount.currency)
                if not claim_transaction(
                    ctx.db,
                    transaction_id=transaction_id,
                    kind=kind,
                    key=key,
                    amount=amount.amount,
                    currency=amount.currency,
                    account_id=account_id,
                    authorization_id=None,
                    flow_id=ctx.flow_id or None,
                    at=now,
                ):
                    raise _Replayed
                legs = [
                    customer_leg(account_id, amount.amount, ceiling=ceiling),
                    system_leg(SystemRole.ISSUANCE, amount.currency, -amount.amount),
                ]
                if not post(ctx.db, transaction_id, legs, currency=amount.currency, at=now):
                    raise _Refused
        except _Replayed:
            found = transaction_by_key(ctx.db, key)
            assert found is not None
            return self._replay_issue(ctx, found, kind, amount, member_id, key)
        except _Refused:
            balance = self._account(ctx, account_id)["balance"]
            assert ceiling is not None
            why = (
                "max_wallet_balance in the block's configuration"
                if ceiling < MAX_AMOUNT
                else f"no balance may exceed {MAX_AMOUNT} minor units"
            )
            raise InvalidValue(
                f"topping up {amount} would take the wallet of member {member_id!r} from "
                f"{Money(balance, amount.currency)} above its limit of {Money(ceiling, amount.currency)} ({why})"
            ) from None
        ctx.record(
            "stored_value.issued",
            {
                "method": method,
                "kind": kind.value,
                "account_id": account_id,
                "reference": mask_code(reference) if method == GIFT_CARD else reference,
                "amount": amount.amount,
                "currency": amount.currency,
                "transaction_id": transaction_id,
            },
            member_id=member_id,
        )
        return reference

    def _open_gift_card(self, ctx: FlowContext, currency: str, now: datetime) -> tuple[str, str]:
        account_id = ctx.ids.new_id("svc")
        validity = self.config.gift_card_validity
        for _ in range(_CODE_ATTEMPTS):
            code = code_from_id(self.config.code_prefix, ctx.ids.new_id("gc"))
            if insert_account(
                ctx.db,
                {
                    "id": account_id,
                    "kind": AccountKind.GIFT_CARD.value,
                    "code": code,
                    "member_id": None,
                    "currency": currency,
                    "balance": 0,
                    "status": AccountStatus.ACTIVE.value,
                    "expires_at": now + validity if validity is not None else None,
                    "created_at": now,
                },
            ):
                return account_id, code
        raise RuntimeError(
            f"could not draw an unused gift card number in {_CODE_ATTEMPTS} attempts; "
            "is the id factory seeded with a fixed seed in several processes?"
        )

    def _wallet_for(self, ctx: FlowContext, member_id: str, currency: str, now: datetime) -> str:
        insert_account(
            ctx.db,
            {
                "id": ctx.ids.new_id("svw"),
                "kind": AccountKind.WALLET.value,
                "code": None,
                "member_id": member_id,
                "currency": currency,
                "balance": 0,
                "status": AccountStatus.ACTIVE.value,
                "expires_at": None,
                "created_at": now,
            },
        )
        wallet = self._wallet(ctx, member_id, currency)
        assert wallet is not None
        return str(wallet["id"])

    def _wallet_ceiling(self, currency: str) -> int:
        # Every balance is read back as Money, which cannot exceed MAX_AMOUNT: a wallet topped up past it
        # would become unreadable, so the bound is a ceiling even when the configuration sets none.
        limit = self.config.max_wallet_balance
        return min(limit.amount, MAX_AMOUNT) if limit is not None and limit.currency == currency else MAX_AMOUNT

    def _replay_issue(
        self,
        ctx: FlowContext,
        existing: sa.RowMapping,
        kind: TransactionKind,
        amount: Money,
        member_id: str | None,
        key: str,
    ) -> str:
        account = self._account(ctx, existing["account_id"])
        same = (
            existing["kind"] == kind.value
            and existing["amount"] == amount.amount
            and existing["currency"] == amount.currency
            and (kind is TransactionKind.ISSUE or account["member_id"] == member_id)
        )
        if not same:
            raise KeyReused(
                f"idempotency key {key!r} was used for a {existing['kind']} of "
                f"{Money(existing['amount'], existing['currency'])}; it cannot now "
                f"{'issue a gift card' if kind is TransactionKind.ISSUE else 'top up a wallet'} "
                f"of {amount}"
            )
        return str(account["code"] if kind is TransactionKind.ISSUE else account["id"])

    # -- authorizing ---------------------------------------------------------------------------

    def authorize(
        self,
        ctx: FlowContext,
        method: str,
        amount: Money,
        details: Mapping[str, str],
        member_id: str | None,
        key: str,
    ) -> PaymentAuthorization:
        _check_method(method)
        _check_positive(amount, "the amount to authorize")
        _check_key(key)
        wanted = self._wanted_account(method, details, member_id)
        existing = transaction_by_key(ctx.db, key)
        if existing is not None:
            return self._replay_authorize(ctx, existing, method, amount, wanted, key)
        account = self._find_payer(ctx, method, wanted, amount.currency)
        if account is None:
            reason = "unknown_card" if method == GIFT_CARD else "unknown_wallet"
            self._decline(ctx, method, amount, reason, _unknown_message(method, wanted, amount))
        assert account is not None
        if account["currency"] != amount.currency:
            self._decline(
                ctx,
                method,
                amount,
                "currency_mismatch",
                f"{_describe(account)} holds {account['currency']}, it cannot pay {amount}",
            )
        now = ctx.clock.now()
        authorization_id = ctx.ids.new_id("sva")
        transaction_id = ctx.ids.new_id("svt")
        try:
            with _savepoint(ctx.db):
                if not claim_transaction(
                    ctx.db,
                    transaction_id=transaction_id,
                    kind=TransactionKind.HOLD,
                    key=key,
                    amount=amount.amount,
                    currency=amount.currency,
                    account_id=account["id"],
                    authorization_id=authorization_id,
                    flow_id=ctx.flow_id or None,
                    at=now,
                ):
                    raise _Replayed
                legs = [
                    customer_leg(account["id"], -amount.amount, usable_at=now),
                    system_leg(SystemRole.HOLDS, amount.currency, amount.amount),
                ]
                if not post(ctx.db, transaction_id, legs, currency=amount.currency, at=now):
                    raise _Refused
                _NEW_AUTHORIZATION.execute(
                    ctx.db,
                    id=authorization_id,
                    account_id=account["id"],
                    method=method,
                    currency=amount.currency,
                    amount=amount.amount,
                    captured=0,
                    released=0,
                    refunded=0,
                    idempotency_key=key,
                    flow_id=ctx.flow_id or None,
                    created_at=now,
                )
        except _Replayed:
            found = transaction_by_key(ctx.db, key)
            assert found is not None
            return self._replay_authorize(ctx, found, method, amount, wanted, key)
        except _Refused:
            # Read again after the rollback: the reason is whatever stopped the conditional update.
            current = self._account(ctx, account["id"])
            reason, message = _refusal(current, amount, now)
            self._decline(ctx, method, amount, reason, message)
        # The authorization as just written: reading it and its account back would add two round trips.
        result = PaymentAuthorization(
            id=authorization_id,
            block=self.block_id,
            method=method,
            amount=amount,
            status=PaymentStatus.AUTHORIZED,
            reference=_reference(account),
        )
        ctx.record(
            "payment.authorized",
            {
                "authorization_id": authorization_id,
                "method": method,
                "amount": amount.amount,
                "currency": amount.currency,
                "reference": result.reference,
                "transaction_id": transaction_id,
            },
            member_id=account["member_id"],
        )
        return result

    def validate(self, method: str, details: Mapping[str, str], identified: bool) -> None:
        """InvalidValue unless a payment of ``method`` names its payer usably: a gift card's code, a wallet's
        member — named in the details, or the member the checkout identifies by the shopper's identities
        (``identified``). Whether that card or wallet exists is authorization's to say, as a decline."""
        _check_method(method)
        if method == GIFT_CARD:
            self._wanted_account(method, details, None)
        elif details.get("member_id") is not None:
            _check_member(details["member_id"])
        elif not identified:
            raise InvalidValue(
                "a wallet payment needs its member: name it in details['member_id'] or give the shopper's "
                "identities with the cart"
            )

    def status(self, ctx: FlowContext, key: str) -> PaymentAuthorization | None:
        _check_key(key)
        existing = transaction_by_key(ctx.db, key)
        if existing is None or existing["kind"] != TransactionKind.HOLD.value:
            return None
        return self._authorization(ctx, existing["authorization_id"])

    def _wanted_account(self, method: str, details: Mapping[str, str], member_id: str | None) -> str:
        if method == GIFT_CARD:
            code = details.get("code")
            if not code:
                raise InvalidValue(
                    "a gift card payment needs the card number in details['code'] "
                    f"(got details with keys {sorted(details)})"
                )
            check_text(code, "a gift card code", max_length=MAX_TEXT_LENGTH)
            # A number that cannot be one of ours is simply an unknown card; keep it as typed.
            return normalize_code(self.config.code_prefix, code) or code
        owner = member_id or details.get("member_id")
        if not owner:
            raise InvalidValue(
                "a wallet payment needs the member: pass member_id or details['member_id'] (got neither)"
            )
        _check_member(owner)
        return owner

    def _find_payer(self, ctx: FlowContext, method: str, wanted: str, currency: str) -> sa.RowMapping | None:
        if method == GIFT_CARD:
            return self._gift_card(ctx, wanted)
        return self._wallet(ctx, wanted, currency)

    def _replay_authorize(
        self,
        ctx: FlowContext,
        existing: sa.RowMapping,
        method: str,
        amount: Money,
        wanted: str,
        key: str,
    ) -> PaymentAuthorization:
        if existing["kind"] != TransactionKind.HOLD.value:
            raise KeyReused(f"idempotency key {key!r} was used for a {existing['kind']}, not an authorization")
        account = self._account(ctx, existing["account_id"])
        payer = account["code"] if method == GIFT_CARD else account["member_id"]
        if (
            existing["amount"] != amount.amount
            or existing["currency"] != amount.currency
            or account["kind"] != method
            or payer != wanted
        ):
            raise KeyReused(
                f"idempotency key {key!r} authorized "
                f"{Money(existing['amount'], existing['currency'])} "
                f"on {_describe(account)}; it cannot now authorize {amount} on another {method} "
                "or for another amount"
            )
        return self._authorization(ctx, existing["authorization_id"])

    def _decline(self, ctx: FlowContext, method: str, amount: Money, reason: str, message: str) -> None:
        # Recorded outside the savepoint: if the core keeps the step's transaction after a decline,
        # the decline is on record; if it rolls back, nothing of this attempt remains.
        ctx.record(
            "payment.declined",
            {
                "method": method,
                "amount": amount.amount,
                "currency": amount.currency,
                "reason": reason,
                "message": message,
            },
        )
        raise PaymentDeclined(message, reason=reason)

    # -- capturing, releasing, refunding -------------------------------------------------------

    def capture(self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, key: str) -> PaymentCapture:
        _check_positive(amount, "the amount to capture")

        def refused(current: sa.RowMapping) -> Exception:
            currency = current["currency"]
            open_amount = current["amount"] - current["captured"] - current["released"]
            return InvalidValue(
                f"cannot capture {amount} of authorization {current['id']}: only "
                f"{Money(open_amount, currency)} of its {Money(current['amount'], currency)} "
                f"is still held (captured {Money(current['captured'], currency)}, "
                f"released {Money(current['released'], currency)})"
            )

        # Held value becomes the merchant's settled value.
        return PaymentCapture(
            *self._follow_up(
                ctx,
                authorization,
                amount,
                key,
                TransactionKind.CAPTURE,
                _CAPTURE,
                "payment.captured",
                lambda row: [
                    system_leg(SystemRole.HOLDS, amount.currency, -amount.amount),
                    system_leg(SystemRole.SETTLED, amount.currency, amount.amount),
                ],
                refused,
            )
        )

    def void(self, ctx: FlowContext, authorization: PaymentAuthorization, key: str) -> None:
        _check_key(key)
        existing = transaction_by_key(ctx.db, key)
        if existing is not None:
            if existing["kind"] != TransactionKind.RELEASE.value or existing["authorization_id"] != authorization.id:
                raise KeyReused(
                    f"idempotency key {key!r} was used for a {existing['kind']} of authorization "
                    f"{existing['authorization_id']}; it cannot now void authorization "
                    f"{authorization.id}"
                )
            return
        # The row lock serializes this void with captures of the same authorization (on SQLite the
        # write transaction already does), so the remainder read here is the remainder released.
        row = self._authorization_row(ctx, authorization.id, for_update=True)
        remainder = row["amount"] - row["captured"] - row["released"]
        if remainder == 0:
            return  # already voided or fully captured: nothing is held any more
        amount = Money(remainder, row["currency"])
        now = ctx.clock.now()
        transaction_id = ctx.ids.new_id("svt")
        with _savepoint(ctx.db):
            if not self._claim_follow_up(ctx, transaction_id, TransactionKind.RELEASE, key, amount, row, now):
                return  # a concurrent void under the same key did it
            released = _RELEASE.execute(
                ctx.db,
                authorization_id=row["id"],
                was_captured=row["captured"],
                was_released=row["released"],
                settle=remainder,
            )
            if released != 1:
                raise RuntimeError(f"authorization {row['id']} changed while locked for a void")
            post(
                ctx.db,
                transaction_id,
                [
                    customer_leg(row["account_id"], remainder),
                    system_leg(SystemRole.HOLDS, amount.currency, -remainder),
                ],
                currency=amount.currency,
                at=now,
            )
        self._record_follow_up(ctx, "payment.voided", row, amount, transaction_id)

    def refund(self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, key: str) -> PaymentRefund:
        _check_positive(amount, "the amount to refund")

        def refused(current: sa.RowMapping) -> Exception:
            currency = current["currency"]
            return NotRefundable(
                f"cannot refund {amount} of authorization {current['id']}: it captured "
                f"{Money(current['captured'], currency)} and "
                f"{Money(current['refunded'], currency)} "
                f"of that is already refunded, so at most "
                f"{Money(current['captured'] - current['refunded'], currency)} can be"
            )

        # Back to the card or wallet it came from, out of the merchant's settled value.
        return PaymentRefund(
            *self._follow_up(
                ctx,
                authorization,
                amount,
                key,
                TransactionKind.REFUND,
                _REFUND,
                "payment.refunded",
                lambda row: [
                    customer_leg(row["account_id"], amount.amount),
                    system_leg(SystemRole.SETTLED, amount.currency, -amount.amount),
                ],
                refused,
            )
        )

    def _follow_up(
        self,
        ctx: FlowContext,
        authorization: PaymentAuthorization,
        amount: Money,
        key: str,
        kind: TransactionKind,
        statement: Prepared,
        event_type: str,
        legs: Callable[[sa.RowMapping], list[Leg]],
        refused: Callable[[sa.RowMapping], Exception],
    ) -> tuple[str, str, Money]:
        """Capture or refund part of an authorization, once per key: claim the key, move the hold's
        running total with a conditional update (``statement``), post the ledger legs. A replay returns the
        first answer; a refused update raises what ``refused`` says about the authorization as it is now."""
        _check_key(key)
        existing = transaction_by_key(ctx.db, key)
        if existing is not None:
            return self._replay_follow_up(existing, kind, authorization, amount, key)
        row = self._authorization_row(ctx, authorization.id)
        _check_currency(row, amount)
        now = ctx.clock.now()
        transaction_id = ctx.ids.new_id("svt")
        try:
            with _savepoint(ctx.db):
                if not self._claim_follow_up(ctx, transaction_id, kind, key, amount, row, now):
                    raise _Replayed
                if statement.execute(ctx.db, authorization_id=row["id"], settle=amount.amount) != 1:
                    raise _Refused
                post(ctx.db, transaction_id, legs(row), currency=amount.currency, at=now)
        except _Replayed:
            found = transaction_by_key(ctx.db, key)
            assert found is not None
            return self._replay_follow_up(found, kind, authorization, amount, key)
        except _Refused:
            raise refused(self._authorization_row(ctx, row["id"])) from None
        self._record_follow_up(ctx, event_type, row, amount, transaction_id)
        return transaction_id, row["id"], amount

    def _claim_follow_up(
        self,
        ctx: FlowContext,
        transaction_id: str,
        kind: TransactionKind,
        key: str,
        amount: Money,
        row: sa.RowMapping,
        now: datetime,
    ) -> bool:
        return claim_transaction(
            ctx.db,
            transaction_id=transaction_id,
            kind=kind,
            key=key,
            amount=amount.amount,
            currency=amount.currency,
            account_id=row["account_id"],
            authorization_id=row["id"],
            flow_id=ctx.flow_id or None,
            at=now,
        )

    def _replay_follow_up(
        self,
        existing: sa.RowMapping,
        kind: TransactionKind,
        authorization: PaymentAuthorization,
        amount: Money,
        key: str,
    ) -> tuple[str, str, Money]:
        if (
            existing["kind"] != kind.value
            or existing["authorization_id"] != authorization.id
            or existing["amount"] != amount.amount
            or existing["currency"] != amount.currency
        ):
            raise KeyReused(
                f"idempotency key {key!r} was used for a {existing['kind']} of "
                f"{Money(existing['amount'], existing['currency'])} on authorization "
                f"{existing['authorization_id']}; it cannot now {kind.value} {amount} on "
                f"authorization {authorization.id}"
            )
        return str(existing["id"]), str(existing["authorization_id"]), amount

    def _record_follow_up(
        self,
        ctx: FlowContext,
        event_type: str,
        row: sa.RowMapping,
        amount: Money,
        transaction_id: str,
    ) -> None:
        # The account's kind, number and owner came with the authorization row (they never change).
        ctx.record(
            event_type,
            {
                "authorization_id": row["id"],
                "method": row["method"],
                "amount": amount.amount,
                "currency": amount.currency,
                "reference": _account_reference(row["account_kind"], row["account_code"], row["account_id"]),
                "transaction_id": transaction_id,
            },
            member_id=row["account_member_id"],
        )

    # -- expiring --------------------------------------------------------------------------------

    def expire_due(self, ctx: FlowContext) -> int:
        """Take the remaining value off gift cards past their expiry back to issuance; how many."""
        now = ctx.clock.now()
        due = (
            ctx.db.execute(
                sa.select(accounts.c.id, accounts.c.balance, accounts.c.currency, accounts.c.code)
                .where(
                    accounts.c.kind == AccountKind.GIFT_CARD.value,
                    accounts.c.expires_at <= now,
                    accounts.c.balance > 0,
                )
                .order_by(accounts.c.id)
            )
            .mappings()
            .all()
        )
        expired = 0
        for card in due:
            transaction_id = ctx.ids.new_id("svt")
            try:
                with _savepoint(ctx.db):
                    claim_transaction(
                        ctx.db,
                        transaction_id=transaction_id,
                        kind=TransactionKind.EXPIRE,
                        key=f"expire:{transaction_id}",
                        amount=card["balance"],
                        currency=card["currency"],
                        account_id=card["id"],
                        authorization_id=None,
                        flow_id=ctx.flow_id or None,
                        at=now,
                    )
                    legs = [
                        customer_leg(card["id"], -card["balance"]),
                        system_leg(SystemRole.ISSUANCE, card["currency"], card["balance"]),
                    ]
                    if not post(ctx.db, transaction_id, legs, currency=card["currency"], at=now):
                        raise _Refused  # spent concurrently; the next run takes what is left
            except _Refused:
                continue
            expired += 1
            ctx.record(
                "stored_value.expired",
                {
                    "account_id": card["id"],
                    "reference": mask_code(card["code"]),
                    "amount": card["balance"],
                    "currency": card["currency"],
                    "transaction_id": transaction_id,
                },
            )
        return expired

    # -- reporting and operating -----------------------------------------------------------------

    def balance(self, ctx: FlowContext, reference: str, currency: str | None = None) -> Money:
        currency = currency or ctx.merchant.currency
        account = self._resolve(ctx, reference, currency)
        if account is None:
            return Money.zero(currency)  # a member who never had a wallet holds nothing
        return Money(account["balance"], account["currency"])

    def statement(self, ctx: FlowContext, reference: str, currency: str | None = None) -> list[StatementLine]:
        currency = currency or ctx.merchant.currency
        account = self._resolve(ctx, reference, currency)
        if account is None:
            return []
        rows = (
            ctx.db.execute(
                sa.select(
                    entries.c.id,
                    entries.c.transaction_id,
                    entries.c.amount,
                    entries.c.at,
                    transactions.c.kind,
                    transactions.c.authorization_id,
                    transactions.c.flow_id,
                )
                .join(transactions, transactions.c.id == entries.c.transaction_id)
                .where(entries.c.account_id == account["id"])
                .order_by(entries.c.id)
            )
            .mappings()
            .all()
        )
        lines: list[StatementLine] = []
        running = 0
        for row in rows:
            running += row["amount"]
            lines.append(
                StatementLine(
                    entry_id=row["id"],
                    transaction_id=row["transaction_id"],
                    kind=row["kind"],
                    amount=Money(row["amount"], account["currency"]),
                    balance=Money(running, account["currency"]),
                    at=row["at"],
                    authorization_id=row["authorization_id"],
                    flow_id=row["flow_id"],
                )
            )
        return lines

    def set_status(self, ctx: FlowContext, reference: str, status: AccountStatus) -> None:
        account = self._resolve(ctx, reference, ctx.merchant.currency)
        if account is None or account["kind"] == AccountKind.SYSTEM.value:
            raise InvalidValue(f"no gift card or wallet {reference!r} to {_verb(status)}")
        changed = ctx.db.execute(
            accounts.update()
            .where(accounts.c.id == account["id"], accounts.c.status != status.value)
            .values(status=status.value)
        ).rowcount
        if changed:
            ctx.record(
                "stored_value.frozen" if status is AccountStatus.FROZEN else "stored_value.unfrozen",
                {"account_id": account["id"], "reference": _reference(account)},
                member_id=account["member_id"],
            )

    # -- look-ups ----------------------------------------------------------------------------------

    def _resolve(self, ctx: FlowContext, reference: str, currency: str) -> sa.RowMapping | None:
        """A gift card number, a system role, an account id or a member id, in that order."""
        check_text(reference, "a gift card or wallet reference", max_length=MAX_ID_LENGTH, allow_empty=False)
        code = normalize_code(self.config.code_prefix, reference)
        if code is not None:
            card = self._gift_card(ctx, code)
            if card is None:
                raise InvalidValue(f"no gift card {mask_code(code)} was issued by this block")
            return card
        if reference in {role.value for role in SystemRole}:
            return self._account_or_none(ctx, system_account_id(SystemRole(reference), currency))
        by_id = self._account_or_none(ctx, reference)
        if by_id is not None:
            return by_id
        return self._wallet(ctx, reference, currency)

    def _gift_card(self, ctx: FlowContext, code: str) -> sa.RowMapping | None:
        return ctx.db.execute(_GIFT_CARD, {"code": code}).mappings().first()

    def _wallet(self, ctx: FlowContext, member_id: str, currency: str) -> sa.RowMapping | None:
        return ctx.db.execute(_WALLET, {"member_id": member_id, "currency": currency}).mappings().first()

    def _account_or_none(self, ctx: FlowContext, account_id: str) -> sa.RowMapping | None:
        return ctx.db.execute(_ACCOUNT, {"account_id": account_id}).mappings().first()

    def _account(self, ctx: FlowContext, account_id: str) -> sa.RowMapping:
        account = self._account_or_none(ctx, account_id)
        if account is None:
            raise RuntimeError(f"stored-value account {account_id} is missing")
        return account

    def _authorization_row(self, ctx: FlowContext, authorization_id: str, *, for_update: bool = False) -> sa.RowMapping:
        query = _AUTHORIZATION_LOCKED if for_update else _AUTHORIZATION
        row = ctx.db.execute(query, {"authorization_id": authorization_id}).mappings().first()
        if row is None:
            raise InvalidValue(
                f"no stored-value authorization {authorization_id!r} was made by block {self.block_id!r}"
            )
        return row

    def payment_balance(self, ctx: FlowContext, authorization: PaymentAuthorization) -> PaymentBalance | None:
        """What the ledger holds of one of this block's authorizations: captured and refunded so far."""
        row = ctx.db.execute(_AUTHORIZATION, {"authorization_id": authorization.id}).mappings().first()
        if row is None:
            return None
        currency = row["currency"]
        return PaymentBalance(
            authorization.id,
            authorization_status(row["amount"], row["captured"], row["released"], row["refunded"]),
            Money(row["captured"], currency),
            Money(row["refunded"], currency),
        )

    def _authorization(self, ctx: FlowContext, authorization_id: str) -> PaymentAuthorization:
        row = self._authorization_row(ctx, authorization_id)
        return PaymentAuthorization(
            id=row["id"],
            block=self.block_id,
            method=row["method"],
            amount=Money(row["amount"], row["currency"]),
            status=authorization_status(row["amount"], row["captured"], row["released"], row["refunded"]),
            reference=_account_reference(row["account_kind"], row["account_code"], row["account_id"]),
        )


def authorization_status(amount: int, captured: int, released: int, refunded: int) -> PaymentStatus:
    """Where an authorization stands, from its running totals."""
    if refunded:
        return PaymentStatus.REFUNDED if refunded == captured else PaymentStatus.PARTIALLY_REFUNDED
    if captured:
        return PaymentStatus.CAPTURED if captured + released == amount else PaymentStatus.PARTIALLY_CAPTURED
    if released:
        return PaymentStatus.VOIDED
    return PaymentStatus.AUTHORIZED


def _refusal(account: sa.RowMapping, amount: Money, now: datetime) -> tuple[str, str]:
    described = _describe(account)
    if account["status"] != AccountStatus.ACTIVE.value:
        return "frozen", f"{described} is frozen and cannot pay"
    expires_at = account["expires_at"]
    if expires_at is not None and as_utc(expires_at) <= now:
        return (
            "expired",
            f"{described} expired on {as_utc(expires_at).date().isoformat()} and cannot pay",
        )
    return (
        "insufficient_funds",
        f"{described} holds {Money(account['balance'], account['currency'])}, less than the {amount} asked",
    )


def _reference(account: sa.RowMapping) -> str:
    return _account_reference(account["kind"], account["code"], account["id"])


def _account_reference(kind: str, code: str | None, account_id: str) -> str:
    if kind == AccountKind.GIFT_CARD.value:
        assert code is not None
        return mask_code(code)
    return str(account_id)


def _describe(account: sa.RowMapping) -> str:
    if account["kind"] == AccountKind.GIFT_CARD.value:
        return f"gift card {mask_code(account['code'])}"
    return f"the wallet of member {account['member_id']!r}"


def _unknown_message(method: str, wanted: str, amount: Money) -> str:
    if method == GIFT_CARD:
        return f"no gift card {mask_code(wanted)} was issued by this block"
    return f"member {wanted!r} has no {amount.currency} wallet"


def _verb(status: AccountStatus) -> str:
    return "freeze" if status is AccountStatus.FROZEN else "unfreeze"


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise InvalidValue(f"the stored-value block pays by {' or '.join(METHODS)} (got {method!r})")


def _check_positive(amount: Money, what: str) -> None:
    if not isinstance(amount, Money):
        raise InvalidValue(f"{what} must be Money (got {type(amount).__name__})")
    if amount.amount <= 0:
        raise InvalidValue(f"{what} must be more than zero (got {amount})")


def _check_key(key: str) -> None:
    check_text(key, "an idempotency key", max_length=200, allow_empty=False)


def _check_member(member_id: str) -> None:
    check_text(member_id, "a member id", max_length=MAX_SLUG_LENGTH, allow_empty=False)


def _check_currency(row: sa.RowMapping, amount: Money) -> None:
    if row["currency"] != amount.currency:
        raise InvalidValue(
            f"authorization {row['id']} is in {row['currency']}, it cannot be settled in {amount.currency}"
        )
