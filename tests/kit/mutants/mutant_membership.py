"""Broken membership blocks the membership contract must fail: each a subclass of the loyalty block with
one realistic bug (the class docstring names it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from retailblocks_loyalty import Loyalty
from retailblocks_loyalty.contract_config import contract_config
from retailblocks_loyalty.engine import share_of
from retailblocks_loyalty.points import adjust
from retailblocks_loyalty.tables import accounts, journals, member_account

from retailblocks import FlowContext, hookimpl
from retailblocks.errors import CurrencyMismatch
from retailblocks.model import Identity, Member, Money, Order, PointsKind, PointsMovement
from retailblocks.testing.contracts.membership import MembershipContract


class _LoyaltyContract(MembershipContract):
    block_class = Loyalty

    def config_for(self, currency: str) -> Mapping[str, Any]:
        return contract_config(currency)


# -- the broken blocks ----------------------------------------------------------------------------------


class OverdrawingLoyalty(Loyalty):
    @hookimpl
    def membership_adjust(
        self, ctx: FlowContext, member_id: str, points: int, reason: str, idempotency_key: str
    ) -> PointsMovement:
        if points > 0:
            return super().membership_adjust(ctx, member_id, points, reason, idempotency_key)
        # The bug: a debit written straight to the balance, with no "balance >= points" guard.
        account = member_account(member_id)
        ctx.db.execute(accounts.update().where(accounts.c.id == account).values(balance=accounts.c.balance + points))
        balance = ctx.db.execute(sa.select(accounts.c.balance).where(accounts.c.id == account)).scalar_one()
        return PointsMovement(
            id=ctx.ids.new_id("pj"),
            member_id=member_id,
            points=points,
            kind=PointsKind.ADJUST,
            balance=int(balance),
            reason=reason,
        )


class TwiceEarningLoyalty(Loyalty):
    @hookimpl
    def membership_earn(
        self, ctx: FlowContext, member_id: str, order: Order, idempotency_key: str
    ) -> PointsMovement | None:
        # The bug: the posting is keyed by a fresh id per call, so a replay is a new posting.
        fresh = attrs.evolve(order, id=f"{order.id}~{ctx.ids.new_id('try')}")
        return super().membership_earn(ctx, member_id, fresh, idempotency_key)


class OverReversingLoyalty(Loyalty):
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
        if refunded.currency != order_total.currency:
            raise CurrencyMismatch(f"refunded is in {refunded.currency}, the order total in {order_total.currency}")
        # The bug: each refund takes its share of what the order earned, forgetting earlier reversals.
        earned = ctx.db.execute(
            sa.select(sa.func.coalesce(sa.func.sum(journals.c.points), 0)).where(
                journals.c.kind == "earn", journals.c.order_id == order_id
            )
        ).scalar_one()
        taking = share_of(int(earned), refunded.amount, order_total.amount)
        balance = self.membership_member(ctx, member_id)
        taking = min(taking, balance.points if balance is not None else 0)
        if taking <= 0:
            return None
        return adjust(ctx, self.config, member_id, -taking, f"refund on order {order_id}", idempotency_key)


class EagerEnrollingLoyalty(Loyalty):
    @hookimpl
    def membership_identify(self, ctx: FlowContext, identities: Sequence[Identity], enroll: bool) -> Member | None:
        # The bug: a shopper is enrolled whenever they are looked up (a quote, a cart), not when asked to.
        return super().membership_identify(ctx, identities, True)


class CurrencyBlindLoyalty(Loyalty):
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
        # The bug: the refund's amount is read without its currency.
        as_if = Money(refunded.amount, order_total.currency)
        return super().membership_reverse(ctx, member_id, order_id, as_if, order_total, idempotency_key)


# -- the mutants --------------------------------------------------------------------------------------


class MutantNegativePointsBalance(_LoyaltyContract):
    """Redeeming more points than the balance holds is allowed: the balance goes negative."""

    block_class = OverdrawingLoyalty


class MutantEarnsTwiceOnOneKey(_LoyaltyContract):
    """Earning is keyed by a fresh id per call: a replayed checkout step earns the order's points again."""

    block_class = TwiceEarningLoyalty


class MutantReversalBeyondEarned(_LoyaltyContract):
    """Each refund takes back its share of the order's points, forgetting earlier reversals of the order."""

    block_class = OverReversingLoyalty


class MutantEnrollsWithoutBeingAsked(_LoyaltyContract):
    """Identifying a shopper without ``enroll`` still enrols them."""

    block_class = EagerEnrollingLoyalty


class MutantRefundCurrencyIgnored(_LoyaltyContract):
    """A reversal reads the refunded amount without its currency: a refund in dollars reverses a yuan order."""

    block_class = CurrencyBlindLoyalty
