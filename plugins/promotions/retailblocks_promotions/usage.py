"""Usage of promotions in the database: limits kept by conditional updates, redemptions keyed per
order.

Every limit is a single ``UPDATE … WHERE <limit not reached>`` whose rowcount says whether this
order got
the use; nothing is read, compared in Python and written back. Rows are touched in one order (usage,
then member usage, then the coupon; promotions by id) so two orders never wait on each other in a
cycle.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from retailblocks.errors import InvalidValue, PromotionRejected
from retailblocks.model import Money
from retailblocks_promotions.config import PromotionConfig
from retailblocks_promotions.engine import Usage
from retailblocks_promotions.tables import coupons, member_usage, redemptions, usage


@attrs.frozen
class Redemption:
    """One promotion given in one order: the report row for campaign attribution and funder cost."""

    order_id: str
    promotion_id: str
    member_id: str | None
    coupon: str | None
    amount: Money
    funder: str
    campaign: str | None
    released: bool
    redeemed_at: datetime


@attrs.frozen
class Claim:
    """What one order takes from one promotion at redemption."""

    promotion_id: str
    amount: Money
    funder: str
    campaign: str | None
    coupon: str | None


def insert_ignore(connection: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert unless a unique key collides; True when inserted.

    ``ON CONFLICT DO NOTHING`` rather than catching IntegrityError, which on PostgreSQL would abort
    the
    transaction every block of the step shares.
    """
    statement: Any
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif connection.dialect.name == "sqlite":
        statement = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - the core supports only these two
        raise InvalidValue(f"the promotions block supports SQLite and PostgreSQL (got {connection.dialect.name!r})")
    # RETURNING rather than rowcount: psycopg reports -1 as the rowcount of this statement.
    key = next(iter(table.primary_key.columns))
    return connection.execute(statement.returning(key)).first() is not None


def read_usage(connection: sa.Connection, promotion_ids: Collection[str], member_id: str | None) -> dict[str, Usage]:
    """Uses, budget spent and this member's uses per promotion (zero when never used)."""
    if not promotion_ids:
        return {}
    totals = {
        row.promotion_id: (int(row.uses), int(row.budget_spent))
        for row in connection.execute(
            sa.select(usage.c.promotion_id, usage.c.uses, usage.c.budget_spent).where(
                usage.c.promotion_id.in_(sorted(promotion_ids))
            )
        )
    }
    mine: dict[str, int] = {}
    if member_id is not None:
        mine = {
            row.promotion_id: int(row.uses)
            for row in connection.execute(
                sa.select(member_usage.c.promotion_id, member_usage.c.uses).where(
                    member_usage.c.promotion_id.in_(sorted(promotion_ids)),
                    member_usage.c.member_id == member_id,
                )
            )
        }
    return {
        promotion_id: Usage(
            uses=totals.get(promotion_id, (0, 0))[0],
            budget_spent=totals.get(promotion_id, (0, 0))[1],
            member_uses=mine.get(promotion_id, 0),
        )
        for promotion_id in promotion_ids
    }


def valid_issued_codes(connection: sa.Connection, codes: Collection[str], member_id: str | None) -> dict[str, str]:
    """normalized code -> promotion id, for the issued codes this shopper may still use."""
    if not codes:
        return {}
    rows = connection.execute(
        sa.select(coupons.c.code, coupons.c.promotion_id, coupons.c.member_id).where(
            coupons.c.code.in_(sorted(codes)), coupons.c.uses < coupons.c.max_uses
        )
    )
    return {row.code: row.promotion_id for row in rows if row.member_id is None or row.member_id == member_id}


def redeem(
    connection: sa.Connection,
    *,
    order_id: str,
    member_id: str | None,
    claim: Claim,
    promotion: PromotionConfig | None,
    now: datetime,
) -> tuple[bool, bool]:
    """Count one order's use of one promotion; returns (counted now, budget now exhausted).

    Replays of an order already counted change nothing and return ``(False, False)``. Raises
    :class:`PromotionRejected` when a limit was reached (by another order, possibly concurrently).
    """
    row = {
        "order_id": order_id,
        "promotion_id": claim.promotion_id,
        "member_id": member_id,
        "coupon": claim.coupon,
        "amount": claim.amount.amount,
        "currency": claim.amount.currency,
        "funder": claim.funder,
        "campaign": claim.campaign,
        "released": False,
        "redeemed_at": now,
        "released_at": None,
    }
    if not insert_ignore(connection, redemptions, row):
        # Counted before: idempotent, unless it was released since (a retried order), then count
        # again.
        revived = connection.execute(
            redemptions.update()
            .where(
                redemptions.c.order_id == order_id,
                redemptions.c.promotion_id == claim.promotion_id,
                redemptions.c.released.is_(True),
            )
            .values(**{key: value for key, value in row.items() if key not in ("order_id", "promotion_id")})
        )
        if revived.rowcount != 1:
            return False, False
    exhausted = _take_usage(connection, claim, promotion)
    if promotion is not None and promotion.per_member_limit is not None:
        _take_member_use(connection, claim.promotion_id, member_id, promotion.per_member_limit)
    if claim.coupon is not None:
        _take_coupon_use(connection, claim.coupon, member_id)
    return True, exhausted


def _take_usage(connection: sa.Connection, claim: Claim, promotion: PromotionConfig | None) -> bool:
    insert_ignore(connection, usage, {"promotion_id": claim.promotion_id, "uses": 0, "budget_spent": 0})
    conditions = [usage.c.promotion_id == claim.promotion_id]
    if promotion is not None and promotion.usage_limit is not None:
        conditions.append(usage.c.uses < promotion.usage_limit)
    if promotion is not None and promotion.budget is not None:
        conditions.append(usage.c.budget_spent + claim.amount.amount <= promotion.budget.amount)
    result = connection.execute(
        usage.update()
        .where(*conditions)
        .values(uses=usage.c.uses + 1, budget_spent=usage.c.budget_spent + claim.amount.amount)
    )
    if result.rowcount != 1:
        raise PromotionRejected(
            f"promotion {claim.promotion_id!r} cannot be used for this order any more: "
            "its usage limit "
            "or its budget was reached by other orders; price the cart again"
        )
    if promotion is None or promotion.budget is None:
        return False
    spent = connection.execute(
        sa.select(usage.c.budget_spent).where(usage.c.promotion_id == claim.promotion_id)
    ).scalar_one()
    return int(spent) >= promotion.budget.amount


def _take_member_use(connection: sa.Connection, promotion_id: str, member_id: str | None, limit: int) -> None:
    if member_id is None:
        raise PromotionRejected(f"promotion {promotion_id!r} is limited per member, and this order has no member")
    insert_ignore(connection, member_usage, {"promotion_id": promotion_id, "member_id": member_id, "uses": 0})
    result = connection.execute(
        member_usage.update()
        .where(
            member_usage.c.promotion_id == promotion_id,
            member_usage.c.member_id == member_id,
            member_usage.c.uses < limit,
        )
        .values(uses=member_usage.c.uses + 1)
    )
    if result.rowcount != 1:
        raise PromotionRejected(
            f"member {member_id!r} has already used promotion {promotion_id!r} {limit} time(s), its limit"
        )


def _take_coupon_use(connection: sa.Connection, code: str, member_id: str | None) -> None:
    normalized = code.strip().upper()
    issued = connection.execute(sa.select(coupons.c.code).where(coupons.c.code == normalized)).first()
    if issued is None:
        return  # a code written in the configuration: its limits live on the promotion
    result = connection.execute(
        coupons.update()
        .where(
            coupons.c.code == normalized,
            coupons.c.uses < coupons.c.max_uses,
            sa.or_(coupons.c.member_id.is_(None), coupons.c.member_id == member_id),
        )
        .values(uses=coupons.c.uses + 1)
    )
    if result.rowcount != 1:
        raise PromotionRejected(f"coupon {code!r} is used up or belongs to another member")


def release(connection: sa.Connection, order_id: str, now: datetime) -> list[Redemption]:
    """Give back everything the order took; returns what was released now (nothing on a replay)."""
    rows = (
        connection.execute(
            sa.select(redemptions)
            .where(redemptions.c.order_id == order_id, redemptions.c.released.is_(False))
            .order_by(redemptions.c.promotion_id)
        )
        .mappings()
        .all()
    )
    released: list[Redemption] = []
    for row in rows:
        claimed = connection.execute(
            redemptions.update()
            .where(
                redemptions.c.order_id == order_id,
                redemptions.c.promotion_id == row["promotion_id"],
                redemptions.c.released.is_(False),
            )
            .values(released=True, released_at=now)
        )
        if claimed.rowcount != 1:
            continue  # a concurrent release got it
        connection.execute(
            usage.update()
            .where(
                usage.c.promotion_id == row["promotion_id"],
                usage.c.uses >= 1,
                usage.c.budget_spent >= row["amount"],
            )
            .values(uses=usage.c.uses - 1, budget_spent=usage.c.budget_spent - row["amount"])
        )
        if row["member_id"] is not None:
            connection.execute(
                member_usage.update()
                .where(
                    member_usage.c.promotion_id == row["promotion_id"],
                    member_usage.c.member_id == row["member_id"],
                    member_usage.c.uses >= 1,
                )
                .values(uses=member_usage.c.uses - 1)
            )
        if row["coupon"] is not None:
            connection.execute(
                coupons.update()
                .where(coupons.c.code == row["coupon"].strip().upper(), coupons.c.uses >= 1)
                .values(uses=coupons.c.uses - 1)
            )
        released.append(_redemption({**row, "released": True}))
    return released


def list_redemptions(
    connection: sa.Connection,
    *,
    order_id: str | None = None,
    promotion_id: str | None = None,
    campaign: str | None = None,
    funder: str | None = None,
    include_released: bool = False,
) -> list[Redemption]:
    query = sa.select(redemptions).order_by(
        redemptions.c.redeemed_at, redemptions.c.order_id, redemptions.c.promotion_id
    )
    for column, value in (
        (redemptions.c.order_id, order_id),
        (redemptions.c.promotion_id, promotion_id),
        (redemptions.c.campaign, campaign),
        (redemptions.c.funder, funder),
    ):
        if value is not None:
            query = query.where(column == value)
    if not include_released:
        query = query.where(redemptions.c.released.is_(False))
    return [_redemption(row) for row in connection.execute(query).mappings()]


def _redemption(row: Mapping[str, Any] | sa.RowMapping) -> Redemption:
    return Redemption(
        order_id=row["order_id"],
        promotion_id=row["promotion_id"],
        member_id=row["member_id"],
        coupon=row["coupon"],
        amount=Money(int(row["amount"]), row["currency"]),
        funder=row["funder"],
        campaign=row["campaign"],
        released=bool(row["released"]),
        redeemed_at=row["redeemed_at"],
    )


def issue(
    connection: sa.Connection,
    *,
    promotion_id: str,
    member_id: str,
    key: str,
    code: str,
    max_uses: int,
    now: datetime,
) -> tuple[str, bool]:
    """The code issued to ``member_id`` under ``key``: a new one, or the one a replay issued before.

    Returns (code, issued now).
    """
    inserted = insert_ignore(
        connection,
        coupons,
        {
            "code": code,
            "promotion_id": promotion_id,
            "member_id": member_id,
            "uses": 0,
            "max_uses": max_uses,
            "issue_key": key,
            "issued_at": now,
        },
    )
    existing = connection.execute(
        sa.select(coupons.c.code, coupons.c.promotion_id).where(
            coupons.c.issue_key == key, coupons.c.member_id == member_id
        )
    ).first()
    if existing is None:  # pragma: no cover - the code collided with another key's code
        raise InvalidValue(f"could not issue a coupon for member {member_id!r}; try again")
    if existing.promotion_id != promotion_id:
        raise InvalidValue(
            f"key {key!r} already issued coupons for promotion {existing.promotion_id!r}, "
            f"not {promotion_id!r}; use a new key"
        )
    return str(existing.code), inserted
