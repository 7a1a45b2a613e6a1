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
from typing import Any, NoReturn

import attrs
import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import BusinessRejection, IdempotencyConflict, InvalidValue
from retailblocks.model import PointsKind, PointsMovement
from retailblocks.model.limits import MAX_POINTS, check_text
from retailblocks.storage import ClaimOutcome, InsertIfAbsent, KeyClaimer, Prepared, PreparedQuery
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


# Every statement of the checkout path is built once at import (docs/block-storage.md): writes whose row
# count is all we need are Prepared; reads and RETURNING go through the connection.

_CLAIM = KeyClaimer(
    journals,
    (
        "id",
        "kind",
        "member_id",
        "order_id",
        "idempotency_key",
        "reason",
        "at",
        "requested",
        "amount",
        "currency",
        "reference",
    ),
    key=("idempotency_key",),
    same=("kind",),
)
_JOURNAL_BY_ID = sa.select(journals).where(journals.c.id == sa.bindparam("journal_id"))
_ENSURE_ACCOUNT = InsertIfAbsent(accounts, ("id", "kind", "owner", "balance", "may_go_negative"))
# A member's account is created with the member; a fresh member id cannot collide with anything.
_OPEN_ACCOUNT = Prepared.insert(accounts, "id", "kind", "owner", "balance", "may_go_negative")
_BALANCE_SELECT = sa.select(accounts.c.balance).where(accounts.c.id == sa.bindparam("account_id"))
_BALANCE = PreparedQuery(_BALANCE_SELECT)
_BALANCE_LOCKED = PreparedQuery(_BALANCE_SELECT.with_for_update())
_points = sa.bindparam("points", type_=sa.BigInteger)
# Constants in a Prepared statement are written into its SQL: every bind must be a named parameter.
ZERO: sa.ColumnClause[int] = sa.literal_column("0")
_MAX_POINTS: sa.ColumnClause[int] = sa.literal_column(str(MAX_POINTS))
# The guard is in the UPDATE: an account that may not go negative (a member's) is never taken below zero
# nor above MAX_POINTS, and the row stays locked by this transaction from here on.
_move_where = (
    accounts.c.id == sa.bindparam("account_id"),
    sa.or_(
        accounts.c.may_go_negative,
        sa.and_(accounts.c.balance + _points >= ZERO, accounts.c.balance <= _MAX_POINTS - _points),
    ),
)
_MOVE = Prepared(accounts.update().where(*_move_where).values(balance=accounts.c.balance + _points))
# The same, answering the new balance: a member's balance is wanted right after it moved (journal,
# event), and reading it back would be one more round trip.
_MOVE_RETURNING = PreparedQuery(
    accounts.update().where(*_move_where).values(balance=accounts.c.balance + _points).returning(accounts.c.balance)
)
_POSTING = Prepared.insert(postings, "journal_id", "account_id", "points", "at")
_LOTS_TO_CONSUME = (
    sa.select(lots.c.id, lots.c.remaining, lots.c.earned_at, lots.c.expires_at)
    .where(lots.c.member_id == sa.bindparam("member_id"), lots.c.remaining > 0)
    .order_by(lots.c.expires_at, lots.c.earned_at, lots.c.id)
    .with_for_update()
)
_take = sa.bindparam("take", type_=sa.BigInteger)
_CONSUME_LOT = Prepared(
    lots.update()
    .where(lots.c.id == sa.bindparam("lot_id"), lots.c.remaining >= _take)
    .values(remaining=lots.c.remaining - _take)
)
LOT_USE = Prepared.insert(lot_uses, "journal_id", "lot_id", "points")
_ADD_LOT = Prepared.insert(
    lots, "id", "member_id", "journal_id", "points", "remaining", "expired", "earned_at", "expires_at"
)
_USED_PARTS = (
    sa.select(lot_uses.c.points, lots.c.earned_at, lots.c.expires_at)
    .join(lots, lots.c.id == lot_uses.c.lot_id)
    .where(lot_uses.c.journal_id == sa.bindparam("journal_id"))
    .order_by(lot_uses.c.id)
)
# ``finish`` sets a few journal columns; one Prepared statement per set of columns, made on first use.
_FINISH: dict[frozenset[str], Prepared] = {}


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
    check_text(key, "an idempotency key", max_length=200)  # the width of the key columns
    check_text(reason, "a reason")
    journal_id = ctx.ids.new_id("pj")
    claimed = _CLAIM(
        ctx.db,
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
    if claimed.outcome is ClaimOutcome.NEW:
        return Claim(journal_id)
    existing = claimed.existing
    assert existing is not None
    if claimed.outcome is ClaimOutcome.CONFLICT:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for a {existing['kind']} journal, not {kind}"
        )
    return Claim(existing["id"], existing)


def finish(ctx: FlowContext, journal_id: str, **values: Any) -> None:
    """Record the member's side of a journal (points, balance after, reason) once it is posted."""
    columns = frozenset(values)
    statement = _FINISH.get(columns)
    if statement is None:
        # Parameter names differ from the column names: SQLAlchemy reserves those for SET.
        statement = Prepared(
            journals.update()
            .where(journals.c.id == sa.bindparam("finish_journal_id"))
            .values({name: sa.bindparam(f"set_{name}", type_=journals.c[name].type) for name in sorted(columns)})
        )
        statement = _FINISH.setdefault(columns, statement)
    statement.execute(ctx.db, {f"set_{name}": value for name, value in values.items()}, finish_journal_id=journal_id)


def ensure_account(ctx: FlowContext, account_id: str, *, kind: str, owner: str | None, may_go_negative: bool) -> None:
    _ENSURE_ACCOUNT(
        ctx.db,
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


def open_member_account(ctx: FlowContext, member_id: str) -> str:
    """The account of a member enrolled in this very transaction (no one else can have opened it)."""
    account = member_account(member_id)
    _OPEN_ACCOUNT.execute(ctx.db, id=account, kind="member", owner=member_id, balance=0, may_go_negative=False)
    return account


def balance(ctx: FlowContext, account_id: str, *, lock: bool = False) -> int:
    value = (_BALANCE_LOCKED if lock else _BALANCE).scalar(ctx.db, account_id=account_id)
    return int(value or 0)


def post(ctx: FlowContext, journal_id: str, account_id: str, points: int) -> None:
    """Move ``account_id`` by ``points`` and write the posting; refuses to overdraw a guarded account."""
    if points == 0:
        return
    if _MOVE.execute(ctx.db, account_id=account_id, points=points) != 1:
        _refuse(ctx, account_id, points)
    _POSTING.execute(ctx.db, journal_id=journal_id, account_id=account_id, points=points, at=ctx.clock.now())


def _refuse(ctx: FlowContext, account_id: str, points: int) -> NoReturn:
    available = balance(ctx, account_id)
    if points > 0:
        raise InvalidValue(
            f"account {account_id} holds {available} points, and no balance may exceed {MAX_POINTS} "
            f"(cannot add {points})"
        )
    raise InsufficientPoints(
        f"account {account_id} holds {available} points, cannot take {-points}",
        account=account_id,
        requested=-points,
        available=available,
    )


def _post_member(ctx: FlowContext, journal_id: str, member_id: str, points: int) -> int:
    """``post`` on a member's account (opened on first use); returns the balance after it."""
    account = member_account(member_id)
    new_balance = _MOVE_RETURNING.scalar(ctx.db, account_id=account, points=points)
    if new_balance is None:
        # No account yet (a member from before accounts were opened at enrolment), or a refused debit.
        ensure_member_account(ctx, member_id)
        new_balance = _MOVE_RETURNING.scalar(ctx.db, account_id=account, points=points)
        if new_balance is None:
            _refuse(ctx, account, points)
    _POSTING.execute(ctx.db, journal_id=journal_id, account_id=account, points=points, at=ctx.clock.now())
    return int(new_balance)


def debit_member(ctx: FlowContext, journal_id: str, member_id: str, points: int) -> list[LotPart]:
    """Take ``points`` from a member (refusing to overdraw) and consume their lots oldest-expiry first.

    Returns the parts of the lots consumed, so a transfer can carry their expiry along.
    """
    if points <= 0:
        return []
    _post_member(ctx, journal_id, member_id, -points)
    # The account row is now locked by this transaction: no one else consumes these lots meanwhile.
    rows = ctx.db.execute(_LOTS_TO_CONSUME, {"member_id": member_id}).all()
    left = points
    parts: list[LotPart] = []
    for lot_id, remaining, earned_at, expires_at in rows:
        if left == 0:
            break
        take = min(int(remaining), left)
        if _CONSUME_LOT.execute(ctx.db, lot_id=lot_id, take=take) != 1:  # pragma: no cover - account lock
            raise RuntimeError(f"lot {lot_id} changed under a locked account")
        LOT_USE.execute(ctx.db, journal_id=journal_id, lot_id=lot_id, points=take)
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
) -> int | None:
    """Give a member ``points``: lots shaped like ``parts`` first, the rest as one lot expiring after
    ``expire_after``. Returns the member's balance after it (None when there was nothing to credit)."""
    if points <= 0:
        return None
    new_balance = _post_member(ctx, journal_id, member_id, points)
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
    return new_balance


def _add_lot(
    ctx: FlowContext,
    journal_id: str,
    member_id: str,
    points: int,
    earned_at: datetime,
    expires_at: datetime,
) -> None:
    _ADD_LOT.execute(
        ctx.db,
        id=ctx.ids.new_id("lot"),
        member_id=member_id,
        journal_id=journal_id,
        points=points,
        remaining=points,
        expired=0,
        earned_at=earned_at,
        expires_at=expires_at,
    )


def used_parts(ctx: FlowContext, journal_id: str) -> list[LotPart]:
    """The lot parts a journal consumed, in the order it consumed them."""
    rows = ctx.db.execute(_USED_PARTS, {"journal_id": journal_id}).all()
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
    return ctx.db.execute(_JOURNAL_BY_ID, {"journal_id": journal_id}).mappings().one()
