"""Campaigns: coupons issued to a segment through a channel, a message sent through a reach block, and the
report of what they brought back — the coupon redemptions, and the uplift over a holdout.

Each member a run reaches is drawn once, for good, into the treated arm or the holdout (a share of the
segment kept from the campaign: no coupon, no message), by a hash of the campaign's seed and the member's
id, so the draw is reproducible and a member who joins the segment later is drawn the same way. Coupons
are issued under one idempotency key per campaign, so running it again reaches only members who joined the
segment since; each treated member is sent the message once (under a key per member and attempt, so a
crash between the provider's send and the record never sends twice), within the campaign's dates and send
window, and not beyond the frequency cap, which counts every campaign's messages to the member.

The report's uplift compares the arms by intent to treat (every member drawn into an arm counts, whether
or not their message arrived): the share who bought and the revenue per member in each arm from their
draw to the campaign's end, and the difference with a 95% confidence interval.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.errors import CampaignNotRunning, InvalidValue
from retailblocks.flows.capabilities import issue_coupons, send_message
from retailblocks.flows.orders import list_orders
from retailblocks.fusion import aggregates
from retailblocks.fusion.consent import withdrawn
from retailblocks.fusion.memberships import segment_members
from retailblocks.fusion.profile import NOT_SALES, net_amount
from retailblocks.fusion.tables import campaign_coupons, campaign_members, campaign_sends, insert_new, reach_members
from retailblocks.fusion.views import catch_up, find_campaign, find_segment
from retailblocks.hookspecs import membership
from retailblocks.hookspecs.reach import DeliveryStatus, ReachMessage
from retailblocks.model import Member, Money, Order

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime
    from retailblocks.context import FlowContext
    from retailblocks.manifest.model import Campaign

TREATED = "treated"
HOLDOUT = "holdout"
#: A failed message is tried again by later runs, this many times in all.
MAX_SEND_ATTEMPTS = 3
#: The normal quantile of a two-sided 95% interval.
Z_95 = 1.959963984540054


@attrs.frozen
class CampaignRun:
    campaign: str
    segment_size: int
    issued: int  # coupons issued by this run (members reached before keep theirs)
    reach: int  # members holding the campaign's coupons after this run
    held_out: int = 0  # members drawn into the holdout, after this run
    #: This run's messages by outcome: sent, failed, opted_out, no_address; and the members not sent one
    #: because of the frequency cap ("capped") or because the run is outside the send window ("waiting").
    messages: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@attrs.frozen
class Uplift:
    """The treated arm against the holdout, by intent to treat, from each member's draw to the campaign's end
    (or now). Conversion is the share of members who placed at least one order; revenue is per member, in
    minor units of the merchant's currency."""

    treated: int
    holdout: int
    treated_buyers: int
    holdout_buyers: int
    treated_revenue: Money
    holdout_revenue: Money
    conversion_treated: float
    conversion_holdout: float
    #: conversion_treated - conversion_holdout, and its 95% interval (None with fewer than two per arm).
    conversion_uplift: float
    conversion_interval: Interval | None
    revenue_per_member_treated: float
    revenue_per_member_holdout: float
    revenue_per_member_uplift: float
    revenue_interval: Interval | None

    def to_data(self, money: Callable[[Money], object] = str) -> dict[str, object]:
        def interval(found: Interval | None) -> list[float] | None:
            return None if found is None else [round(found.low, 6), round(found.high, 6)]

        return {
            "treated": self.treated,
            "holdout": self.holdout,
            "treated_buyers": self.treated_buyers,
            "holdout_buyers": self.holdout_buyers,
            "treated_revenue": money(self.treated_revenue),
            "holdout_revenue": money(self.holdout_revenue),
            "conversion_treated": round(self.conversion_treated, 6),
            "conversion_holdout": round(self.conversion_holdout, 6),
            "conversion_uplift": round(self.conversion_uplift, 6),
            "conversion_interval": interval(self.conversion_interval),
            "revenue_per_member_treated": round(self.revenue_per_member_treated, 2),
            "revenue_per_member_holdout": round(self.revenue_per_member_holdout, 2),
            "revenue_per_member_uplift": round(self.revenue_per_member_uplift, 2),
            "revenue_interval": interval(self.revenue_interval),
        }


@attrs.frozen
class AttributedOrder:
    order_id: str
    member_id: str | None
    channel: str
    placed_at: datetime
    coupon: str
    revenue: Money
    discount_by_funder: dict[str, Money]


@attrs.frozen
class CampaignReport:
    campaign: str
    promotion: str
    channel: str
    reach: int
    orders: tuple[AttributedOrder, ...]
    revenue: Money
    discount_by_funder: dict[str, Money]
    held_out: int = 0
    #: Messages by outcome (sent, failed, opted_out, no_address), the latest attempt of each member's.
    messages: dict[str, int] = attrs.field(factory=dict)
    #: None when the campaign holds no one out: then its effect cannot be told from what would have happened.
    uplift: Uplift | None = None
    #: How many orders used the campaign's coupons, when ``orders`` lists only the first of them.
    redeemed: int | None = None

    @property
    def redemptions(self) -> int:
        return len(self.orders) if self.redeemed is None else self.redeemed

    def to_data(self, money: Callable[[Money], object] = str) -> dict[str, object]:
        """Plain data; ``money`` renders each amount (the CLI passes its one JSON shape of money)."""
        return {
            "campaign": self.campaign,
            "promotion": self.promotion,
            "channel": self.channel,
            "reach": self.reach,
            "held_out": self.held_out,
            "messages": dict(self.messages),
            "uplift": None if self.uplift is None else self.uplift.to_data(money),
            "redemptions": self.redemptions,
            "revenue": money(self.revenue),
            "discount_by_funder": {funder: money(amount) for funder, amount in self.discount_by_funder.items()},
            "orders": [
                {
                    "order_id": o.order_id,
                    "member_id": o.member_id,
                    "channel": o.channel,
                    "placed_at": o.placed_at.isoformat(),
                    "coupon": o.coupon,
                    "revenue": money(o.revenue),
                    "discount_by_funder": {funder: money(amount) for funder, amount in o.discount_by_funder.items()},
                }
                for o in self.orders
            ],
        }


def run_campaign(stack: Runtime, campaign_id: str, *, mediums: Collection[str] | None = None) -> CampaignRun:
    """Draw the segment's new members into the arms, issue the treated their coupons (one transaction), then
    send each treated member the campaign's message, one transaction per member.

    ``mediums`` are the mediums the stack's reach blocks send (None: not checked here); a campaign whose
    medium none sends is refused before anything is written. A campaign outside its dates is refused
    (CampaignNotRunning); outside its send window, coupons are issued and messages wait for a later run.
    """
    campaign = find_campaign(stack, campaign_id)
    segment = find_segment(stack, campaign.segment)
    now = stack.clock.now()
    today = as_utc(now).date()
    if campaign.starts is not None and today < campaign.starts:
        raise CampaignNotRunning(f"campaign {campaign.id!r} starts on {campaign.starts}; today is {today}")
    if campaign.ends is not None and today > campaign.ends:
        raise CampaignNotRunning(f"campaign {campaign.id!r} ended on {campaign.ends}; today is {today}")
    if campaign.message is not None and mediums is not None and campaign.message.medium not in mediums:
        raise InvalidValue(
            f"campaign {campaign.id!r} sends {campaign.message.medium} messages, but no reach block of this "
            f"stack does (they send: {', '.join(sorted(mediums)) or 'nothing; add a reach block'})"
        )
    # The context carries the campaign's channel, so ``coupon.issued`` lands on timelines in that channel.
    with stack.context(campaign.channel, flow="campaign", flow_id=campaign.id) as ctx:
        members = segment_members(stack, ctx, [segment])[segment.id]
        arms = _draw(ctx, campaign, members)
        treated = [member_id for member_id in members if arms[member_id] == TREATED]
        codes = (
            issue_coupons(stack.hooks, ctx, campaign.promotion, treated, f"campaign:{campaign.id}") if treated else {}
        )
        issued = 0
        for member_id, code in sorted(codes.items()):
            issued += insert_new(
                ctx.db,
                campaign_coupons,
                {
                    "campaign": campaign.id,
                    "member_id": member_id,
                    "code": code,
                    "promotion_id": campaign.promotion,
                    "channel": campaign.channel,
                    "issued_at": ctx.clock.now(),
                },
            )
        reach = _count(ctx.db, campaign_coupons, campaign.id)
        held_out = _count(ctx.db, campaign_members, campaign.id, campaign_members.c.arm == HOLDOUT)
    messages: Counter[str] = Counter()
    if campaign.message is not None:
        if campaign.send_window is not None and not _in_window(as_utc(now).time(), campaign.send_window):
            messages["waiting"] = len(_due(stack, campaign))
        else:
            for member_id, code, attempt in _due(stack, campaign):
                messages[_send(stack, campaign, member_id, code, attempt)] += 1
    return CampaignRun(campaign.id, len(members), issued, reach, held_out, dict(sorted(messages.items())))


def in_holdout(seed: str, member_id: str, holdout_bp: int) -> bool:
    """Whether the draw seeded with ``seed`` puts ``member_id`` in a holdout of ``holdout_bp`` basis points:
    a uniform number from the hash of both, so the same seed always draws the same member the same way."""
    digest = hashlib.sha256(f"{seed}\x1f{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < holdout_bp


def _draw(ctx: FlowContext, campaign: Campaign, members: Sequence[str]) -> dict[str, str]:
    """Each member's arm: as drawn by an earlier run, else drawn now and recorded."""
    known = dict(
        ctx.db.execute(
            sa.select(campaign_members.c.member_id, campaign_members.c.arm).where(
                campaign_members.c.campaign == campaign.id
            )
        ).all()
    )
    for member_id in members:
        if member_id in known:
            continue
        arm = HOLDOUT if in_holdout(campaign.seed, member_id, campaign.holdout_bp) else TREATED
        assigned_at = ctx.clock.now()
        row = {"campaign": campaign.id, "member_id": member_id, "arm": arm, "assigned_at": assigned_at}
        if insert_new(ctx.db, campaign_members, row):
            aggregates.drawn(ctx, campaign, member_id, arm, assigned_at)
        known[member_id] = arm
    return known


def _count(connection: sa.Connection, table: sa.Table, campaign: str, *where: sa.ColumnElement[bool]) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.campaign == campaign, *where)
    return int(connection.execute(query).scalar_one())


def _in_window(now: time, window: tuple[time, time]) -> bool:
    start, end = window
    return start <= now.replace(tzinfo=None) < end


def _due(stack: Runtime, campaign: Campaign) -> list[tuple[str, str, int]]:
    """The treated members holding a coupon whose message is not sent yet: (member, code, attempt number)."""
    sends = campaign_sends
    query = (
        sa.select(campaign_coupons.c.member_id, campaign_coupons.c.code, sends.c.status, sends.c.attempts)
        .select_from(
            campaign_coupons.outerjoin(
                sends,
                sa.and_(
                    sends.c.campaign == campaign_coupons.c.campaign, sends.c.member_id == campaign_coupons.c.member_id
                ),
            )
        )
        .where(campaign_coupons.c.campaign == campaign.id)
        .order_by(campaign_coupons.c.member_id)
    )
    with stack.context(flow="read", read_only=True) as ctx:
        rows = ctx.db.execute(query).all()
    return [
        (member_id, code, (attempts or 0) + 1)
        for member_id, code, status, attempts in rows
        if status is None or (status == DeliveryStatus.FAILED and attempts < MAX_SEND_ATTEMPTS)
    ]


def _send(stack: Runtime, campaign: Campaign, member_id: str, code: str, attempt: int) -> str:
    """Send one member the campaign's message, unless the frequency cap forbids it; the outcome's word."""
    assert campaign.message is not None
    with stack.context(campaign.channel, flow="campaign", flow_id=campaign.id) as ctx:
        now = ctx.clock.now()
        # Lock the member's row first: a concurrent campaign sending to the same member waits here, then
        # counts this send in its cap.
        insert_new(ctx.db, reach_members, {"member_id": member_id, "sent": 0})
        ctx.db.execute(sa.select(reach_members.c.sent).where(reach_members.c.member_id == member_id).with_for_update())
        done = ctx.db.execute(
            sa.select(campaign_sends.c.status, campaign_sends.c.attempts).where(
                campaign_sends.c.campaign == campaign.id, campaign_sends.c.member_id == member_id
            )
        ).first()
        if done is not None and (done.status != DeliveryStatus.FAILED or done.attempts >= attempt):
            return "replayed"  # another run sent it meanwhile
        cap = campaign.frequency_cap
        if cap is not None:
            recent = ctx.db.execute(
                sa.select(sa.func.count())
                .select_from(campaign_sends)
                .where(
                    campaign_sends.c.member_id == member_id,
                    campaign_sends.c.status == DeliveryStatus.SENT,
                    campaign_sends.c.sent_at > now - timedelta(days=cap.days),
                )
            ).scalar_one()
            if recent >= cap.messages:
                return "capped"
        if member_id in withdrawn(ctx, "marketing", [member_id], campaign.message.medium):
            return "no_consent"  # nothing written: a later run sends if the member consents again
        member = stack.hooks.maybe(membership.membership_member, ctx, member_id)
        if member is None:  # no membership block: the block gets what the campaign knows
            member = Member(id=member_id)
        message = ReachMessage(
            member=member,
            medium=campaign.message.medium,
            channel=campaign.channel,
            text=campaign.message.text.replace("{coupon}", code),
            campaign=campaign.id,
        )
        delivery = send_message(stack.hooks, ctx, message, f"campaign:{campaign.id}:{member_id}:{attempt}")
        values = {
            "medium": delivery.medium,
            "block": delivery.block,
            "status": str(delivery.status),
            "reference": delivery.reference[:200],
            "reason": delivery.reason[:500],
            "attempts": attempt,
            "sent_at": now,
        }
        if done is None:
            ctx.db.execute(campaign_sends.insert().values(campaign=campaign.id, member_id=member_id, **values))
        else:
            ctx.db.execute(
                campaign_sends.update()
                .where(campaign_sends.c.campaign == campaign.id, campaign_sends.c.member_id == member_id)
                .values(**values)
            )
        if delivery.delivered:
            ctx.db.execute(
                reach_members.update()
                .where(reach_members.c.member_id == member_id)
                .values(sent=reach_members.c.sent + 1)
            )
        return str(delivery.status)


def campaign_report(stack: Runtime, campaign_id: str, *, limit: int | None = None) -> CampaignReport:
    """Reach, and every order (not failed or cancelled) that used one of the campaign's coupons (the first
    ``limit`` of them by when they were placed; the totals count them all).

    Revenue is each order's total less its refunds; the discount is the coupon's adjustments on the
    order, by funder. The totals are the sums of the per-order lines. They and the uplift are read from
    the aggregates kept as events arrive (:mod:`retailblocks.fusion.aggregates`), computed from every
    order when those are not built for this manifest.
    """
    campaign = find_campaign(stack, campaign_id)
    if limit is not None and limit < 0:
        raise InvalidValue(f"a report lists a number of orders of at least 0 (got {limit})")
    catch_up(stack)  # the kept aggregates hold what was delivered: deliver what is pending first
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        if aggregates.usable(stack, connection):
            report = _kept_report(stack, connection, campaign, limit)
            connection.rollback()
            return report
        connection.rollback()
    return _raw_report(stack, campaign, limit)


def _kept_report(stack: Runtime, connection: sa.Connection, campaign: Campaign, limit: int | None) -> CampaignReport:
    currency = stack.currency
    reach = _count(connection, campaign_coupons, campaign.id)
    held_out = _count(connection, campaign_members, campaign.id, campaign_members.c.arm == HOLDOUT)
    messages = {
        str(status): int(count)
        for status, count in connection.execute(
            sa.select(campaign_sends.c.status, sa.func.count())
            .where(campaign_sends.c.campaign == campaign.id)
            .group_by(campaign_sends.c.status)
        ).all()
    }
    count, revenue, funders = aggregates.redemption_totals(connection, campaign.id)
    listed = tuple(
        AttributedOrder(
            order_id=row["order_id"],
            member_id=row["member_id"],
            channel=row["channel"],
            placed_at=as_utc(row["placed_at"]),
            coupon=row["coupon"],
            revenue=Money(int(row["revenue"]), currency),
            discount_by_funder={f: Money(int(v), currency) for f, v in sorted((row["discount"] or {}).items())},
        )
        for row in aggregates.redemption_page(connection, campaign.id, limit)
    )
    sums = aggregates.arm_sums(connection, campaign.id)
    empty = aggregates.ArmSums(0, 0, 0, 0)
    return CampaignReport(
        campaign=campaign.id,
        promotion=campaign.promotion,
        channel=campaign.channel,
        reach=reach,
        orders=listed,
        revenue=Money(revenue, currency),
        discount_by_funder={f: Money(v, currency) for f, v in funders.items()},
        held_out=held_out,
        messages=dict(sorted(messages.items())),
        uplift=(
            uplift_from_sums(sums.get(TREATED, empty), sums.get(HOLDOUT, empty), currency)
            if campaign.holdout_bp
            else None
        ),
        redeemed=count,
    )


def _raw_report(stack: Runtime, campaign: Campaign, limit: int | None) -> CampaignReport:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        codes = dict(
            connection.execute(
                sa.select(campaign_coupons.c.code, campaign_coupons.c.member_id).where(
                    campaign_coupons.c.campaign == campaign.id
                )
            ).all()
        )
        drawn = {
            member_id: (arm, as_utc(at))
            for member_id, arm, at in connection.execute(
                sa.select(campaign_members.c.member_id, campaign_members.c.arm, campaign_members.c.assigned_at).where(
                    campaign_members.c.campaign == campaign.id
                )
            ).all()
        }
        messages = Counter(
            str(status)
            for status in connection.execute(
                sa.select(campaign_sends.c.status).where(campaign_sends.c.campaign == campaign.id)
            ).scalars()
        )
        connection.rollback()
    currency = stack.currency
    orders = list_orders(stack.engine)
    attributed: list[AttributedOrder] = []
    for order in orders:
        if order.status in NOT_SALES:
            continue
        used = [a for a in order.adjustments if a.coupon and a.coupon.strip().upper() in codes]
        if not used:
            continue
        by_funder: Counter[str] = Counter()
        for adjustment in used:
            for funder, part in adjustment.funded_by:
                by_funder[funder] += part.amount
        attributed.append(
            AttributedOrder(
                order_id=order.id,
                member_id=order.member_id,
                channel=order.channel,
                placed_at=as_utc(order.created_at),
                coupon=str(used[0].coupon).strip().upper(),
                revenue=Money(net_amount(order), currency),
                discount_by_funder={f: Money(v, currency) for f, v in sorted(by_funder.items())},
            )
        )
    funders: Counter[str] = Counter()
    for line in attributed:
        for funder, amount in line.discount_by_funder.items():
            funders[funder] += amount.amount
    attributed.sort(key=lambda o: (o.placed_at, o.order_id))
    return CampaignReport(
        campaign=campaign.id,
        promotion=campaign.promotion,
        channel=campaign.channel,
        reach=len(codes),
        orders=tuple(attributed if limit is None else attributed[:limit]),
        revenue=Money(sum(line.revenue.amount for line in attributed), currency),
        discount_by_funder={f: Money(v, currency) for f, v in sorted(funders.items())},
        held_out=sum(1 for arm, _at in drawn.values() if arm == HOLDOUT),
        messages=dict(sorted(messages.items())),
        uplift=uplift(campaign, drawn, orders, currency, stack.clock.now()) if campaign.holdout_bp else None,
        redeemed=len(attributed),
    )


def uplift_from_sums(treated: aggregates.ArmSums, held: aggregates.ArmSums, currency: str) -> Uplift:
    """The arms compared from their sums: members, buyers, revenue and the sum of squared revenue give each
    arm's share of buyers, mean and sample variance exactly as the members' figures one by one would."""
    n_t, n_h = treated.members, held.members
    p_t, p_h = _share(treated.buyers, n_t), _share(held.buyers, n_h)
    conversion_interval = None
    if n_t >= 2 and n_h >= 2:
        error = math.sqrt(p_t * (1 - p_t) / n_t + p_h * (1 - p_h) / n_h)
        conversion_interval = Interval(p_t - p_h - Z_95 * error, p_t - p_h + Z_95 * error)
    mean_t, var_t = _mean_variance_of_sums(n_t, treated.revenue, treated.revenue_squares)
    mean_h, var_h = _mean_variance_of_sums(n_h, held.revenue, held.revenue_squares)
    revenue_interval = None
    if n_t >= 2 and n_h >= 2:
        # Welch: the arms' variances differ (a coupon changes who buys and how much).
        error = math.sqrt(var_t / n_t + var_h / n_h)
        revenue_interval = Interval(mean_t - mean_h - Z_95 * error, mean_t - mean_h + Z_95 * error)
    return Uplift(
        treated=n_t,
        holdout=n_h,
        treated_buyers=treated.buyers,
        holdout_buyers=held.buyers,
        treated_revenue=Money(treated.revenue, currency),
        holdout_revenue=Money(held.revenue, currency),
        conversion_treated=p_t,
        conversion_holdout=p_h,
        conversion_uplift=p_t - p_h,
        conversion_interval=conversion_interval,
        revenue_per_member_treated=mean_t,
        revenue_per_member_holdout=mean_h,
        revenue_per_member_uplift=mean_t - mean_h,
        revenue_interval=revenue_interval,
    )


def _mean_variance_of_sums(count: int, total: int, squares: int) -> tuple[float, float]:
    """The mean and sample variance of ``count`` integers from their sum and sum of squares, the variance
    as one exact integer ratio (n·Σx² − (Σx)²) / (n·(n−1)), so no cancellation loses precision."""
    if count == 0:
        return 0.0, 0.0
    mean = total / count
    if count < 2:
        return mean, 0.0
    return mean, (count * squares - total * total) / (count * (count - 1))


def uplift(
    campaign: Campaign, drawn: dict[str, tuple[str, datetime]], orders: Sequence[Order], currency: str, now: datetime
) -> Uplift:
    """The arms compared: each member's sales orders placed from their draw until the campaign's last day."""
    end = None
    if campaign.ends is not None:
        end = datetime.combine(campaign.ends + timedelta(days=1), time(), tzinfo=as_utc(now).tzinfo)
    revenue: dict[str, int] = dict.fromkeys(drawn, 0)
    bought: set[str] = set()
    for order in orders:
        found = drawn.get(order.member_id or "")
        if order.status in NOT_SALES or found is None:
            continue
        placed = as_utc(order.created_at)
        if found[1] <= placed and (end is None or placed < end):
            bought.add(str(order.member_id))
            revenue[str(order.member_id)] += net_amount(order)
    arms = {arm: [m for m, (drawn_arm, _at) in drawn.items() if drawn_arm == arm] for arm in (TREATED, HOLDOUT)}

    def sums(members: Sequence[str]) -> aggregates.ArmSums:
        revenues = [revenue[m] for m in members]
        return aggregates.ArmSums(
            members=len(members),
            buyers=sum(m in bought for m in members),
            revenue=sum(revenues),
            revenue_squares=sum(r * r for r in revenues),
        )

    # The same arithmetic as the kept sums, so a report reads the same before and after a rebuild.
    return uplift_from_sums(sums(arms[TREATED]), sums(arms[HOLDOUT]), currency)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
