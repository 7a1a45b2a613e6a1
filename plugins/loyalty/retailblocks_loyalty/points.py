"""Points movements of a member: earning on orders, reversing on refunds, adjustments, expiry, and
exchanges with partner programmes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.context import FlowContext
from retailblocks.errors import CurrencyMismatch, ExchangeLimitReached, InvalidValue, UnknownMember
from retailblocks.hookspecs.membership import PartnerPointsMovement
from retailblocks.model import Money, Order, PointsKind, PointsMovement
from retailblocks.model.limits import MAX_POINTS
from retailblocks.storage import Prepared, PreparedQuery
from retailblocks_loyalty import ledger
from retailblocks_loyalty.config import LoyaltyConfig, PartnerExchange
from retailblocks_loyalty.engine import (
    exchange_in_points,
    exchange_out_partner_points,
    line_points,
    paid_for_goods,
    share_of,
    tier_multiplier,
)
from retailblocks_loyalty.members import refresh_tier, resolve
from retailblocks_loyalty.tables import (
    accounts,
    issued_account,
    journals,
    lots,
    member_account,
    members,
    partner_account,
    postings,
    system_account,
)

EXPIRED = system_account("expired")

# Built once (see ledger.py). The spend UPDATE answers the tier and spend it left, which is all
# ``refresh_tier`` needs: no read-back.
_spend = sa.bindparam("spend", type_=sa.BigInteger)
_ADD_SPEND = PreparedQuery(
    members.update()
    .where(members.c.id == sa.bindparam("member_id"))
    .values(lifetime_spend=members.c.lifetime_spend + _spend)
    .returning(members.c.tier, members.c.lifetime_spend)
)
# Points past their expiry must not pay: every points authorization looks for a member's due lots.
_due = (lots.c.member_id == sa.bindparam("member_id"), lots.c.expires_at <= sa.bindparam("now"), lots.c.remaining > 0)
_MEMBER_HAS_DUE = sa.select(lots.c.member_id).where(*_due).limit(1)
_DUE_LOTS = (
    sa.select(lots.c.id, lots.c.remaining, lots.c.expired)
    .where(*_due)
    .order_by(lots.c.expires_at, lots.c.id)
    .with_for_update()
)
_expiring = sa.bindparam("expiring", type_=sa.BigInteger)
_EXPIRE_LOT = Prepared(
    lots.update()
    .where(lots.c.id == sa.bindparam("lot_id"), lots.c.remaining == _expiring)
    .values(remaining=ledger.ZERO, expired=lots.c.expired + _expiring)
)


@attrs.frozen
class JournalEntry:
    """One posting on a member's points account, with the journal it belongs to."""

    journal_id: str
    kind: str
    points: int
    at: datetime
    order_id: str | None
    reason: str
    idempotency_key: str


def active_member(ctx: FlowContext, member_id: str) -> Any:
    row = resolve(ctx, member_id)
    if row is None:
        raise UnknownMember(f"no member with id {member_id!r}")
    return row


def _balance(ctx: FlowContext, member_id: str) -> int:
    return ledger.balance(ctx, member_account(member_id))


def earn(ctx: FlowContext, config: LoyaltyConfig, member_id: str, order: Order, key: str) -> PointsMovement | None:
    """Credit what ``order`` earns. Idempotent per order (and so per key): one order earns once."""
    member = active_member(ctx, member_id)
    channel_type = ctx.channel.type.value if ctx.channel is not None and ctx.channel.id == order.channel else None
    # The tier before this order counts: the order that lifts a member to gold earns at the old rate.
    lines = line_points(
        order,
        config.earning,
        channel_type=channel_type,
        tier_percent=tier_multiplier(config.tiers, member["tier"]),
    )
    points = sum(p for _, _, p in lines)
    paid = paid_for_goods(order)
    reason = f"order {order.id} on {order.channel}"
    claim = ledger.claim(
        ctx,
        kind="earn",
        key=f"earn:{order.id}",
        member_id=member["id"],
        order_id=order.id,
        reason=reason,
        requested=points,
        amount=paid.amount,
        currency=paid.currency,
        reference=key,
    )
    if claim.replay:
        return ledger.movement(claim.existing) if int(claim.existing["points"]) else None
    balance_after: int | None = None
    if points:
        ledger.post(ctx, claim.journal_id, issued_account(claim.journal_id), -points)
        balance_after = ledger.credit_member(
            ctx, claim.journal_id, member["id"], points, expire_after=config.points_expire_after
        )
    if balance_after is None:
        balance_after = _balance(ctx, member["id"])
    spent = _ADD_SPEND.first_mapping(ctx.db, member_id=member["id"], spend=paid.amount)
    if spent is None:  # pragma: no cover - the member was read in this transaction
        raise InvalidValue(f"unknown member {member['id']!r}")
    ledger.finish(ctx, claim.journal_id, points=points, balance_after=balance_after)
    if points:
        ctx.record(
            "points.earned",
            {
                "member_id": member["id"],
                "order_id": order.id,
                "points": points,
                "balance": balance_after,
                "journal_id": claim.journal_id,
                "lines": [{"index": i, "sku": sku, "points": p} for i, sku, p in lines],
            },
            order_id=order.id,
            member_id=member["id"],
        )
    refresh_tier(ctx, config, member["id"], spent)
    if not points:
        return None
    # The journal as just written; reading it back would add a round trip for values known here.
    return PointsMovement(
        id=claim.journal_id,
        member_id=member["id"],
        points=points,
        kind=PointsKind.EARN,
        balance=balance_after,
        order_id=order.id,
        reason=reason,
    )


def reverse(
    ctx: FlowContext,
    config: LoyaltyConfig,
    member_id: str,
    order_id: str,
    refunded: Money,
    order_total: Money,
    key: str,
) -> PointsMovement | None:
    """Take back the refunded share of what ``order_id`` earned.

    The share is cumulative: after refunds totalling R of T, ``floor(earned × R / T)`` has been asked
    back (all of it once R reaches T), so partial refunds never round away points. If the member has
    already spent the points, the balance may not go negative: what is there is taken, and the shortfall
    is written off and stated in the journal's reason. Asked-back points (taken or written off) are
    never asked for again, so reversals of an order never exceed what it earned.
    """
    if refunded.currency != order_total.currency:
        raise CurrencyMismatch(f"refunded is in {refunded.currency}, the order total in {order_total.currency}")
    if refunded.amount < 0 or order_total.amount < 0:
        raise InvalidValue(f"refunded and order_total must be >= 0 (got {refunded} of {order_total})")
    member = active_member(ctx, member_id)
    # Lock the member's account first: the sums below must not change until this reversal is posted.
    account = ledger.ensure_member_account(ctx, member["id"])
    ledger.balance(ctx, account, lock=True)
    earned_points, earned_spend = ctx.db.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(journals.c.points), 0),
            sa.func.coalesce(sa.func.sum(journals.c.amount), 0),
        ).where(journals.c.kind == "earn", journals.c.order_id == order_id)
    ).one()
    asked, refunded_before = ctx.db.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(journals.c.requested), 0),
            sa.func.coalesce(sa.func.sum(journals.c.amount), 0),
        ).where(journals.c.kind == "reverse", journals.c.order_id == order_id)
    ).one()
    earned_points, earned_spend = int(earned_points), int(earned_spend)
    asked, refunded_before = int(asked), int(refunded_before)
    target = share_of(earned_points, refunded_before + refunded.amount, order_total.amount)
    wanted = max(0, min(target, earned_points) - asked)
    claim = ledger.claim(
        ctx,
        kind="reverse",
        key=key,
        member_id=member["id"],
        order_id=order_id,
        requested=wanted,
        amount=refunded.amount,
        currency=refunded.currency,
    )
    if claim.replay:
        return ledger.movement(claim.existing) if int(claim.existing["requested"]) else None
    available = ledger.balance(ctx, account)
    taking = min(wanted, available)
    reason = f"refund of {refunded} of {order_total} on order {order_id}"
    if taking < wanted:
        reason += f"; shortfall {wanted - taking} points already spent, written off"
    if taking:
        ledger.debit_member(ctx, claim.journal_id, member["id"], taking)
        ledger.post(ctx, claim.journal_id, issued_account(claim.journal_id), taking)
    # Refunded spend no longer counts towards tiers (tiers themselves are never lowered here).
    spend_back = max(0, min(refunded.amount, earned_spend - refunded_before))
    if spend_back:
        ctx.db.execute(
            members.update()
            .where(members.c.id == member["id"])
            .values(
                lifetime_spend=sa.case(
                    (members.c.lifetime_spend >= spend_back, members.c.lifetime_spend - spend_back),
                    else_=0,
                )
            )
        )
    balance_after = _balance(ctx, member["id"])
    ledger.finish(ctx, claim.journal_id, points=-taking, balance_after=balance_after, reason=reason)
    if wanted == 0:
        return None
    ctx.record(
        "points.reversed",
        {
            "member_id": member["id"],
            "order_id": order_id,
            "points": -taking,
            "shortfall": wanted - taking,
            "balance": balance_after,
            "journal_id": claim.journal_id,
        },
        order_id=order_id,
        member_id=member["id"],
    )
    return ledger.movement(ledger.load_journal(ctx, claim.journal_id))


def adjust(
    ctx: FlowContext, config: LoyaltyConfig, member_id: str, points: int, reason: str, key: str
) -> PointsMovement:
    """Post ``points`` (signed) outside any order; refuses to take the balance below zero."""
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise InvalidValue(f"an adjustment must be a non-zero whole number of points (got {points!r})")
    if not -MAX_POINTS <= points <= MAX_POINTS:
        raise InvalidValue(f"an adjustment must be within ±{MAX_POINTS} points (got {points})")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidValue("an adjustment needs a reason, for the audit trail (got none)")
    member = active_member(ctx, member_id)
    claim = ledger.claim(ctx, kind="adjust", key=key, member_id=member["id"], reason=reason, requested=points)
    if claim.replay:
        return ledger.movement(claim.existing)
    if points > 0:
        ledger.post(ctx, claim.journal_id, issued_account(claim.journal_id), -points)
        ledger.credit_member(ctx, claim.journal_id, member["id"], points, expire_after=config.points_expire_after)
    else:
        ledger.debit_member(ctx, claim.journal_id, member["id"], -points)
        ledger.post(ctx, claim.journal_id, issued_account(claim.journal_id), -points)
    balance_after = _balance(ctx, member["id"])
    ledger.finish(ctx, claim.journal_id, points=points, balance_after=balance_after)
    ctx.record(
        "points.adjusted",
        {
            "member_id": member["id"],
            "points": points,
            "reason": reason,
            "balance": balance_after,
            "journal_id": claim.journal_id,
        },
        member_id=member["id"],
    )
    return ledger.movement(ledger.load_journal(ctx, claim.journal_id))


def expire_due(ctx: FlowContext, *, member_id: str | None = None, limit: int = 500) -> int:
    """Expire the unspent rest of lots past their expiry; returns the points expired. Idempotent.

    Each lot is expired by one journal keyed by the lot and what had expired of it before, so a rerun
    (or a concurrent run) posts nothing twice.
    """
    now = ctx.clock.now()
    if member_id is not None:
        found = ctx.db.execute(_MEMBER_HAS_DUE, {"member_id": member_id, "now": now}).first()
        return _expire_member(ctx, member_id, now) if found is not None else 0
    query = (
        sa.select(lots.c.member_id)
        .where(lots.c.expires_at <= now, lots.c.remaining > 0)
        .group_by(lots.c.member_id)
        .order_by(lots.c.member_id)
        .limit(limit)
    )
    total = 0
    for (owner,) in ctx.db.execute(query).all():
        total += _expire_member(ctx, owner, now)
    return total


def _expire_member(ctx: FlowContext, member_id: str, now: datetime) -> int:
    account = ledger.ensure_member_account(ctx, member_id)
    ledger.balance(ctx, account, lock=True)  # account before lots, as every other path does
    due = ctx.db.execute(_DUE_LOTS, {"member_id": member_id, "now": now}).all()
    expired_total = 0
    lot_ids: list[str] = []
    for lot_id, remaining, expired_before in due:
        remaining = int(remaining)
        if _EXPIRE_LOT.execute(ctx.db, lot_id=lot_id, expiring=remaining) != 1:
            continue
        claim = ledger.claim(
            ctx,
            kind="expire",
            key=f"expire:{lot_id}:{int(expired_before)}",
            member_id=member_id,
            reason=f"lot {lot_id} expired",
            requested=-remaining,
            reference=lot_id,
        )
        if claim.replay:  # pragma: no cover - the conditional update above already guards reruns
            continue
        ledger.post(ctx, claim.journal_id, account, -remaining)
        ledger.post(ctx, claim.journal_id, EXPIRED, remaining)
        ledger.LOT_USE.execute(ctx.db, journal_id=claim.journal_id, lot_id=lot_id, points=remaining)
        ledger.finish(ctx, claim.journal_id, points=-remaining, balance_after=_balance(ctx, member_id))
        expired_total += remaining
        lot_ids.append(lot_id)
    if expired_total:
        ctx.record(
            "points.expired",
            {
                "member_id": member_id,
                "points": -expired_total,
                "lots": lot_ids,
                "balance": _balance(ctx, member_id),
            },
            member_id=member_id,
        )
    return expired_total


def _partner(config: LoyaltyConfig, partner: str) -> PartnerExchange:
    exchange = config.partners.get(partner)
    if exchange is None:
        known = ", ".join(sorted(config.partners)) or "none configured"
        raise InvalidValue(f"unknown partner {partner!r} (known: {known})")
    return exchange


def _whole(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_POINTS:
        raise InvalidValue(f"{name} must be a whole number of points between 1 and {MAX_POINTS} (got {value!r})")


def exchange_in(
    ctx: FlowContext,
    config: LoyaltyConfig,
    member_id: str,
    partner: str,
    partner_points: int,
    key: str,
) -> PointsMovement:
    """Convert a partner's points into ours, credited from the partner's clearing account."""
    _whole("partner_points", partner_points)
    exchange = _partner(config, partner)
    points = exchange_in_points(partner_points, exchange.rate_percent)
    if points <= 0:
        raise InvalidValue(
            f"{partner_points} {partner} points are worth less than one of ours at {exchange.rate_percent}%"
        )
    _check_cap(exchange, partner, points)
    member, clearing, claim = _open_exchange(
        ctx,
        member_id,
        partner,
        key,
        points,
        partner_points,
        f"{partner_points} {partner} points in at {exchange.rate_percent}%",
    )
    if claim.replay:
        return ledger.movement(claim.existing)
    _check_daily_limits(ctx, exchange, partner, member["id"], claim.journal_id, points)
    ledger.post(ctx, claim.journal_id, clearing, -points)
    ledger.credit_member(ctx, claim.journal_id, member["id"], points, expire_after=config.points_expire_after)
    return _exchanged(ctx, claim.journal_id, member["id"], partner, "in", points, partner_points)


def exchange_out(
    ctx: FlowContext, config: LoyaltyConfig, member_id: str, partner: str, points: int, key: str
) -> PointsMovement:
    """Convert a member's points into a partner's: debited to the partner's clearing account."""
    _whole("points", points)
    exchange = _partner(config, partner)
    _check_cap(exchange, partner, points)
    partner_points = exchange_out_partner_points(points, exchange.rate_percent)
    if partner_points <= 0:
        raise InvalidValue(f"{points} points buy no whole {partner} point at {exchange.rate_percent}%")
    member, clearing, claim = _open_exchange(
        ctx,
        member_id,
        partner,
        key,
        -points,
        partner_points,
        f"{points} points out as {partner_points} {partner} points",
    )
    if claim.replay:
        return ledger.movement(claim.existing)
    _check_daily_limits(ctx, exchange, partner, member["id"], claim.journal_id, points)
    ledger.debit_member(ctx, claim.journal_id, member["id"], points)
    ledger.post(ctx, claim.journal_id, clearing, points)
    return _exchanged(ctx, claim.journal_id, member["id"], partner, "out", -points, partner_points)


def _check_cap(exchange: PartnerExchange, partner: str, points: int) -> None:
    if points > exchange.max_per_exchange:
        raise InvalidValue(
            f"one exchange with {partner} may move at most {exchange.max_per_exchange} points (got {points})"
        )


def _check_daily_limits(
    ctx: FlowContext, exchange: PartnerExchange, partner: str, member_id: str, journal_id: str, points: int
) -> None:
    """Refuse (ExchangeLimitReached) an exchange that would take the member past the partner's daily
    limits; the day is the clock's UTC day, and both directions count.

    The member's points account is locked first, so a concurrent exchange of the same member waits here
    until this one commits or rolls back and then counts it: two exchanges cannot both pass the limit.
    (Its journal was claimed just before, so a replayed key answers the earlier exchange, never this.)
    """
    most_points, most_exchanges = exchange.max_points_per_member_per_day, exchange.max_exchanges_per_member_per_day
    if most_points is None and most_exchanges is None:
        return
    ledger.balance(ctx, ledger.ensure_member_account(ctx, member_id), lock=True)
    day = as_utc(ctx.clock.now()).date()
    start = datetime.combine(day, time(), UTC)
    count, moved = ctx.db.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.func.abs(journals.c.requested)), 0)).where(
            journals.c.kind == "exchange",
            journals.c.member_id == member_id,
            journals.c.reference == partner,
            journals.c.at >= start,
            journals.c.at < start + timedelta(days=1),
            journals.c.id != journal_id,
        )
    ).one()
    if most_exchanges is not None and count + 1 > most_exchanges:
        raise ExchangeLimitReached(
            f"member {member_id} has made {count} exchange(s) with {partner} on {day}: at most {most_exchanges} a day"
        )
    if most_points is not None and int(moved) + abs(points) > most_points:
        raise ExchangeLimitReached(
            f"member {member_id} has exchanged {int(moved)} points with {partner} on {day}: {abs(points)} more "
            f"would pass the {most_points} a day allowed ({max(most_points - int(moved), 0)} left today)"
        )


def _open_exchange(
    ctx: FlowContext, member_id: str, partner: str, key: str, points: int, partner_points: int, reason: str
) -> tuple[Any, str, Any]:
    """The member, the partner's clearing account (opened on first use) and the exchange's journal claim;
    ``points`` is signed from the member's side (in > 0, out < 0)."""
    member = active_member(ctx, member_id)
    clearing = partner_account(partner)
    ledger.ensure_account(ctx, clearing, kind="partner", owner=partner, may_go_negative=True)
    claim = ledger.claim(
        ctx,
        kind="exchange",
        key=key,
        member_id=member["id"],
        requested=points,
        amount=partner_points,
        reference=partner,
        reason=reason,
    )
    return member, clearing, claim


def _exchanged(
    ctx: FlowContext,
    journal_id: str,
    member_id: str,
    partner: str,
    direction: str,
    points: int,
    partner_points: int,
) -> PointsMovement:
    balance = _balance(ctx, member_id)
    ledger.finish(ctx, journal_id, points=points, balance_after=balance)
    ctx.record(
        "points.exchanged",
        {
            "member_id": member_id,
            "partner": partner,
            "direction": direction,
            "points": points,
            "partner_points": partner_points,
            "balance": balance,
            "journal_id": journal_id,
        },
        member_id=member_id,
    )
    return ledger.movement(ledger.load_journal(ctx, journal_id))


def partner_balances(ctx: FlowContext, config: LoyaltyConfig) -> dict[str, int]:
    """Each partner's clearing balance in our points: positive, we owe the partner (our members sent
    points out); negative, the partner owes us (we credited points on its behalf)."""
    result = dict.fromkeys(sorted(config.partners), 0)
    rows = ctx.db.execute(sa.select(accounts.c.owner, accounts.c.balance).where(accounts.c.kind == "partner")).all()
    for owner, balance in rows:
        result[owner] = int(balance)
    return result


def partner_movements(
    ctx: FlowContext, config: LoyaltyConfig, partner: str, since: datetime, until: datetime
) -> list[PartnerPointsMovement]:
    """The exchanges with ``partner`` journaled in ``[since, until)``, valued at the points value now
    configured, oldest first: what settlement with the partner is built from."""
    rows = ctx.db.execute(
        sa.select(journals.c.id, journals.c.member_id, journals.c.points, journals.c.amount, journals.c.at)
        .where(
            journals.c.kind == "exchange",
            journals.c.reference == partner,
            journals.c.at >= since,
            journals.c.at < until,
        )
        .order_by(journals.c.at, journals.c.id)
    ).all()
    value = config.points_value
    return [
        PartnerPointsMovement(
            journal_id=journal_id,
            member_id=member_id,
            partner=partner,
            points=int(points),
            partner_points=int(amount or 0),
            # ``points_value`` is what 100 points are worth; rounding down never overstates a debt.
            value=Money(abs(int(points)) * value.amount // 100, value.currency),
            at=at,
        )
        for journal_id, member_id, points, amount, at in rows
    ]


def member_journal(ctx: FlowContext, member_id: str) -> list[JournalEntry]:
    """Every posting on the member's account (the survivor's, for a merged id), oldest first."""
    member = active_member(ctx, member_id)
    rows = ctx.db.execute(
        sa.select(
            postings.c.journal_id,
            journals.c.kind,
            postings.c.points,
            postings.c.at,
            journals.c.order_id,
            journals.c.reason,
            journals.c.idempotency_key,
        )
        .join(journals, journals.c.id == postings.c.journal_id)
        .where(postings.c.account_id == member_account(member["id"]))
        .order_by(postings.c.id)
    ).all()
    return [
        JournalEntry(journal_id, kind, int(points), at, order_id, reason or "", key)
        for journal_id, kind, points, at, order_id, reason, key in rows
    ]
