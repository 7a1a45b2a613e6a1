"""The points ledger: idempotent journals of postings that sum to zero, balances and expiry lots.

A journal is claimed by inserting its idempotency key first (insert-or-ignore), so a replay finds the
journal already there and changes nothing. Each posting moves an account's running ``balance`` with a
conditional UPDATE that refuses to take an account that may not go negative below zero; the UPDATE also
locks the account row, which serializes everything else done to the same member in the transaction
(lot consumption included). A member's lots always hold exactly the member's balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import BusinessRejection, IdempotencyConflict
from retailblocks.model import PointsKind, PointsMovement
from retailblocks_loyalty._sql import insert_ignore
from retailblocks_loyalty.tables import (
    accounts,
    journals,
    lot_uses,
    lots,
    member_account,
    postings,
)

_POINTS_KIND: dict[str, PointsKind] = {
    "earn": PointsKind.EARN,
    "reverse": PointsKind.REVERSE,
    "expire": PointsKind.EXPIRE,
    "adjust": PointsKind.ADJUST,
    "transfer": PointsKind.TRANSFER,
    "exchange": PointsKind.TRANSFER,
    "redeem": PointsKind.REDEEM,
    "hold": PointsKind.REDEEM,
    "release": PointsKind.REDEEM,
    "refund": PointsKind.REDEEM,
}


class InsufficientPoints(BusinessRejection):
    """A member (or a non-negative account) holds fewer points than a debit needs."""

    cause = "insufficient_points"

    def __init__(self, message: str, *, account: str, requested: int, available: int):
        super().__init__(message)
        self.account = account
        self.requested = requested
        self.available = available


@attrs.frozen
class LotPart:
    """Points credited with a given expiry (copied from lots they came from, or fresh)."""

    points: int
    earned_at: datetime
    expires_at: datetime


@attrs.frozen
class Claim:
    """The outcome of claiming a journal's key: a new journal to fill, or the row of an earlier one."""

    journal_id: str
    existing: Any = None

    @property
    def replay(self) -> bool:
        return self.existing is not None


def claim(
    ctx: FlowContext,
    *,
    kind: str,
    key: str,
    member_id: str | None,
    order_id: str | None = None,
    reason: str = "",
    requested: int = 0,
    amount: int | None = None,
    currency: str | None = None,
    reference: str | None = None,
) -> Claim:
    """Claim ``key`` for a new journal, or find the journal that already holds it."""
    if not isinstance(key, str) or not key:
        raise IdempotencyConflict(f"an idempotency key must be a non-empty string (got {key!r})")
    journal_id = ctx.ids.new_id("pj")
    inserted = insert_ignore(
        ctx.db,
        journals,
        {
            "id": journal_id,
            "kind": kind,
            "member_id": member_id,
            "order_id": order_id,
            "idempotency_key": key,
            "reason": reason,
            "at": ctx.clock.now(),
            "requested": requested,
            "amount": amount,
            "currency": currency,
            "reference": reference,
        },
    )
    if inserted:
        return Claim(journal_id)
    existing = ctx.db.execute(sa.select(journals).where(journals.c.idempotency_key == key)).mappings().one()
    if existing["kind"] != kind:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for a {existing['kind']} journal, not {kind}"
        )
    return Claim(existing["id"], existing)


def finish(ctx: FlowContext, journal_id: str, **values: Any) -> None:
    """Record the member's side of a journal (points, balance after, reason) once it is posted."""
    ctx.db.execute(journals.update().where(journals.c.id == journal_id).values(**values))


def ensure_account(ctx: FlowContext, account_id: str, *, kind: str, owner: str | None, may_go_negative: bool) -> None:
    insert_ignore(
        ctx.db,
        accounts,
        {
            "id": account_id,
            "kind": kind,
            "owner": owner,
            "balance": 0,
            "may_go_negative": may_go_negative,
        },
    )


def ensure_member_account(ctx: FlowContext, member_id: str) -> str:
    account = member_account(member_id)
    ensure_account(ctx, account, kind="member", owner=member_id, may_go_negative=False)
    return account


def balance(ctx: FlowContext, account_id: str, *, lock: bool = False) -> int:
    query = sa.select(accounts.c.balance).where(accounts.c.id == account_id)
    if lock:
        query = query.with_for_update()
    value = ctx.db.execute(query).scalar()
    return int(value or 0)


def post(ctx: FlowContext, journal_id: str, account_id: str, points: int) -> None:
    """Move ``account_id`` by ``points`` and write the posting; refuses to overdraw a guarded account."""
    if points == 0:
        return
    result = ctx.db.execute(
        accounts.update()
        .where(
            accounts.c.id == account_id,
            sa.or_(accounts.c.may_go_negative, accounts.c.balance + points >= 0),
        )
        .values(balance=accounts.c.balance + points)
    )
    if result.rowcount != 1:
        available = balance(ctx, account_id)
        raise InsufficientPoints(
            f"account {account_id} holds {available} points, cannot take {-points}",
            account=account_id,
            requested=-points,
            available=available,
        )
    ctx.db.execute(
        postings.insert().values(journal_id=journal_id, account_id=account_id, points=points, at=ctx.clock.now())
    )


def debit_member(ctx: FlowContext, journal_id: str, member_id: str, points: int) -> list[LotPart]:
    """Take ``points`` from a member (refusing to overdraw) and consume their lots oldest-expiry first.

    Returns the parts of the lots consumed, so a transfer can carry their expiry along.
    """
    if points <= 0:
        return []
    account = ensure_member_account(ctx, member_id)
    post(ctx, journal_id, account, -points)
    # The account row is now locked by this transaction: no one else consumes these lots meanwhile.
    rows = ctx.db.execute(
        sa.select(lots.c.id, lots.c.remaining, lots.c.earned_at, lots.c.expires_at)
        .where(lots.c.member_id == member_id, lots.c.remaining > 0)
        .order_by(lots.c.expires_at, lots.c.earned_at, lots.c.id)
        .with_for_update()
    ).all()
    left = points
    parts: list[LotPart] = []
    for lot_id, remaining, earned_at, expires_at in rows:
        if left == 0:
            break
        take = min(int(remaining), left)
        updated = ctx.db.execute(
            lots.update().where(lots.c.id == lot_id, lots.c.remaining >= take).values(remaining=lots.c.remaining - take)
        )
        if updated.rowcount != 1:  # pragma: no cover - guarded by the account lock
            raise RuntimeError(f"lot {lot_id} changed under a locked account")
        ctx.db.execute(lot_uses.insert().values(journal_id=journal_id, lot_id=lot_id, points=take))
        parts.append(LotPart(take, earned_at, expires_at))
        left -= take
    if left:  # pragma: no cover - the balance and the lots are kept equal
        raise RuntimeError(f"member {member_id} has {left} points of balance not covered by lots")
    return parts


def credit_member(
    ctx: FlowContext,
    journal_id: str,
    member_id: str,
    points: int,
    *,
    expire_after: timedelta,
    parts: Sequence[LotPart] = (),
) -> None:
    """Give a member ``points``: lots shaped like ``parts`` first, the rest as one lot expiring after
    ``expire_after``."""
    if points <= 0:
        return
    account = ensure_member_account(ctx, member_id)
    post(ctx, journal_id, account, points)
    left = points
    now = ctx.clock.now()
    for part in parts:
        if left == 0:
            break
        take = min(part.points, left)
        _add_lot(ctx, journal_id, member_id, take, part.earned_at, part.expires_at)
        left -= take
    if left:
        _add_lot(ctx, journal_id, member_id, left, now, now + expire_after)


def _add_lot(
    ctx: FlowContext,
    journal_id: str,
    member_id: str,
    points: int,
    earned_at: datetime,
    expires_at: datetime,
) -> None:
    ctx.db.execute(
        lots.insert().values(
            id=ctx.ids.new_id("lot"),
            member_id=member_id,
            journal_id=journal_id,
            points=points,
            remaining=points,
            expired=0,
            earned_at=earned_at,
            expires_at=expires_at,
        )
    )


def used_parts(ctx: FlowContext, journal_id: str) -> list[LotPart]:
    """The lot parts a journal consumed, in the order it consumed them."""
    rows = ctx.db.execute(
        sa.select(lot_uses.c.points, lots.c.earned_at, lots.c.expires_at)
        .join(lots, lots.c.id == lot_uses.c.lot_id)
        .where(lot_uses.c.journal_id == journal_id)
        .order_by(lot_uses.c.id)
    ).all()
    return [LotPart(int(points), earned_at, expires_at) for points, earned_at, expires_at in rows]


def movement(row: Any) -> PointsMovement:
    """The PointsMovement a journal row stands for."""
    return PointsMovement(
        id=row["id"],
        member_id=row["member_id"] or "",
        points=int(row["points"]),
        kind=_POINTS_KIND.get(row["kind"], PointsKind.ADJUST),
        balance=int(row["balance_after"]),
        order_id=row["order_id"],
        reason=row["reason"] or "",
    )


def load_journal(ctx: FlowContext, journal_id: str) -> Any:
    return ctx.db.execute(sa.select(journals).where(journals.c.id == journal_id)).mappings().one()
