"""The sandbox gateway: a card gateway kept in the stack's database but run like a remote service.

It writes through its own connection and commits each call on its own, independently of the flow's
unit of work, so everything that can go wrong between a real gateway and the core can go wrong here
too: the gateway has charged, and the flow's transaction then rolls back or the process dies. Only
the idempotency key and :meth:`SandboxGateway.status` recover from that, as with a real gateway.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from retailblocks.clock import Clock, IdFactory, as_utc
from retailblocks.model import Money
from retailblocks.storage import (
    Prepared,
    PreparedQuery,
    UnitOfWork,
    insert_if_absent,
    read_only_connection,
    single_statement,
)
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
from retailblocks_sandbox_card.notify import FAILED, SUCCEEDED, notification_body
from retailblocks_sandbox_card.tables import gateway_charges as charges
from retailblocks_sandbox_card.tables import gateway_notifications as notifications
from retailblocks_sandbox_card.tables import gateway_operations as operations

# The statements of every call, built once at import (docs/block-storage.md).
_CHARGE_BY_KEY = PreparedQuery(sa.select(charges).where(charges.c.idempotency_key == sa.bindparam("key")))
_LOCK_CHARGE = PreparedQuery(sa.select(charges).where(charges.c.id == sa.bindparam("charge_id")).with_for_update())
_OPERATION_BY_KEY = PreparedQuery(sa.select(operations).where(operations.c.idempotency_key == sa.bindparam("key")))
_CAPTURE = Prepared(
    charges.update()
    .where(
        charges.c.id == sa.bindparam("charge_id"),
        charges.c.voided == sa.false(),
        charges.c.captured + sa.bindparam("amount") <= charges.c.amount,
    )
    .values(captured=charges.c.captured + sa.bindparam("amount"))
)
_VOID = Prepared(
    charges.update()
    .where(charges.c.id == sa.bindparam("charge_id"), charges.c.voided == sa.false())
    .values(voided=sa.true())
)
_REFUND = Prepared(
    charges.update()
    .where(
        charges.c.id == sa.bindparam("charge_id"),
        charges.c.refunded + sa.bindparam("amount") <= charges.c.captured,
    )
    .values(refunded=charges.c.refunded + sa.bindparam("amount"))
)
_RECORD_OPERATION = Prepared(
    operations.insert().values(
        {
            name: sa.bindparam(name)
            for name in ("id", "idempotency_key", "charge_id", "kind", "currency", "amount", "created_at")
        }
    )
)

_QUEUE_NOTIFICATION = Prepared(
    notifications.insert().values(
        {name: sa.bindparam(name) for name in ("id", "idempotency_key", "body", "created_at")}
    )
)

_DECLINE_MESSAGES = {
    CardOutcome.DECLINE: "the card was declined by its issuer",
    CardOutcome.INSUFFICIENT_FUNDS: "the card has insufficient funds",
    CardOutcome.INVALID: "the card number is not a valid sandbox test card",
}


class SandboxGateway:
    """A :class:`~retailblocks_sandbox_card.gateway.CardGateway` kept in ``sandbox_card_gateway_*``.

    ``clock`` is the gateway's notion of time: an attempt that timed out is resolved (authorized or
    not) once ``timeout_resolution`` has passed since it was made.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        clock: Clock,
        ids: IdFactory,
        timeout_resolution: timedelta = timedelta(seconds=30),
    ):
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._timeout_resolution = timeout_resolution

    def __repr__(self) -> str:
        return f"<SandboxGateway on {self._engine.url.render_as_string(hide_password=True)}>"

    # --- CardGateway ------------------------------------------------------------------------------

    def authorize(self, card_number: str, amount: Money, *, idempotency_key: str) -> GatewayCharge:
        outcome = cards.outcome_of(card_number)
        now = self._clock.now()
        timed_out = outcome in (CardOutcome.TIMEOUT_AUTHORIZED, CardOutcome.TIMEOUT_NOT_AUTHORIZED)
        if outcome in (CardOutcome.APPROVE, CardOutcome.TIMEOUT_AUTHORIZED):
            status, reason = "authorized", None
        elif outcome is CardOutcome.TIMEOUT_NOT_AUTHORIZED:
            status, reason = "failed", None
        else:
            status, reason = "declined", outcome.value
        fingerprint = cards.fingerprint(card_number, amount.amount, amount.currency)
        values: dict[str, Any] = {
            "id": self._ids.new_id("ch"),
            "idempotency_key": idempotency_key,
            "request_fingerprint": fingerprint,
            "currency": amount.currency,
            "amount": amount.amount,
            "status": status,
            "decline_reason": reason,
            "card_last4": cards.last4(card_number),
            "brand": cards.brand_of(card_number),
            "resolves_at": now + self._timeout_resolution if timed_out else None,
            "created_at": now,
        }
        # One statement unless the answer times out, which queues its notification with the charge.
        with self._transaction() if timed_out else self._statement() as connection:
            inserted = insert_if_absent(connection, charges, values)
            if inserted and timed_out:
                # The caller never hears the answer; the gateway tells it later, by notification.
                self._queue_notification(connection, values)
            # A new charge is exactly what was just written (the totals start at their defaults): reading
            # it back would only repeat it. A replay reads the charge the first call made.
            row = (
                {**values, "captured": 0, "refunded": 0, "voided": False}
                if inserted
                else self._charge_by_key(connection, idempotency_key)
            )
        assert row is not None  # inserted above, or inserted earlier under the same key
        if not inserted and row["request_fingerprint"] != fingerprint:
            raise GatewayRejected(
                f"idempotency key {idempotency_key!r} was already used for another authorization "
                f"({Money(row['amount'], row['currency'])} on card ending {row['card_last4']})",
                code=RejectionCode.KEY_REUSED,
            )
        if inserted and timed_out:
            raise GatewayTimeout(f"the gateway did not answer the authorization {idempotency_key!r}")
        return self._answer(row, now, key=idempotency_key)

    def status(self, idempotency_key: str) -> GatewayCharge | None:
        with read_only_connection(self._engine) as connection:
            row = self._charge_by_key(connection, idempotency_key)
        if row is None or row["status"] == "declined":
            return None
        try:
            return self._answer(row, self._clock.now(), key=idempotency_key)
        except GatewayDeclined:
            return None

    def capture(self, charge_id: str, amount: Money, *, idempotency_key: str) -> GatewayOperation:
        with self._transaction() as connection:
            charge = self._locked_charge(connection, charge_id, amount)
            replay = self._replay(connection, OperationKind.CAPTURE, charge, amount, idempotency_key)
            if replay is not None:
                return replay
            if charge["voided"]:
                raise GatewayRejected(
                    f"charge {charge_id} was voided; nothing is left to capture",
                    code=RejectionCode.CHARGE_VOIDED,
                )
            moved = _CAPTURE.execute(connection, charge_id=charge_id, amount=amount.amount)
            if moved != 1:
                remaining = Money(charge["amount"] - charge["captured"], amount.currency)
                raise GatewayRejected(
                    f"cannot capture {amount} of charge {charge_id}: "
                    f"{Money(charge['amount'], amount.currency)} authorized, "
                    f"{Money(charge['captured'], amount.currency)} captured, {remaining} left",
                    code=RejectionCode.AMOUNT_TOO_LARGE,
                )
            after = {**charge, "captured": charge["captured"] + amount.amount}
            return self._record(connection, OperationKind.CAPTURE, after, amount, idempotency_key)

    def void(self, charge_id: str, *, idempotency_key: str) -> GatewayOperation:
        with self._transaction() as connection:
            charge = self._locked_charge(connection, charge_id, None)
            currency = charge["currency"]
            replay = self._replay(connection, OperationKind.VOID, charge, None, idempotency_key)
            if replay is not None:
                return replay
            released = _VOID.execute(connection, charge_id=charge_id)
            # Voiding a voided charge is answered like the first void, without moving anything.
            remainder = charge["amount"] - charge["captured"] if released else 0
            return self._record(
                connection,
                OperationKind.VOID,
                {**charge, "voided": True},
                Money(remainder, currency),
                idempotency_key,
            )

    def refund(self, charge_id: str, amount: Money, *, idempotency_key: str) -> GatewayOperation:
        with self._transaction() as connection:
            charge = self._locked_charge(connection, charge_id, amount)
            replay = self._replay(connection, OperationKind.REFUND, charge, amount, idempotency_key)
            if replay is not None:
                return replay
            moved = _REFUND.execute(connection, charge_id=charge_id, amount=amount.amount)
            if moved != 1:
                refundable = Money(charge["captured"] - charge["refunded"], amount.currency)
                raise GatewayRejected(
                    f"cannot refund {amount} of charge {charge_id}: "
                    f"{Money(charge['captured'], amount.currency)} captured, "
                    f"{Money(charge['refunded'], amount.currency)} refunded, "
                    f"{refundable} refundable",
                    code=RejectionCode.NOT_CAPTURED,
                )
            after = {**charge, "refunded": charge["refunded"] + amount.amount}
            return self._record(connection, OperationKind.REFUND, after, amount, idempotency_key)

    # --- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        # A unit of work of its own (not the step's): the stack may lend it the flow's connection.
        with _reachable(), UnitOfWork(self._engine) as uow:
            yield uow.connection

    @contextmanager
    def _statement(self) -> Iterator[sa.Connection]:
        """For a write complete in one statement: committed as it runs on PostgreSQL."""
        with _reachable(), single_statement(self._engine) as connection:
            yield connection

    def _answer(self, row: Mapping[Any, Any], now: datetime, *, key: str) -> GatewayCharge:
        """What the gateway says about an authorization attempt it holds, at ``now``."""
        if row["status"] == "declined":
            reason = str(row["decline_reason"])
            raise GatewayDeclined(_DECLINE_MESSAGES.get(CardOutcome(reason), "the card was declined"), reason=reason)
        if row["resolves_at"] is not None and now < as_utc(row["resolves_at"]):
            raise GatewayTimeout(f"the authorization {key!r} is still being processed by the gateway")
        if row["status"] == "failed":
            raise GatewayDeclined(
                "the authorization timed out at the gateway and was not made",
                reason="processing_error",
            )
        return _charge(row)

    def _queue_notification(self, connection: sa.Connection, charge: Mapping[str, Any]) -> None:
        authorized = charge["status"] == "authorized"
        # Named after the charge, not drawn from the ids: a simulation's ids stay what its seed made them.
        notification_id = f"ntf_{charge['id']}"
        body = notification_body(
            notification_id,
            SUCCEEDED if authorized else FAILED,
            charge["idempotency_key"],
            charge["amount"],
            charge["currency"],
            {
                "id": charge["id"],
                "card_last4": charge["card_last4"],
                "brand": charge["brand"],
                "created_at": as_utc(charge["created_at"]).isoformat(),
            }
            if authorized
            else None,
        )
        _QUEUE_NOTIFICATION.execute(
            connection,
            id=notification_id,
            idempotency_key=charge["idempotency_key"],
            body=body,
            created_at=charge["created_at"],
        )

    @staticmethod
    def _charge_by_key(connection: sa.Connection, key: str) -> Mapping[Any, Any] | None:
        return _CHARGE_BY_KEY.first_mapping(connection, key=key)

    def _locked_charge(self, connection: sa.Connection, charge_id: str, amount: Money | None) -> Mapping[Any, Any]:
        # The row lock serializes operations on one charge (PostgreSQL); SQLite's BEGIN IMMEDIATE
        # already serializes writers.
        row = _LOCK_CHARGE.first_mapping(connection, charge_id=charge_id)
        if row is None or row["status"] != "authorized":
            raise GatewayRejected(f"no authorized charge {charge_id!r}", code=RejectionCode.NO_SUCH_CHARGE)
        if amount is not None and amount.currency != row["currency"]:
            raise GatewayRejected(
                f"charge {charge_id} is in {row['currency']}, the request is in {amount.currency}",
                code=RejectionCode.CURRENCY_MISMATCH,
            )
        return row

    def _replay(
        self,
        connection: sa.Connection,
        kind: OperationKind,
        charge: Mapping[Any, Any],
        amount: Money | None,
        key: str,
    ) -> GatewayOperation | None:
        """The earlier answer under ``key``, or None if the key is new; ``charge`` is the locked charge."""
        charge_id = charge["id"]
        row = _OPERATION_BY_KEY.first_mapping(connection, key=key)
        if row is None:
            return None
        same = (
            row["kind"] == kind
            and row["charge_id"] == charge_id
            and (amount is None or (row["amount"] == amount.amount and row["currency"] == amount.currency))
        )
        if not same:
            raise GatewayRejected(
                f"idempotency key {key!r} was already used for a {row['kind']} of "
                f"{Money(row['amount'], row['currency'])} on charge {row['charge_id']}",
                code=RejectionCode.KEY_REUSED,
            )
        # Replays find the charge locked by the caller, which is as current as reading it again.
        return self._operation(row, charge)

    def _record(
        self,
        connection: sa.Connection,
        kind: OperationKind,
        charge: Mapping[Any, Any],
        amount: Money,
        key: str,
    ) -> GatewayOperation:
        """Record the operation; ``charge`` is the charge as the operation left it. The call holds the
        charge's row lock (SQLite: the write lock) since it read it, so nothing else moved it and it
        need not be read again."""
        values = {
            "id": self._ids.new_id(kind.value[:2]),
            "idempotency_key": key,
            "charge_id": charge["id"],
            "kind": kind.value,
            "currency": amount.currency,
            "amount": amount.amount,
            "created_at": self._clock.now(),
        }
        _RECORD_OPERATION.execute(connection, values)
        return self._operation(values, charge)

    def _operation(self, row: Mapping[Any, Any], charge: Mapping[Any, Any]) -> GatewayOperation:
        return GatewayOperation(
            id=row["id"],
            idempotency_key=row["idempotency_key"],
            kind=OperationKind(row["kind"]),
            charge=_charge(charge),
            amount=Money(row["amount"], row["currency"]),
        )


def _charge(row: Mapping[Any, Any]) -> GatewayCharge:
    return GatewayCharge(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        amount=Money(row["amount"], row["currency"]),
        captured=row["captured"],
        refunded=row["refunded"],
        voided=bool(row["voided"]),
        card_last4=row["card_last4"],
        brand=row["brand"],
        created_at=as_utc(row["created_at"]),
    )


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except sa.exc.OperationalError as error:
        # The sandbox's "network": an unreachable database is an unreachable gateway.
        raise GatewayUnavailable(f"the sandbox gateway is unreachable: {error.orig}") from error
