"""The connectors block: the core's payment provider for orders a marketplace took and collected.

Registered in every stack beside the fusion block. It answers the ``marketplace`` payment method (unless
a manifest block is routed to answer it) and only for a marketplace channel that ``settles_with`` a
partner: a shop channel naming the method is declined, so nothing reaches a shopper for free. The money
is not moved here: authorizing records that the marketplace holds the buyer's payment for this order;
capturing, that it owes it to the merchant; refunding, that it gave some back. Settlement with the
partner reads what is owed from these records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from retailblocks.assembly.plan import CONNECTORS_ID
from retailblocks.connectors.tables import MIGRATIONS, marketplace_operations, marketplace_payments
from retailblocks.context import FlowContext
from retailblocks.errors import InvalidValue, NotRefundable, PaymentDeclined
from retailblocks.hookspecs import Capability, hookimpl
from retailblocks.hookspecs.blocks import Block
from retailblocks.model import (
    ChannelType,
    Identity,
    Money,
    PaymentAuthorization,
    PaymentBalance,
    PaymentCapture,
    PaymentRefund,
    PaymentStatus,
)
from retailblocks.model.channel import MARKETPLACE_PAYMENT_METHOD
from retailblocks.model.limits import check_text
from retailblocks.storage.blocks_api import ClaimOutcome, KeyClaimer, insert_if_absent
from retailblocks.storage.migrations import Migration

MARKETPLACE_METHOD = MARKETPLACE_PAYMENT_METHOD
#: The marketplace's own order number, the one detail the method needs.
ORDER_NUMBER = "order_number"
MAX_ORDER_NUMBER_LENGTH = 128

_OPERATIONS = KeyClaimer(
    marketplace_operations, ("key", "payment_id", "kind", "amount", "at"), key=("key",), same=("payment_id", "kind")
)


class ConnectorsBlock(Block):
    """Registered by the core in every stack: a marketplace's orders need no manifest block to be paid."""

    name = CONNECTORS_ID
    description = "orders paid on a marketplace, settled with it as a partner; channels' sellable stock published"
    capabilities = frozenset({Capability.PAYMENT})
    payment_methods = (MARKETPLACE_METHOD,)

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def payment_validate(
        self, ctx: FlowContext, method: str, details: Mapping[str, str], identities: Sequence[Identity]
    ) -> None:
        order_number = details.get(ORDER_NUMBER, "")
        if not order_number:
            raise InvalidValue(
                f"a {MARKETPLACE_METHOD} payment needs the marketplace's order number in details.{ORDER_NUMBER}"
            )
        check_text(order_number, "a marketplace order number", max_length=MAX_ORDER_NUMBER_LENGTH, allow_empty=False)

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
        channel = ctx.channel
        if channel is None or channel.type is not ChannelType.MARKETPLACE or channel.settles_with is None:
            raise PaymentDeclined(
                f"only a marketplace channel that settles with a partner takes {MARKETPLACE_METHOD} payments",
                reason="not_a_marketplace_order",
            )
        order_number = details.get(ORDER_NUMBER, "")
        inserted = insert_if_absent(
            ctx.db,
            marketplace_payments,
            {
                "id": ctx.ids.new_id("mkp"),
                "key": idempotency_key,
                "channel": channel.id,
                "partner": channel.settles_with,
                "order_number": order_number,
                "currency": amount.currency,
                "amount": amount.amount,
                "captured": 0,
                "refunded": 0,
                "status": PaymentStatus.AUTHORIZED.value,
                "created_at": ctx.clock.now(),
            },
        )
        row = self._by_key(ctx, idempotency_key)
        if row is None:
            # The insert met the (channel, order number) constraint under another key.
            raise PaymentDeclined(
                f"marketplace order {order_number!r} of channel {channel.id!r} was already imported",
                reason="duplicate_marketplace_order",
            )
        if not inserted and (row["order_number"] != order_number or row["amount"] != amount.amount):
            raise PaymentDeclined("this key authorized another marketplace payment", reason="key_reused")
        return _authorization(self.id, row)

    @hookimpl
    def payment_status(self, ctx: FlowContext, method: str, idempotency_key: str) -> PaymentAuthorization | None:
        row = self._by_key(ctx, idempotency_key)
        return None if row is None else _authorization(self.id, row)

    @hookimpl
    def payment_capture(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentCapture:
        row = self._payment(ctx, authorization)
        claim = self._claim(ctx, idempotency_key, row["id"], "capture", amount.amount)
        if claim is not None:
            return PaymentCapture(idempotency_key, row["id"], Money(claim, row["currency"]))
        if row["status"] == PaymentStatus.VOIDED.value:
            raise InvalidValue(f"marketplace payment {row['id']} was voided; nothing can be captured of it")
        if amount.currency != row["currency"] or not 0 < amount.amount <= row["amount"] - row["captured"]:
            raise InvalidValue(
                f"cannot capture {amount} of marketplace payment {row['id']} "
                f"({Money(row['amount'] - row['captured'], row['currency'])} left to capture)"
            )
        ctx.db.execute(
            marketplace_payments.update()
            .where(marketplace_payments.c.id == row["id"])
            .values(captured=marketplace_payments.c.captured + amount.amount, status=PaymentStatus.CAPTURED.value)
        )
        ctx.record(
            "marketplace.payment_captured",
            {
                "payment_id": row["id"],
                "order_number": row["order_number"],
                "partner": row["partner"],
                "amount": amount.amount,
                "currency": amount.currency,
            },
        )
        return PaymentCapture(idempotency_key, row["id"], amount)

    @hookimpl
    def payment_void(self, ctx: FlowContext, authorization: PaymentAuthorization, idempotency_key: str) -> None:
        row = self._payment(ctx, authorization)
        if row["captured"] == 0 and row["status"] != PaymentStatus.VOIDED.value:
            ctx.db.execute(
                marketplace_payments.update()
                .where(marketplace_payments.c.id == row["id"])
                .values(status=PaymentStatus.VOIDED.value)
            )

    @hookimpl
    def payment_refund(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentRefund:
        row = self._payment(ctx, authorization)
        claim = self._claim(ctx, idempotency_key, row["id"], "refund", amount.amount)
        if claim is not None:
            return PaymentRefund(idempotency_key, row["id"], Money(claim, row["currency"]))
        if amount.currency != row["currency"] or not 0 < amount.amount <= row["captured"] - row["refunded"]:
            raise NotRefundable(
                f"cannot refund {amount} of marketplace payment {row['id']} "
                f"({Money(row['captured'] - row['refunded'], row['currency'])} captured and not refunded)"
            )
        refunded = row["refunded"] + amount.amount
        status = PaymentStatus.REFUNDED if refunded == row["captured"] else PaymentStatus.PARTIALLY_REFUNDED
        ctx.db.execute(
            marketplace_payments.update()
            .where(marketplace_payments.c.id == row["id"])
            .values(refunded=refunded, status=status.value)
        )
        ctx.record(
            "marketplace.payment_refunded",
            {
                "payment_id": row["id"],
                "order_number": row["order_number"],
                "partner": row["partner"],
                "amount": amount.amount,
                "currency": amount.currency,
            },
        )
        return PaymentRefund(idempotency_key, row["id"], amount)

    @hookimpl
    def payment_balance(self, ctx: FlowContext, authorization: PaymentAuthorization) -> PaymentBalance | None:
        row = (
            ctx.db.execute(sa.select(marketplace_payments).where(marketplace_payments.c.id == authorization.id))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return PaymentBalance(
            row["id"],
            PaymentStatus(row["status"]),
            Money(row["captured"], row["currency"]),
            Money(row["refunded"], row["currency"]),
        )

    # -- records ------------------------------------------------------------------------------------

    def _by_key(self, ctx: FlowContext, key: str) -> sa.RowMapping | None:
        return (
            ctx.db.execute(sa.select(marketplace_payments).where(marketplace_payments.c.key == key)).mappings().first()
        )

    def _payment(self, ctx: FlowContext, authorization: PaymentAuthorization) -> sa.RowMapping:
        # FOR UPDATE: a capture and a refund of one payment (two steps, two processes) apply one at a time.
        row = (
            ctx.db.execute(
                sa.select(marketplace_payments).where(marketplace_payments.c.id == authorization.id).with_for_update()
            )
            .mappings()
            .first()
        )
        if row is None:
            raise InvalidValue(f"no marketplace payment {authorization.id!r}")
        return row

    def _claim(self, ctx: FlowContext, key: str, payment_id: object, kind: str, amount: int) -> int | None:
        """None when ``key`` is new (the caller applies the operation); the first call's amount on a replay."""
        claim = _OPERATIONS(
            ctx.db, {"key": key, "payment_id": payment_id, "kind": kind, "amount": amount, "at": ctx.clock.now()}
        )
        if claim.outcome is ClaimOutcome.NEW:
            return None
        if claim.outcome is ClaimOutcome.CONFLICT:
            raise InvalidValue(f"the key of this {kind} was used for another marketplace operation")
        assert claim.existing is not None
        return int(claim.existing["amount"])


def _authorization(block_id: str, row: sa.RowMapping) -> PaymentAuthorization:
    return PaymentAuthorization(
        id=str(row["id"]),
        block=block_id,
        method=MARKETPLACE_METHOD,
        amount=Money(int(row["amount"]), str(row["currency"])),
        status=PaymentStatus(str(row["status"])),
        reference=str(row["order_number"]),
    )
