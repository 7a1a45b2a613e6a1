"""Points as a payment method: authorizing holds points, capturing redeems them, voiding gives them back,
refunding re-credits them as a new lot.

Held points sit in the ``held`` system account, so a member cannot spend them twice while the order is
placed; captured points move on to ``redeemed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import CurrencyMismatch, InvalidValue, PaymentDeclined, UnknownObject
from retailblocks.model import (
    Money,
    PaymentAuthorization,
    PaymentBalance,
    PaymentCapture,
    PaymentRefund,
    PaymentStatus,
)
from retailblocks.storage import insert_if_absent
from retailblocks_loyalty import ledger
from retailblocks_loyalty.config import LoyaltyConfig
from retailblocks_loyalty.engine import points_for_amount, share_of
from retailblocks_loyalty.members import resolve
from retailblocks_loyalty.points import expire_due
from retailblocks_loyalty.tables import holds, member_account, system_account

METHOD = "points"
HELD = system_account("held")
REDEEMED = system_account("redeemed")


class UnknownAuthorization(UnknownObject):
    """No points authorization has the given id."""


def _ceil_share(total: int, part: int, whole: int) -> int:
    """``ceil(total × part / whole)``, all of it once ``part`` reaches ``whole``."""
    if part >= whole:
        return total
    return -(-total * part // whole)


def _status(row: Any) -> PaymentStatus:
    if row["refunded_amount"] and row["refunded_amount"] >= row["captured_amount"]:
        return PaymentStatus.REFUNDED
    if row["refunded_amount"]:
        return PaymentStatus.PARTIALLY_REFUNDED
    if row["captured_amount"] >= row["amount"] or (row["voided"] and row["captured_amount"]):
        return PaymentStatus.CAPTURED
    if row["voided"]:
        return PaymentStatus.VOIDED
    if row["captured_amount"]:
        return PaymentStatus.PARTIALLY_CAPTURED
    return PaymentStatus.AUTHORIZED


def _authorization(block_id: str, row: Any) -> PaymentAuthorization:
    return PaymentAuthorization(
        id=row["id"],
        block=block_id,
        method=METHOD,
        amount=Money(int(row["amount"]), row["currency"]),
        status=_status(row),
        reference=f"{int(row['points'])} points of member {row['member_id']}",
    )


def _check_amount(amount: Money, currency: str, what: str) -> None:
    if not isinstance(amount, Money):
        raise InvalidValue(f"{what} must be Money (got {amount!r})")
    if amount.currency != currency:
        raise CurrencyMismatch(f"{what} is in {amount.currency}, the authorization in {currency}")
    if amount.amount <= 0:
        raise InvalidValue(f"{what} must be more than zero (got {amount})")


def authorize(
    ctx: FlowContext,
    config: LoyaltyConfig,
    block_id: str,
    method: str,
    amount: Money,
    details: Mapping[str, str],
    member_id: str | None,
    key: str,
) -> PaymentAuthorization:
    if method != METHOD:
        raise InvalidValue(f"the loyalty block pays only with {METHOD!r} (got method {method!r})")
    _check_amount(amount, config.points_value.currency, "the amount paid with points")
    existing = _by_key(ctx, key)
    if existing is not None:
        return _authorization(block_id, existing)
    if member_id is None:
        raise PaymentDeclined(
            "paying with points needs a member; identify the shopper first",
            reason="member_required",
        )
    member = resolve(ctx, member_id)
    if member is None:
        raise PaymentDeclined(f"no member with id {member_id!r} to pay with points", reason="unknown_member")
    points = points_for_amount(amount, config.points_value)
    # Points past their expiry must not pay for anything, even if maintenance has not run yet.
    expire_due(ctx, member_id=member["id"])
    hold_id = ctx.ids.new_id("ptauth")
    # The hold row claims the key first: a concurrent request with the same key waits here, then
    # finds this one and answers with it.
    inserted = insert_if_absent(
        ctx.db,
        holds,
        {
            "id": hold_id,
            "idempotency_key": key,
            "member_id": member["id"],
            "journal_id": "",
            "amount": amount.amount,
            "currency": amount.currency,
            "points": points,
            "captured_amount": 0,
            "captured_points": 0,
            "refunded_amount": 0,
            "refunded_points": 0,
            "voided": False,
            "created_at": ctx.clock.now(),
        },
    )
    if not inserted:
        winner = _by_key(ctx, key)
        if winner is None:  # pragma: no cover - the conflict means the row exists
            raise RuntimeError(f"points authorization under {key!r} vanished")
        return _authorization(block_id, winner)
    claim = ledger.claim(
        ctx,
        kind="hold",
        key=f"hold:{hold_id}",
        member_id=member["id"],
        requested=-points,
        amount=amount.amount,
        currency=amount.currency,
        reference=hold_id,
        reason=f"{points} points held for {amount}",
    )
    ctx.db.execute(holds.update().where(holds.c.id == hold_id).values(journal_id=claim.journal_id))
    try:
        ledger.debit_member(ctx, claim.journal_id, member["id"], points)
    except ledger.InsufficientPoints as short:
        raise PaymentDeclined(
            f"member {member['id']} has {short.available} points; paying {amount} needs {points}",
            reason="insufficient_points",
        ) from None
    ledger.post(ctx, claim.journal_id, HELD, points)
    balance = ledger.balance(ctx, member_account(member["id"]))
    ledger.finish(ctx, claim.journal_id, points=-points, balance_after=balance)
    ctx.record(
        "points.held",
        {
            "member_id": member["id"],
            "authorization_id": hold_id,
            "points": points,
            "amount": str(amount),
            "balance": balance,
        },
        member_id=member["id"],
    )
    return _authorization(block_id, _lock(ctx, hold_id))


def _owner(ctx: FlowContext, hold: Any) -> str:
    """The member points go back to: the hold's member, or the survivor it has been merged into."""
    member = resolve(ctx, hold["member_id"])
    return str(member["id"]) if member is not None else str(hold["member_id"])


def _by_key(ctx: FlowContext, key: str) -> Any | None:
    return ctx.db.execute(sa.select(holds).where(holds.c.idempotency_key == key)).mappings().first()


def _lock(ctx: FlowContext, hold_id: str) -> Any:
    row = ctx.db.execute(sa.select(holds).where(holds.c.id == hold_id).with_for_update()).mappings().first()
    if row is None:
        raise UnknownAuthorization(f"no points authorization with id {hold_id!r}")
    return row


def status(ctx: FlowContext, block_id: str, key: str) -> PaymentAuthorization | None:
    row = _by_key(ctx, key)
    return _authorization(block_id, row) if row is not None else None


def capture(ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, key: str) -> PaymentCapture:
    hold = _lock(ctx, authorization.id)
    claim = ledger.claim(
        ctx,
        kind="redeem",
        key=f"capture:{key}",
        member_id=hold["member_id"],
        amount=amount.amount,
        currency=amount.currency,
        reference=hold["id"],
    )
    if claim.replay:
        return PaymentCapture(claim.existing["id"], hold["id"], Money(int(claim.existing["amount"]), hold["currency"]))
    _check_amount(amount, hold["currency"], "the captured amount")
    if hold["voided"]:
        raise InvalidValue(f"points authorization {hold['id']} was voided; nothing left to capture")
    left = int(hold["amount"]) - int(hold["captured_amount"])
    if amount.amount > left:
        raise InvalidValue(
            f"cannot capture {amount}: only {Money(left, hold['currency'])} of {hold['id']} is uncaptured"
        )
    captured = int(hold["captured_amount"]) + amount.amount
    points = _ceil_share(int(hold["points"]), captured, int(hold["amount"])) - int(hold["captured_points"])
    ledger.post(ctx, claim.journal_id, HELD, -points)
    ledger.post(ctx, claim.journal_id, REDEEMED, points)
    ctx.db.execute(
        holds.update()
        .where(holds.c.id == hold["id"])
        .values(captured_amount=captured, captured_points=holds.c.captured_points + points)
    )
    balance = ledger.balance(ctx, member_account(hold["member_id"]))
    ledger.finish(
        ctx,
        claim.journal_id,
        requested=points,
        balance_after=balance,
        reason=f"{points} held points redeemed for {amount}",
    )
    ctx.record(
        "points.redeemed",
        {
            "member_id": hold["member_id"],
            "authorization_id": hold["id"],
            "points": points,
            "amount": str(amount),
            "journal_id": claim.journal_id,
        },
        member_id=hold["member_id"],
    )
    return PaymentCapture(claim.journal_id, hold["id"], amount)


def balance(ctx: FlowContext, authorization: PaymentAuthorization) -> PaymentBalance | None:
    """What the points hold behind ``authorization`` has given so far, in money."""
    hold = ctx.db.execute(sa.select(holds).where(holds.c.id == authorization.id)).mappings().first()
    if hold is None:
        return None
    currency = hold["currency"]
    return PaymentBalance(
        hold["id"], _status(hold), Money(hold["captured_amount"], currency), Money(hold["refunded_amount"], currency)
    )


def void(ctx: FlowContext, config: LoyaltyConfig, authorization: PaymentAuthorization) -> None:
    hold = _lock(ctx, authorization.id)
    if hold["voided"]:
        return
    release = int(hold["points"]) - int(hold["captured_points"])
    claim = ledger.claim(
        ctx,
        kind="release",
        key=f"release:{hold['id']}",
        member_id=hold["member_id"],
        requested=release,
        reference=hold["id"],
        reason=f"{release} held points released",
    )
    ctx.db.execute(holds.update().where(holds.c.id == hold["id"]).values(voided=True))
    if claim.replay or release <= 0:
        return
    ledger.post(ctx, claim.journal_id, HELD, -release)
    # Given-back points keep their original expiry: the lots the hold drew on last come back first.
    parts = list(reversed(ledger.used_parts(ctx, hold["journal_id"])))
    owner = _owner(ctx, hold)
    ledger.credit_member(ctx, claim.journal_id, owner, release, expire_after=config.points_expire_after, parts=parts)
    balance = ledger.balance(ctx, member_account(owner))
    ledger.finish(ctx, claim.journal_id, member_id=owner, points=release, balance_after=balance)
    ctx.record(
        "points.released",
        {"member_id": owner, "authorization_id": hold["id"], "points": release, "balance": balance},
        member_id=owner,
    )


def refund(
    ctx: FlowContext,
    config: LoyaltyConfig,
    authorization: PaymentAuthorization,
    amount: Money,
    key: str,
) -> PaymentRefund:
    hold = _lock(ctx, authorization.id)
    claim = ledger.claim(
        ctx,
        kind="refund",
        key=f"refund:{key}",
        member_id=hold["member_id"],
        amount=amount.amount,
        currency=amount.currency,
        reference=hold["id"],
    )
    if claim.replay:
        return PaymentRefund(claim.existing["id"], hold["id"], Money(int(claim.existing["amount"]), hold["currency"]))
    _check_amount(amount, hold["currency"], "the refunded amount")
    left = int(hold["captured_amount"]) - int(hold["refunded_amount"])
    if amount.amount > left:
        raise InvalidValue(
            f"cannot refund {amount}: only {Money(left, hold['currency'])} of {hold['id']} is captured "
            "and not yet refunded"
        )
    refunded = int(hold["refunded_amount"]) + amount.amount
    points = share_of(int(hold["captured_points"]), refunded, int(hold["captured_amount"]))
    points -= int(hold["refunded_points"])
    ledger.post(ctx, claim.journal_id, REDEEMED, -points)
    # A refund is new credit: a fresh lot with a full expiry period.
    owner = _owner(ctx, hold)
    ledger.credit_member(ctx, claim.journal_id, owner, points, expire_after=config.points_expire_after)
    ctx.db.execute(
        holds.update()
        .where(holds.c.id == hold["id"])
        .values(refunded_amount=refunded, refunded_points=holds.c.refunded_points + points)
    )
    balance = ledger.balance(ctx, member_account(owner))
    ledger.finish(
        ctx,
        claim.journal_id,
        member_id=owner,
        points=points,
        requested=points,
        balance_after=balance,
        reason=f"{points} points refunded for {amount}",
    )
    ctx.record(
        "points.refunded",
        {
            "member_id": owner,
            "authorization_id": hold["id"],
            "points": points,
            "amount": str(amount),
            "balance": balance,
            "journal_id": claim.journal_id,
        },
        member_id=owner,
    )
    return PaymentRefund(claim.journal_id, hold["id"], amount)
