"""Campaigns: coupons issued to a segment through a channel, and the report of what they brought back.

A campaign's coupons are issued under one idempotency key per campaign, so running it again reaches only
members who joined the segment since; its report counts exactly the orders that used its coupons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.flows.capabilities import issue_coupons
from retailblocks.flows.orders import list_orders
from retailblocks.fusion.profile import NOT_SALES, net_amount
from retailblocks.fusion.segments import members_of
from retailblocks.fusion.tables import campaign_coupons, insert_new
from retailblocks.fusion.views import find_campaign, find_segment, profiles
from retailblocks.model import Money

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime


@attrs.frozen
class CampaignRun:
    campaign: str
    segment_size: int
    issued: int  # coupons issued by this run (members reached before keep theirs)
    reach: int  # members holding the campaign's coupons after this run


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

    @property
    def redemptions(self) -> int:
        return len(self.orders)

    def to_data(self, money: Callable[[Money], object] = str) -> dict[str, object]:
        """Plain data; ``money`` renders each amount (the CLI passes its one JSON shape of money)."""
        return {
            "campaign": self.campaign,
            "promotion": self.promotion,
            "channel": self.channel,
            "reach": self.reach,
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


def run_campaign(stack: Runtime, campaign_id: str) -> CampaignRun:
    """Issue the campaign's coupons to every member of its segment who has none yet, in one transaction."""
    campaign = find_campaign(stack, campaign_id)
    segment = find_segment(stack, campaign.segment)
    # The context carries the campaign's channel, so ``coupon.issued`` lands on timelines in that channel.
    with stack.context(campaign.channel, flow="campaign", flow_id=campaign.id) as ctx:
        members = members_of(segment, profiles(stack, ctx))
        codes = (
            issue_coupons(stack.hooks, ctx, campaign.promotion, members, f"campaign:{campaign.id}") if members else {}
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
        reach = ctx.db.execute(
            sa.select(sa.func.count()).select_from(campaign_coupons).where(campaign_coupons.c.campaign == campaign.id)
        ).scalar_one()
    return CampaignRun(campaign.id, len(members), issued, int(reach))


def campaign_report(stack: Runtime, campaign_id: str) -> CampaignReport:
    """Reach, and every order (not failed or cancelled) that used one of the campaign's coupons.

    Revenue is each order's total less its refunds; the discount is the coupon's adjustments on the
    order, by funder. The totals are the sums of the per-order lines.
    """
    campaign = find_campaign(stack, campaign_id)
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        codes = dict(
            connection.execute(
                sa.select(campaign_coupons.c.code, campaign_coupons.c.member_id).where(
                    campaign_coupons.c.campaign == campaign.id
                )
            ).all()
        )
        connection.rollback()
    currency = stack.currency
    attributed: list[AttributedOrder] = []
    for order in list_orders(stack.engine):
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
    return CampaignReport(
        campaign=campaign.id,
        promotion=campaign.promotion,
        channel=campaign.channel,
        reach=len(codes),
        orders=tuple(attributed),
        revenue=Money(sum(line.revenue.amount for line in attributed), currency),
        discount_by_funder={f: Money(v, currency) for f, v in sorted(funders.items())},
    )
