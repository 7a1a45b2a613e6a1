"""The ``loyalty`` block: members across channels, tiers, a points ledger, points as payment, partners.

The hook implementations are thin: each resolves its arguments and hands over to the module that owns
the rule (``members``, ``points``, ``payments``), all writing through the flow's ``ctx.db``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, ClassVar

from retailblocks import AuditFinding, Block, Capability, FlowContext, hookimpl
from retailblocks.errors import InvalidValue
from retailblocks.hookspecs.lifecycle import unknown
from retailblocks.hookspecs.membership import PartnerPointsMovement
from retailblocks.model import (
    ChannelType,
    Identity,
    Member,
    Money,
    Order,
    PaymentAuthorization,
    PaymentBalance,
    PaymentCapture,
    PaymentRefund,
    PointsMovement,
)
from retailblocks.storage import Migration
from retailblocks_loyalty import audit, members, payments
from retailblocks_loyalty import points as points_ops
from retailblocks_loyalty.config import LoyaltyConfig
from retailblocks_loyalty.points import JournalEntry
from retailblocks_loyalty.tables import MIGRATIONS


class Loyalty(Block):
    """Members resolved across channels, tiers by lifetime spend, and a double-entry points ledger."""

    name = "loyalty"
    # Its permissions, shown by `blocks plugins` and checked on every statement in tests: its own tables,
    # and no table of the core.
    owns_tables: ClassVar[tuple[str, ...]] = (
        "loyalty_accounts",
        "loyalty_holds",
        "loyalty_identities",
        "loyalty_journals",
        "loyalty_lot_uses",
        "loyalty_lots",
        "loyalty_members",
        "loyalty_merges",
        "loyalty_postings",
    )
    reads_core_tables: ClassVar[tuple[str, ...]] = ()
    capabilities = frozenset({Capability.MEMBERSHIP, Capability.PAYMENT})
    core_api = "1.1"
    Config = LoyaltyConfig
    payment_methods: ClassVar[tuple[str, ...]] = (payments.METHOD,)
    description = "Members across channels, tiers and a points ledger; points pay for orders."

    def __init__(self, config: LoyaltyConfig | None = None, *, block_id: str | None = None):
        super().__init__(config if config is not None else LoyaltyConfig(), block_id=block_id)
        self.config: LoyaltyConfig

    # -- lifecycle ------------------------------------------------------------------------------

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def stack_names(self) -> Mapping[str, Sequence[str]]:
        return {"tier": [tier.name for tier in self.config.tiers]}

    @hookimpl
    def stack_check(self, names: Mapping[str, frozenset[str]]) -> Sequence[str]:
        """Earning rules and partner exchanges for things the manifest does not declare: a misspelt
        channel or SKU would silently earn the base rate, an unknown partner could never exchange."""
        earning = "earning.channel_multipliers_percent"
        channels = names["channel"] | {kind.value for kind in ChannelType}
        problems = [
            unknown(f"{earning}.{key}", "channel", key, channels)
            for key in self.config.earning.channel_multipliers_percent
            if key not in channels
        ]
        skus = sorted(names["sku"])
        for key in self.config.earning.sku_multipliers_percent:
            # A pattern ('TEA-*') must match some SKU; an exact SKU must be one.
            if not any(fnmatchcase(sku, key) for sku in skus):
                problems.append(unknown(f"earning.sku_multipliers_percent.{key}", "sku", key, names["sku"]))
        problems.extend(
            unknown(f"partners.{key}", "partner", key, names["partner"])
            for key in self.config.partners
            if key not in names["partner"]
        )
        return problems

    @hookimpl
    def stack_audit(self, ctx: FlowContext) -> Sequence[AuditFinding]:
        return audit.audit(ctx.db)

    @hookimpl
    def membership_order_points(self, ctx: FlowContext, order_id: str) -> int:
        return audit.order_points(ctx.db, order_id)

    @hookimpl
    def stack_maintain(self, ctx: FlowContext) -> None:
        points_ops.expire_due(ctx)

    # -- membership ------------------------------------------------------------------------------

    @hookimpl
    def membership_identify(self, ctx: FlowContext, identities: Sequence[Identity], enroll: bool) -> Member | None:
        row = members.identify(ctx, self.config, identities, enroll)
        return members.view(ctx, row) if row is not None else None

    @hookimpl
    def membership_member(self, ctx: FlowContext, member_id: str) -> Member | None:
        row = members.resolve(ctx, member_id)
        return members.view(ctx, row) if row is not None else None

    @hookimpl
    def membership_identifiers(self, ctx: FlowContext, member_id: str) -> Sequence[Identity]:
        return members.identifiers(ctx, member_id)

    @hookimpl
    def stack_erase_member(self, ctx: FlowContext, member_id: str, replacements: Mapping[str, str]) -> None:
        members.erase(ctx, replacements)

    @hookimpl
    def membership_earn(
        self, ctx: FlowContext, member_id: str, order: Order, idempotency_key: str
    ) -> PointsMovement | None:
        return points_ops.earn(ctx, self.config, member_id, order, idempotency_key)

    @hookimpl
    def membership_reverse(
        self,
        ctx: FlowContext,
        member_id: str,
        order_id: str,
        refunded: Money,
        order_total: Money,
        idempotency_key: str,
    ) -> PointsMovement | None:
        return points_ops.reverse(ctx, self.config, member_id, order_id, refunded, order_total, idempotency_key)

    @hookimpl
    def membership_adjust(
        self, ctx: FlowContext, member_id: str, points: int, reason: str, idempotency_key: str
    ) -> PointsMovement:
        return points_ops.adjust(ctx, self.config, member_id, points, reason, idempotency_key)

    @hookimpl
    def membership_partner_movements(
        self, ctx: FlowContext, partner: str, since: datetime, until: datetime
    ) -> Sequence[PartnerPointsMovement]:
        return points_ops.partner_movements(ctx, self.config, partner, since, until)

    # -- payment: points as a payment method -----------------------------------------------------

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
        return payments.authorize(ctx, self.config, self.id, method, amount, details, member_id, idempotency_key)

    @hookimpl
    def payment_status(self, ctx: FlowContext, method: str, idempotency_key: str) -> PaymentAuthorization | None:
        return payments.status(ctx, self.id, idempotency_key)

    @hookimpl
    def payment_capture(
        self,
        ctx: FlowContext,
        authorization: PaymentAuthorization,
        amount: Money,
        idempotency_key: str,
    ) -> PaymentCapture:
        return payments.capture(ctx, authorization, amount, idempotency_key)

    @hookimpl
    def payment_void(self, ctx: FlowContext, authorization: PaymentAuthorization, idempotency_key: str) -> None:
        payments.void(ctx, self.config, authorization)

    @hookimpl
    def payment_refund(
        self,
        ctx: FlowContext,
        authorization: PaymentAuthorization,
        amount: Money,
        idempotency_key: str,
    ) -> PaymentRefund:
        return payments.refund(ctx, self.config, authorization, amount, idempotency_key)

    @hookimpl
    def payment_balance(self, ctx: FlowContext, authorization: PaymentAuthorization) -> PaymentBalance | None:
        return payments.balance(ctx, authorization)

    # -- public methods beyond the hooks ---------------------------------------------------------

    def unmerge(self, ctx: FlowContext, merge_id: str, reason: str = "") -> dict[str, Any]:
        """Revert merge ``merge_id``: its identities and transferred points go back to the absorbed
        member, as new postings; the merge row keeps the audit trail. Idempotent."""
        row = members.unmerge(ctx, self.config, merge_id, reason)
        return dict(row)

    def merges(self, ctx: FlowContext, member_id: str) -> list[dict[str, Any]]:
        """The merges a member took part in (as survivor or absorbed), oldest first."""
        return members.merges_of(ctx, member_id)

    @hookimpl
    def membership_exchange(
        self, ctx: FlowContext, member_id: str, partner: str, points: int, idempotency_key: str
    ) -> PointsMovement:
        if points > 0:
            return self.exchange_in(ctx, member_id, partner, points, idempotency_key)
        if points < 0:
            return self.exchange_out(ctx, member_id, partner, -points, idempotency_key)
        raise InvalidValue("an exchange moves a non-zero number of points (got 0)")

    def exchange_in(
        self, ctx: FlowContext, member_id: str, partner: str, partner_points: int, key: str
    ) -> PointsMovement:
        """Credit our points for ``partner_points`` of ``partner``'s programme."""
        return points_ops.exchange_in(ctx, self.config, member_id, partner, partner_points, key)

    def exchange_out(self, ctx: FlowContext, member_id: str, partner: str, points_out: int, key: str) -> PointsMovement:
        """Send ``points_out`` of a member's points to ``partner``'s programme."""
        return points_ops.exchange_out(ctx, self.config, member_id, partner, points_out, key)

    def partner_balances(self, ctx: FlowContext) -> dict[str, int]:
        """Clearing balance per partner, in our points: > 0 we owe the partner, < 0 it owes us."""
        return points_ops.partner_balances(ctx, self.config)

    def journal(self, ctx: FlowContext, member_id: str) -> list[JournalEntry]:
        """Every posting on the member's points account, oldest first."""
        return points_ops.member_journal(ctx, member_id)

    def expire_points(self, ctx: FlowContext) -> int:
        """Expire due points now (what ``stack_maintain`` does); returns the points expired."""
        return points_ops.expire_due(ctx)

    def tier_benefits(self, tier: str) -> list[str]:
        """The configured benefits of ``tier`` (none for the base tier)."""
        for candidate in self.config.tiers:
            if candidate.name == tier:
                return list(candidate.benefits)
        if tier == "base":
            return []
        raise InvalidValue(f"unknown tier {tier!r} (known: {[t.name for t in self.config.tiers]})")
