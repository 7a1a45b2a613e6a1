"""The ``sandbox-card`` block: the payment hooks for ``card``, on top of a :class:`CardGateway`.

Every hook calls the gateway first and only then writes the block's own view through ``ctx.db``,
so no database lock is held across the call. The view (payments, operations) is keyed by
idempotency key, so a replay records nothing twice and records each event once.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa

from retailblocks import Block, FlowContext, hookimpl
from retailblocks.context import RouteStack
from retailblocks.errors import (
    CurrencyMismatch,
    InvalidInput,
    InvalidValue,
    NotRefundable,
    PaymentDeclined,
    PaymentOutcomeUnknown,
    UnknownObject,
)
from retailblocks.hookspecs import AsgiApp, Capability
from retailblocks.model import (
    Money,
    PaymentAuthorization,
    PaymentBalance,
    PaymentCapture,
    PaymentRefund,
    PaymentStatus,
)
from retailblocks.storage import Migration, Prepared, PreparedQuery, insert_if_absent
from retailblocks_sandbox_card import cards, notify
from retailblocks_sandbox_card.config import SandboxCardConfig
from retailblocks_sandbox_card.errors import IdempotencyKeyReused
from retailblocks_sandbox_card.gateway import (
    CardGateway,
    GatewayCharge,
    GatewayDeclined,
    GatewayOperation,
    GatewayRejected,
    GatewayTimeout,
    GatewayUnavailable,
    OperationKind,
    RejectionCode,
    charge_status,
)
from retailblocks_sandbox_card.routes import notification_app
from retailblocks_sandbox_card.sandbox import SandboxGateway
from retailblocks_sandbox_card.tables import MIGRATIONS, attempts, operations, payments

T = TypeVar("T")

METHOD = "card"
#: How many unresolved attempts one ``stack_maintain`` call looks at, to keep it cheap.
MAINTAIN_BATCH = 100
_MAX_KEY_LENGTH = 200

# The block's statements, built once at import (docs/block-storage.md).
_PENDING_ATTEMPTS = (
    sa.select(attempts.c.idempotency_key, attempts.c.flow_id)
    .where(attempts.c.status == "pending", attempts.c.created_at <= sa.bindparam("cutoff"))
    .order_by(attempts.c.created_at)
    .limit(MAINTAIN_BATCH)
)
_ATTEMPT_FLOW = sa.select(attempts.c.flow_id).where(attempts.c.idempotency_key == sa.bindparam("key"))
_RESOLVE_ATTEMPT = Prepared(
    attempts.update()
    # Every value a parameter: a literal in a Prepared statement would be a parameter the caller must pass.
    .where(attempts.c.idempotency_key == sa.bindparam("key"), attempts.c.status == sa.bindparam("pending"))
    .values(status=sa.bindparam("status"), resolved_at=sa.bindparam("resolved_at"))
)
_PAYMENT = sa.select(payments).where(payments.c.id == sa.bindparam("payment_id"))
_PAYMENT_BY_KEY = PreparedQuery(sa.select(payments).where(payments.c.idempotency_key == sa.bindparam("key")))
_ATTEMPT = PreparedQuery(sa.select(attempts).where(attempts.c.idempotency_key == sa.bindparam("key")))
_LOCK_PAYMENT = PreparedQuery(_PAYMENT.with_for_update())
_UPDATE_PAYMENT = Prepared(
    payments.update()
    .where(payments.c.id == sa.bindparam("payment_id"))
    .values({name: sa.bindparam(name) for name in ("captured", "refunded", "voided", "status", "updated_at")})
)

_EVENTS = {
    OperationKind.CAPTURE: "payment.captured",
    OperationKind.VOID: "payment.voided",
    OperationKind.REFUND: "payment.refunded",
}


class SandboxCard(Block):
    """Card payments on the sandbox gateway, or on a :class:`CardGateway` passed as ``gateway``."""

    name = "sandbox-card"
    # Its permissions, shown by `blocks plugins` and checked on every statement in tests: its own tables,
    # and no table of the core.
    owns_tables: ClassVar[tuple[str, ...]] = (
        "sandbox_card_attempts",
        "sandbox_card_gateway_charges",
        "sandbox_card_gateway_notifications",
        "sandbox_card_gateway_operations",
        "sandbox_card_operations",
        "sandbox_card_payments",
    )
    reads_core_tables: ClassVar[tuple[str, ...]] = ()
    capabilities = frozenset({Capability.PAYMENT})
    core_api = "1.7"  # ctx.outside_statement
    Config = SandboxCardConfig
    payment_methods = (METHOD,)
    description = "A card gateway sandbox: authorize, capture, void, refund, with test cards."
    config: SandboxCardConfig

    def __init__(
        self,
        config: SandboxCardConfig,
        *,
        block_id: str | None = None,
        gateway: CardGateway | None = None,
    ):
        super().__init__(config, block_id=block_id)
        #: The gateway to use instead of the configured one (a FakeCardGateway in tests).
        self.gateway = gateway

    # --- lifecycle ----------------------------------------------------------------------------

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def simulation_payment_details(
        self, method: str, details: Mapping[str, str], rng: random.Random
    ) -> Mapping[str, str] | None:
        """A simulated shopper with no card named in the profile pays with a test token drawn from ``rng``."""
        return cards.simulated_card(details, rng)

    @hookimpl
    def stack_routes(self, stack: RouteStack) -> AsgiApp | None:
        """``POST /blocks/<id>/notifications``, the gateway's signed notifications; none without a secret."""
        if self.config.callback_secret is None:
            return None
        return notification_app(functools.partial(self.receive_notification, stack))

    def receive_notification(self, stack: RouteStack, body: bytes, signature: str | None) -> Mapping[str, str]:
        """Verify one notification from the gateway and record the outcome it tells, once.

        NotAuthenticated (401) for a missing, forged or stale signature, checked before the body is read;
        InvalidInput (400) for a body that is not a notification or does not match the attempt it names;
        UnknownObject (404) for an authorization this block never attempted. The same notification again
        records nothing more and gets the same answer. The pending checkout's flow then resolves at its next
        recovery without asking the gateway (see payment_status).
        """
        secret = self.config.callback_secret
        if secret is None:
            raise UnknownObject("sandbox-card takes no notifications: its callback_secret is not configured")
        notify.verify(secret, body, signature, stack.clock.now())
        notification = notify.parse(body)
        key = notification.idempotency_key
        with stack.context(flow="notification") as ctx:
            ctx.current_block = self.id
            attempt = _ATTEMPT.first_mapping(ctx.db, key=key)
            if attempt is None:
                raise UnknownObject(f"sandbox-card never attempted an authorization under {key!r}")
            if (attempt["amount"], attempt["currency"]) != (notification.amount, notification.currency):
                raise InvalidInput(
                    f"the notification is for {Money(notification.amount, notification.currency)}, "
                    f"the attempt under {key!r} for {Money(attempt['amount'], attempt['currency'])}"
                )
            if notification.charge is not None:
                charge = GatewayCharge(
                    id=notification.charge["id"],
                    idempotency_key=key,
                    amount=Money(notification.amount, notification.currency),
                    captured=0,
                    refunded=0,
                    voided=False,
                    card_last4=notification.charge["card_last4"],
                    brand=notification.charge["brand"],
                    created_at=ctx.clock.now(),
                )
                self._record_authorization(ctx, charge, member_id=None, flow_id=attempt["flow_id"])
            else:
                _resolve_attempt(ctx.db, key, "not_authorized", ctx)
            outcome = _ATTEMPT.first_mapping(ctx.db, key=key)
        assert outcome is not None
        return {"notification": notification.id, "idempotency_key": key, "outcome": str(outcome["status"])}

    @hookimpl
    def stack_maintain(self, ctx: FlowContext) -> None:
        """Resolve authorization attempts whose outcome never came back, once the gateway knows."""
        cutoff = ctx.clock.now() - self.config.timeout_resolution
        with ctx.read_only_connection() as connection:
            pending = connection.execute(_PENDING_ATTEMPTS, {"cutoff": cutoff}).all()
        if not pending:
            return
        gateway = self._gateway(ctx, writes=False)
        answers: list[tuple[str, str | None, GatewayCharge | None]] = []
        for key, flow_id in pending:
            try:
                answers.append((key, flow_id, self._call(functools.partial(gateway.status, key))))
            except (GatewayTimeout, PaymentOutcomeUnknown):
                continue  # still unknown: the next run asks again
        # Every gateway call is done; now write the block's view.
        for key, flow_id, charge in answers:
            if charge is None:
                _resolve_attempt(ctx.db, key, "not_authorized", ctx)
            else:
                self._record_authorization(ctx, charge, member_id=None, flow_id=flow_id)

    # --- payment ------------------------------------------------------------------------------

    @hookimpl
    def payment_validate(self, ctx: FlowContext, method: str, details: Mapping[str, str]) -> None:
        _check_method(method)
        number = cards.card_from_details(dict(details))
        if details.get("card_number") and not cards.well_formed(number):
            # A number that cannot be a card is a typing mistake, not the gateway's refusal: the checkout
            # is refused before it starts. (An unknown test token stays the gateway's to decline.)
            raise InvalidValue(
                "sandbox-card: details['card_number'] is not a card number "
                "(expected 12 to 19 digits passing the Luhn check)"
            )

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
        _check_method(method)
        _check_key(idempotency_key)
        if amount.amount <= 0:
            raise InvalidValue(f"sandbox-card can authorize only an amount > 0 (got {amount})")
        number = cards.card_from_details(dict(details))
        if not cards.well_formed(number):
            # Checked here, as a card form would: a malformed number need not travel to the gateway.
            self._record_decline(ctx, amount, number, "invalid_card", idempotency_key, member_id)
            raise PaymentDeclined(
                "sandbox-card: the card number is invalid (expected 12 to 19 digits passing the Luhn check)",
                reason="invalid_card",
            )
        gateway = self._gateway(ctx)
        _note_attempt(ctx, idempotency_key, amount)
        try:
            charge = self._call(lambda: gateway.authorize(number, amount, idempotency_key=idempotency_key))
        except GatewayDeclined as declined:
            _resolve_attempt_apart(idempotency_key, "declined", ctx)
            self._record_decline(ctx, amount, number, declined.reason, idempotency_key, member_id)
            raise PaymentDeclined(
                f"sandbox-card: {declined} (card ending {cards.last4(number)})",
                reason=declined.reason,
            ) from None
        except GatewayTimeout:
            raise PaymentOutcomeUnknown(
                f"sandbox-card: the gateway did not answer the authorization {idempotency_key!r}; "
                "ask payment_status with the same key"
            ) from None
        except GatewayRejected as rejected:
            raise _core_error(rejected, "authorize") from None
        if charge.amount != amount:
            raise IdempotencyKeyReused(
                f"idempotency key {idempotency_key!r} already authorized {charge.amount}, not {amount}"
            )
        return self._record_authorization(ctx, charge, member_id=member_id, flow_id=ctx.flow_id or None)

    @hookimpl
    def payment_status(self, ctx: FlowContext, method: str, idempotency_key: str) -> PaymentAuthorization | None:
        _check_method(method)
        _check_key(idempotency_key)
        known, authorization = self._resolved(ctx, idempotency_key)
        if known:
            return authorization
        gateway = self._gateway(ctx, writes=False)
        try:
            charge = self._call(lambda: gateway.status(idempotency_key))
        except GatewayTimeout:
            raise PaymentOutcomeUnknown(
                f"sandbox-card: the gateway cannot yet tell what became of {idempotency_key!r}; "
                f"ask again after {self.config.timeout_resolution}"
            ) from None
        if charge is None:
            _resolve_attempt(ctx.db, idempotency_key, "not_authorized", ctx)
            return None
        flow_id = ctx.db.execute(_ATTEMPT_FLOW, {"key": idempotency_key}).scalar()
        return self._record_authorization(ctx, charge, member_id=None, flow_id=flow_id or ctx.flow_id or None)

    @hookimpl
    def payment_capture(
        self,
        ctx: FlowContext,
        authorization: PaymentAuthorization,
        amount: Money,
        idempotency_key: str,
    ) -> PaymentCapture:
        self._check_ours(authorization)
        _check_key(idempotency_key)
        _check_part(authorization, amount, "capture")
        gateway = self._gateway(ctx)
        operation = self._operate(
            OperationKind.CAPTURE,
            lambda: gateway.capture(authorization.id, amount, idempotency_key=idempotency_key),
        )
        self._record_operation(ctx, authorization, operation)
        return PaymentCapture(operation.id, authorization.id, operation.amount)

    @hookimpl
    def payment_void(self, ctx: FlowContext, authorization: PaymentAuthorization, idempotency_key: str) -> None:
        self._check_ours(authorization)
        _check_key(idempotency_key)
        gateway = self._gateway(ctx)
        operation = self._operate(
            OperationKind.VOID,
            lambda: gateway.void(authorization.id, idempotency_key=idempotency_key),
        )
        self._record_operation(ctx, authorization, operation)

    @hookimpl
    def payment_refund(
        self,
        ctx: FlowContext,
        authorization: PaymentAuthorization,
        amount: Money,
        idempotency_key: str,
    ) -> PaymentRefund:
        self._check_ours(authorization)
        _check_key(idempotency_key)
        _check_part(authorization, amount, "refund")
        gateway = self._gateway(ctx)
        operation = self._operate(
            OperationKind.REFUND,
            lambda: gateway.refund(authorization.id, amount, idempotency_key=idempotency_key),
        )
        self._record_operation(ctx, authorization, operation)
        return PaymentRefund(operation.id, authorization.id, operation.amount)

    @hookimpl
    def payment_balance(self, ctx: FlowContext, authorization: PaymentAuthorization) -> PaymentBalance | None:
        row = self.view_of(ctx.db, authorization.id)
        if row is None:
            return None
        currency = row["currency"]
        return PaymentBalance(
            authorization.id,
            PaymentStatus(row["status"]),
            Money(row["captured"], currency),
            Money(row["refunded"], currency),
        )

    def _resolved(self, ctx: FlowContext, key: str) -> tuple[bool, PaymentAuthorization | None]:
        """Whether the block's view already knows what became of the attempt under ``key`` (a notification
        told it, or an earlier answer), and the authorization it made if any. Read on a connection of its
        own: the step's transaction must not start before a gateway call."""
        with ctx.read_only_connection() as connection:
            attempt = _ATTEMPT.first_mapping(connection, key=key)
            if attempt is None or attempt["status"] == "pending":
                return False, None
            if attempt["status"] != "authorized":
                return True, None
            row = _PAYMENT_BY_KEY.first_mapping(connection, key=key)
        # Authorized but not in the view: its step rolled back after the gateway answered; ask the gateway.
        return (True, self._authorization(row)) if row is not None else (False, None)

    # --- public helpers -----------------------------------------------------------------------

    def view_of(self, connection: sa.Connection, authorization_id: str) -> Mapping[Any, Any] | None:
        """The block's record of one authorization (amount, captured, refunded…), or None."""
        return connection.execute(_PAYMENT, {"payment_id": authorization_id}).mappings().first()

    # --- the gateway --------------------------------------------------------------------------

    def _gateway(self, ctx: FlowContext, *, writes: bool = True) -> CardGateway:
        if self.gateway is not None:
            return self.gateway
        return SandboxGateway(
            ctx.outside_engine(writes=writes),
            clock=ctx.clock,
            ids=ctx.ids,
            timeout_resolution=self.config.timeout_resolution,
        )

    def _call(self, request: Callable[[], T]) -> T:
        """Make one gateway request, retrying (same key: safe) while the gateway is unreachable."""
        for _ in range(self.config.max_attempts):
            try:
                return request()
            except GatewayUnavailable:
                continue
        raise PaymentOutcomeUnknown(
            f"sandbox-card: the gateway could not be reached in {self.config.max_attempts} tries; "
            "retry later with the same idempotency key"
        )

    def _operate(self, kind: OperationKind, request: Callable[[], GatewayOperation]) -> GatewayOperation:
        try:
            return self._call(request)
        except GatewayTimeout:
            raise PaymentOutcomeUnknown(
                f"sandbox-card: the gateway did not answer the {kind.value}; retrying with the "
                "same idempotency key is safe"
            ) from None
        except GatewayRejected as rejected:
            raise _core_error(rejected, kind.value) from None
        except GatewayDeclined as declined:
            if kind is OperationKind.REFUND:
                raise NotRefundable(f"sandbox-card: the refund was declined: {declined}") from None
            raise PaymentDeclined(
                f"sandbox-card: the {kind.value} was declined: {declined}", reason=declined.reason
            ) from None

    # --- the block's view ---------------------------------------------------------------------

    def _check_ours(self, authorization: PaymentAuthorization) -> None:
        if authorization.block != self.id:
            raise InvalidValue(
                f"authorization {authorization.id} belongs to block {authorization.block!r}, not to {self.id!r}"
            )
        _check_method(authorization.method)

    def _authorization(self, row: Mapping[Any, Any]) -> PaymentAuthorization:
        return PaymentAuthorization(
            id=row["id"],
            block=self.id,
            method=METHOD,
            amount=Money(row["amount"], row["currency"]),
            status=PaymentStatus(row["status"]),
            reference=f"{row['brand']} ending {row['card_last4']}",
        )

    def _record_authorization(
        self, ctx: FlowContext, charge: GatewayCharge, *, member_id: str | None, flow_id: str | None
    ) -> PaymentAuthorization:
        now = ctx.clock.now()
        values = {
            "id": charge.id,
            "idempotency_key": charge.idempotency_key,
            "flow_id": flow_id,
            "channel": ctx.channel.id if ctx.channel else None,
            "member_id": member_id,
            "currency": charge.amount.currency,
            "amount": charge.amount.amount,
            "status": PaymentStatus.AUTHORIZED.value,
            "card_last4": charge.card_last4,
            "brand": charge.brand,
            "created_at": now,
            "updated_at": now,
        }
        inserted = insert_if_absent(ctx.db, payments, values)
        _resolve_attempt(ctx.db, charge.idempotency_key, "authorized", ctx)
        # What was just inserted needs no reading back; a replay reads what the first call recorded.
        row = values if inserted else self.view_of(ctx.db, charge.id)
        assert row is not None
        if inserted:
            ctx.record(
                "payment.authorized",
                {
                    "authorization_id": charge.id,
                    "method": METHOD,
                    "amount": charge.amount.amount,
                    "currency": charge.amount.currency,
                    "card_last4": charge.card_last4,
                    "brand": charge.brand,
                    "idempotency_key": charge.idempotency_key,
                },
                order_id=flow_id,
                member_id=member_id,
            )
        return self._authorization(row)

    def _record_decline(
        self,
        ctx: FlowContext,
        amount: Money,
        number: str,
        reason: str,
        key: str,
        member_id: str | None,
    ) -> None:
        # Written in the step's transaction like every event; it survives if the core commits the
        # step after a PaymentDeclined (the harness rolls back on any exception).
        ctx.record(
            "payment.declined",
            {
                "method": METHOD,
                "amount": amount.amount,
                "currency": amount.currency,
                "reason": reason,
                "card_last4": cards.last4(number),
                "idempotency_key": key,
            },
            order_id=ctx.flow_id or None,
            member_id=member_id,
        )

    def _record_operation(
        self, ctx: FlowContext, authorization: PaymentAuthorization, operation: GatewayOperation
    ) -> None:
        db = ctx.db
        now = ctx.clock.now()
        # The row lock serializes this payment's operations (PostgreSQL); SQLite's BEGIN IMMEDIATE
        # already does. Under it, computing the new totals in Python is safe. The view almost always
        # holds the authorization already; only when it does not (its authorize step failed) is it
        # inserted, which saves an INSERT per operation.
        row = _LOCK_PAYMENT.first_mapping(db, payment_id=authorization.id)
        if row is None:
            _ensure_payment(ctx, authorization, operation.charge)
            row = _LOCK_PAYMENT.first_mapping(db, payment_id=authorization.id)
            assert row is not None, "the payment was just inserted"
        inserted = insert_if_absent(
            db,
            operations,
            {
                "id": operation.id,
                "idempotency_key": operation.idempotency_key,
                "payment_id": authorization.id,
                "kind": operation.kind.value,
                "currency": operation.amount.currency,
                "amount": operation.amount.amount,
                "flow_id": ctx.flow_id or None,
                "created_at": now,
            },
        )
        if not inserted:
            return  # a replay: the first call recorded it and its event
        captured, refunded, voided = row["captured"], row["refunded"], bool(row["voided"])
        moved = operation.amount.amount
        if operation.kind is OperationKind.CAPTURE:
            captured += moved
        elif operation.kind is OperationKind.REFUND:
            refunded += moved
        elif voided:
            return  # voided before, under another key: nothing changed, nothing to announce
        else:
            voided = True
        if not refunded <= captured <= row["amount"]:
            # Our view missed an operation whose step rolled back; the gateway's totals are true.
            snapshot = operation.charge
            captured, refunded, voided = snapshot.captured, snapshot.refunded, snapshot.voided
        status = charge_status(row["amount"], captured, refunded, voided=voided)
        _UPDATE_PAYMENT.execute(
            db,
            payment_id=authorization.id,
            captured=captured,
            refunded=refunded,
            voided=voided,
            status=status.value,
            updated_at=now,
        )
        ctx.record(
            _EVENTS[operation.kind],
            {
                "authorization_id": authorization.id,
                "operation_id": operation.id,
                "amount": moved,
                "currency": operation.amount.currency,
                "captured": captured,
                "refunded": refunded,
                "status": status.value,
                "idempotency_key": operation.idempotency_key,
            },
            order_id=row["flow_id"] or ctx.flow_id or None,
            member_id=row["member_id"],
        )


# --- module helpers ---------------------------------------------------------------------------


def _check_method(method: str) -> None:
    if method != METHOD:
        raise InvalidValue(f"sandbox-card answers only the payment method 'card' (got {method!r})")


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_LENGTH:
        raise InvalidValue(
            f"an idempotency key must be a non-empty string of at most {_MAX_KEY_LENGTH} characters (got {key!r})"
        )


def _check_part(authorization: PaymentAuthorization, amount: Money, what: str) -> None:
    if amount.currency != authorization.amount.currency:
        raise CurrencyMismatch(
            f"cannot {what} {amount} of authorization {authorization.id}, which is in {authorization.amount.currency}"
        )
    if amount.amount <= 0:
        raise InvalidValue(f"the amount to {what} must be > 0 (got {amount})")
    if amount.amount > authorization.amount.amount:
        raise InvalidValue(f"cannot {what} {amount}: authorization {authorization.id} is for {authorization.amount}")


def _core_error(rejected: GatewayRejected, what: str) -> Exception:
    message = f"sandbox-card cannot {what}: {rejected}"
    if rejected.code is RejectionCode.KEY_REUSED:
        return IdempotencyKeyReused(message)
    if rejected.code is RejectionCode.CURRENCY_MISMATCH:
        return CurrencyMismatch(message)
    if rejected.code is RejectionCode.NOT_CAPTURED:
        return NotRefundable(message)
    return InvalidValue(message)


def _ensure_payment(ctx: FlowContext, authorization: PaymentAuthorization, charge: GatewayCharge) -> None:
    """Make sure the block's view holds the authorization (its authorize step may have failed)."""
    now = ctx.clock.now()
    insert_if_absent(
        ctx.db,
        payments,
        {
            "id": authorization.id,
            "idempotency_key": charge.idempotency_key,
            "flow_id": ctx.flow_id or None,
            "channel": ctx.channel.id if ctx.channel else None,
            "member_id": None,
            "currency": charge.amount.currency,
            "amount": charge.amount.amount,
            "status": PaymentStatus.AUTHORIZED.value,
            "card_last4": charge.card_last4,
            "brand": charge.brand,
            "created_at": now,
            "updated_at": now,
        },
    )


def _note_attempt(ctx: FlowContext, key: str, amount: Money) -> None:
    """Note the attempt before the gateway call, committed on its own, so it outlives a crash."""
    with ctx.outside_statement() as connection:
        insert_if_absent(
            connection,
            attempts,
            {
                "idempotency_key": key,
                "flow_id": ctx.flow_id or None,
                "currency": amount.currency,
                "amount": amount.amount,
                "status": "pending",
                "created_at": ctx.clock.now(),
            },
        )


def _resolve_attempt(connection: sa.Connection, key: str, status: str, ctx: FlowContext) -> None:
    _RESOLVE_ATTEMPT.execute(connection, key=key, pending="pending", status=status, resolved_at=ctx.clock.now())


def _resolve_attempt_apart(key: str, status: str, ctx: FlowContext) -> None:
    # Apart from the step's transaction, which rolls back when the hook raises.
    with ctx.outside_statement() as connection:
        _resolve_attempt(connection, key, status, ctx)
