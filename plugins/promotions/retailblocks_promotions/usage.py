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

from retailblocks.clock import as_utc
from retailblocks.errors import InvalidValue, MemberLimitReached, PromotionRejected
from retailblocks.model import Money
from retailblocks.storage import InsertIfAbsent, Prepared, PreparedQuery, insert_if_absent
from retailblocks_promotions.config import PromotionConfig
from retailblocks_promotions.engine import Usage, normalize_code
from retailblocks_promotions.tables import coupons, member_usage, redemptions, usage

_DIALECTS: dict[str, Any] = {"postgresql": postgresql, "sqlite": sqlite}


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


def _per_dialect(build: Any) -> dict[str, PreparedQuery]:
    """One statement per supported dialect (ON CONFLICT is dialect-specific), built once at import."""
    return {name: PreparedQuery(build(module.insert)) for name, module in _DIALECTS.items()}


def _on(connection: sa.Connection, statements: Mapping[str, PreparedQuery]) -> PreparedQuery:
    try:
        return statements[connection.dialect.name]
    except KeyError:  # pragma: no cover - the core supports only these two
        raise InvalidValue(
            f"the promotions block supports SQLite and PostgreSQL (got {connection.dialect.name!r})"
        ) from None


# The statements of redeem and release, built once at import (docs/block-storage.md). Conditional UPDATEs
# answer with their row count; a redemption goes in with the core's insert-if-absent, which says whether
# it did; the counters' upserts answer with RETURNING.

_REDEMPTION_COLUMNS = (
    "order_id",
    "promotion_id",
    "member_id",
    "coupon",
    "amount",
    "currency",
    "funder",
    "campaign",
    "released",
    "redeemed_at",
    "released_at",
)
_INSERT_REDEMPTION = InsertIfAbsent(redemptions, _REDEMPTION_COLUMNS)
# A redemption released since (a retried order) is counted again.
_REVIVE = Prepared(
    redemptions.update()
    .where(
        redemptions.c.order_id == sa.bindparam("order_id"),
        redemptions.c.promotion_id == sa.bindparam("promotion_id"),
        redemptions.c.released.is_(sa.true()),
    )
    .values(
        {
            name: sa.bindparam(f"set_{name}", type_=redemptions.c[name].type)
            for name in _REDEMPTION_COLUMNS
            if name not in ("order_id", "promotion_id")
        }
    )
)


def _take_usage_statement(insert: Any, *, limited: bool, budgeted: bool) -> Any:
    """Count a use in one statement: the first use inserts the counter row, later ones update it only
    while the limits hold (checked on the locked row, so concurrent orders cannot both get the last)."""
    amount = sa.bindparam("amount", type_=sa.BigInteger)
    conditions = []
    if limited:
        conditions.append(usage.c.uses < sa.bindparam("usage_limit", type_=sa.Integer))
    if budgeted:
        conditions.append(usage.c.budget_spent + amount <= sa.bindparam("budget", type_=sa.BigInteger))
    return (
        insert(usage)
        .values(promotion_id=sa.bindparam("promotion_id"), uses=sa.literal_column("1"), budget_spent=amount)
        .on_conflict_do_update(
            index_elements=[usage.c.promotion_id],
            set_={"uses": usage.c.uses + 1, "budget_spent": usage.c.budget_spent + amount},
            where=sa.and_(*conditions) if conditions else None,
        )
        .returning(usage.c.budget_spent)
    )


_TAKE_USAGE = {
    (limited, budgeted): _per_dialect(
        lambda insert, limited=limited, budgeted=budgeted: _take_usage_statement(
            insert, limited=limited, budgeted=budgeted
        )
    )
    for limited in (False, True)
    for budgeted in (False, True)
}
_TAKE_MEMBER_USE = _per_dialect(
    lambda insert: (
        insert(member_usage)
        .values(
            promotion_id=sa.bindparam("promotion_id"), member_id=sa.bindparam("member_id"), uses=sa.literal_column("1")
        )
        .on_conflict_do_update(
            index_elements=[member_usage.c.promotion_id, member_usage.c.member_id],
            set_={"uses": member_usage.c.uses + 1},
            where=member_usage.c.uses < sa.bindparam("limit", type_=sa.Integer),
        )
        .returning(member_usage.c.uses)
    )
)
_TAKE_COUPON_USE = Prepared(
    coupons.update()
    .where(
        coupons.c.code == sa.bindparam("code"),
        coupons.c.uses < coupons.c.max_uses,
        sa.or_(coupons.c.member_id.is_(None), coupons.c.member_id == sa.bindparam("member_id")),
    )
    .values(uses=coupons.c.uses + sa.literal_column("1"))
)
_ISSUED_CODE = PreparedQuery(sa.select(coupons.c.code).where(coupons.c.code == sa.bindparam("code")))
_UNRELEASED = PreparedQuery(
    sa.select(redemptions)
    .where(redemptions.c.order_id == sa.bindparam("order_id"), redemptions.c.released.is_(sa.false()))
    .order_by(redemptions.c.promotion_id)
)
_RELEASE = Prepared(
    redemptions.update()
    .where(
        redemptions.c.order_id == sa.bindparam("order_id"),
        redemptions.c.promotion_id == sa.bindparam("promotion_id"),
        redemptions.c.released.is_(sa.false()),
    )
    .values(released=sa.true(), released_at=sa.bindparam("now", type_=redemptions.c.released_at.type))
)
_one: sa.ColumnClause[int] = sa.literal_column("1")
_given_back = sa.bindparam("amount", type_=sa.BigInteger)
_GIVE_BACK_USAGE = Prepared(
    usage.update()
    .where(
        usage.c.promotion_id == sa.bindparam("promotion_id"),
        usage.c.uses >= _one,
        usage.c.budget_spent >= _given_back,
    )
    .values(uses=usage.c.uses - _one, budget_spent=usage.c.budget_spent - _given_back)
)
_GIVE_BACK_MEMBER_USE = Prepared(
    member_usage.update()
    .where(
        member_usage.c.promotion_id == sa.bindparam("promotion_id"),
        member_usage.c.member_id == sa.bindparam("member_id"),
        member_usage.c.uses >= _one,
    )
    .values(uses=member_usage.c.uses - _one)
)
_GIVE_BACK_COUPON_USE = Prepared(
    coupons.update()
    .where(coupons.c.code == sa.bindparam("code"), coupons.c.uses >= _one)
    .values(uses=coupons.c.uses - _one)
)
_USAGE = PreparedQuery(
    sa.select(usage.c.promotion_id, usage.c.uses, usage.c.budget_spent).where(
        usage.c.promotion_id.in_(sa.bindparam("promotion_ids", expanding=True))
    )
)
_MEMBER_USES = PreparedQuery(
    sa.select(member_usage.c.promotion_id, member_usage.c.uses).where(
        member_usage.c.promotion_id.in_(sa.bindparam("promotion_ids", expanding=True)),
        member_usage.c.member_id == sa.bindparam("member_id"),
    )
)
_ISSUED_CODES = PreparedQuery(
    sa.select(coupons.c.code, coupons.c.promotion_id, coupons.c.member_id).where(
        coupons.c.code.in_(sa.bindparam("codes", expanding=True)), coupons.c.uses < coupons.c.max_uses
    )
)


def read_usage(connection: sa.Connection, promotion_ids: Collection[str], member_id: str | None) -> dict[str, Usage]:
    """Uses, budget spent and this member's uses per promotion (zero when never used)."""
    if not promotion_ids:
        return {}
    ids = sorted(promotion_ids)
    totals = {
        row.promotion_id: (int(row.uses), int(row.budget_spent)) for row in _USAGE.all(connection, promotion_ids=ids)
    }
    mine: dict[str, int] = {}
    if member_id is not None:
        mine = {
            row.promotion_id: int(row.uses)
            for row in _MEMBER_USES.all(connection, promotion_ids=ids, member_id=member_id)
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
    rows = _ISSUED_CODES.all(connection, codes=sorted(codes))
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
    if not _INSERT_REDEMPTION(connection, row):
        # Counted before: idempotent, unless it was released since (a retried order), then count
        # again.
        revived = _REVIVE.execute(
            connection,
            {f"set_{key}": value for key, value in row.items() if key not in ("order_id", "promotion_id")},
            order_id=order_id,
            promotion_id=claim.promotion_id,
        )
        if revived != 1:
            return False, False
    exhausted = _take_usage(connection, claim, promotion)
    if promotion is not None and promotion.per_member_limit is not None:
        _take_member_use(connection, claim.promotion_id, member_id, promotion.per_member_limit)
    if claim.coupon is not None:
        _take_coupon_use(connection, claim.coupon, member_id, promotion)
    return True, exhausted


def _take_usage(connection: sa.Connection, claim: Claim, promotion: PromotionConfig | None) -> bool:
    limit = promotion.usage_limit if promotion is not None else None
    budget = promotion.budget.amount if promotion is not None and promotion.budget is not None else None
    amount = claim.amount.amount
    # The first use inserts the counter without the upsert's WHERE, so limits that not even a first
    # use fits are refused here, exactly as the conditional update would refuse them on a zero row.
    spent = None
    if (limit is None or limit > 0) and (budget is None or amount <= budget):
        statement = _on(connection, _TAKE_USAGE[limit is not None, budget is not None])
        spent = statement.scalar(
            connection,
            {"promotion_id": claim.promotion_id, "amount": amount, "usage_limit": limit, "budget": budget},
        )
    if spent is None:
        raise PromotionRejected(
            f"promotion {claim.promotion_id!r} cannot be used for this order any more: "
            "its usage limit "
            "or its budget was reached by other orders; price the cart again"
        )
    return budget is not None and int(spent) >= budget


def _take_member_use(connection: sa.Connection, promotion_id: str, member_id: str | None, limit: int) -> None:
    if member_id is None:
        raise PromotionRejected(f"promotion {promotion_id!r} is limited per member, and this order has no member")
    # As in _take_usage: a first use is inserted unconditionally, so a limit below one is checked here.
    taken = None
    if limit > 0:
        taken = _on(connection, _TAKE_MEMBER_USE).scalar(
            connection, promotion_id=promotion_id, member_id=member_id, limit=limit
        )
    if taken is None:
        raise MemberLimitReached(
            f"member {member_id!r} has already used promotion {promotion_id!r} {limit} time(s), its limit"
        )


def _take_coupon_use(
    connection: sa.Connection, code: str, member_id: str | None, promotion: PromotionConfig | None
) -> None:
    normalized = normalize_code(code)
    if promotion is not None and promotion.code is not None and normalize_code(promotion.code) == normalized:
        # A code written in the configuration: its limits live on the promotion, nothing is stored for
        # it (issued codes never equal a configured one), so there is nothing to look up.
        return
    if _TAKE_COUPON_USE.execute(connection, code=normalized, member_id=member_id) == 1:
        return
    if _ISSUED_CODE.first(connection, code=normalized) is None:
        return  # a code written in the configuration of a promotion no longer configured
    raise PromotionRejected(f"coupon {code!r} is used up or belongs to another member")


def release(connection: sa.Connection, order_id: str, now: datetime) -> list[Redemption]:
    """Give back everything the order took; returns what was released now (nothing on a replay)."""
    rows = _UNRELEASED.mappings(connection, order_id=order_id)
    released: list[Redemption] = []
    for row in rows:
        if _RELEASE.execute(connection, order_id=order_id, promotion_id=row["promotion_id"], now=now) != 1:
            continue  # a concurrent release got it
        _GIVE_BACK_USAGE.execute(connection, promotion_id=row["promotion_id"], amount=row["amount"])
        if row["member_id"] is not None:
            _GIVE_BACK_MEMBER_USE.execute(connection, promotion_id=row["promotion_id"], member_id=row["member_id"])
        if row["coupon"] is not None:
            _GIVE_BACK_COUPON_USE.execute(connection, code=normalize_code(row["coupon"]))
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
    inserted = insert_if_absent(
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


@attrs.frozen
class HeldCoupon:
    """A single-member coupon with uses left, as the member's wallet lists it."""

    code: str
    promotion_id: str
    uses_left: int
    issued_at: datetime


def member_coupons(connection: sa.Connection, member_id: str) -> list[HeldCoupon]:
    """The coupons issued to ``member_id`` that have uses left, oldest first."""
    rows = connection.execute(
        sa.select(coupons.c.code, coupons.c.promotion_id, coupons.c.uses, coupons.c.max_uses, coupons.c.issued_at)
        .where(coupons.c.member_id == member_id, coupons.c.uses < coupons.c.max_uses)
        .order_by(coupons.c.issued_at, coupons.c.code)
    ).all()
    return [
        HeldCoupon(code, promotion_id, int(max_uses) - int(uses), as_utc(issued_at))
        for code, promotion_id, uses, max_uses, issued_at in rows
    ]
