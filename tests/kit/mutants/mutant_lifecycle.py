"""Blocks that fail at assembly or break the lifecycle's promises; the kit must fail every one."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from retailblocks_sandbox_card import SandboxCard
from retailblocks_sql_inventory import SqlInventory

from retailblocks import FlowContext, hookimpl
from retailblocks.model import Money, PaymentAuthorization, PaymentCapture
from tests.kit.mutants.reference import SandboxCardContract, SqlInventoryContract

logger = logging.getLogger("mutant.card")


class MisspelledCard(SandboxCard):
    @hookimpl
    def payment_captur(  # the bug: a typo in the hook's name
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentCapture:
        return super().payment_capture(ctx, authorization, amount, idempotency_key)


class MutantMisspelledHook(SandboxCardContract):
    """Implements `payment_captur`, a hook no specification declares."""

    block_class = MisspelledCard


class UnmarkedCard(SandboxCard):
    # The bug: the override forgets @hookimpl, so the block no longer implements payment_capture.
    def payment_capture(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentCapture:
        return super().payment_capture(ctx, authorization, amount, idempotency_key)


class MutantMissingHookimpl(SandboxCardContract):
    """Overrides payment_capture without @hookimpl."""

    block_class = UnmarkedCard


class MisnamedArgumentCard(SandboxCard):
    @hookimpl
    def payment_void(self, ctx: FlowContext, authorisation: PaymentAuthorization, idempotency_key: str) -> None:
        # The bug: `authorisation` is not an argument of the specification.
        super().payment_void(ctx, authorisation, idempotency_key)


class MutantWrongArgumentName(SandboxCardContract):
    """Names an argument of payment_void `authorisation` instead of `authorization`."""

    block_class = MisnamedArgumentCard


class LoggingKeyCard(SandboxCard):
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
        # The bug: the key is logged at DEBUG.
        logger.debug("authorizing %s with key %s", amount, self.config.secret_key)
        return super().payment_authorize(ctx, method, amount, details, member_id, idempotency_key)


class MutantSecretInLog(SandboxCardContract):
    """Logs its secret key at DEBUG."""

    block_class = LoggingKeyCard


class SilentAdjustInventory(SqlInventory):
    @hookimpl
    def inventory_adjust(self, ctx: FlowContext, sku: str, location: str, delta: int, reason: str, key: str) -> int:
        from retailblocks_sql_inventory import stock

        # The bug: the level is changed in place, with no movement in the ledger and no event.
        stock.ensure_level(ctx.db, sku, location)
        return stock.change_on_hand(ctx.db, sku, location, delta)


class MutantSilentStateChange(SqlInventoryContract):
    """Changes stock on hand without recording a movement or an event."""

    block_class = SilentAdjustInventory
