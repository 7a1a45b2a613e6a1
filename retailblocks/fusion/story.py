"""The boundaryless section of the demo's summary: members fused, partners settled, campaigns reported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retailblocks.clock import as_utc
from retailblocks.flows.orders import list_orders
from retailblocks.fusion.campaigns import campaign_report, run_campaign
from retailblocks.fusion.settlement import settle
from retailblocks.fusion.views import catch_up, profiles

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime


def boundaryless_summary(stack: Runtime) -> dict[str, Any]:
    """What the fused data says after the simulated days: run every campaign, report it, and settle with
    every partner over the days the orders were placed."""
    catch_up(stack)
    days = sorted(as_utc(order.created_at).date() for order in list_orders(stack.engine))
    today = stack.clock.now().date()
    start, end = (days[0], days[-1]) if days else (today, today)
    with stack.context(flow="report", read_only=True) as ctx:
        found = profiles(stack, ctx)
    campaigns = {}
    for campaign in stack.manifest.campaigns:
        run = run_campaign(stack, campaign.id)
        report = campaign_report(stack, campaign.id)
        campaigns[campaign.id] = {
            "segment": campaign.segment,
            "reach": run.reach,
            "redemptions": report.redemptions,
            "revenue": str(report.revenue),
        }
    return {
        "members": len(found),
        "members_in_several_channels": sum(len(p.channel_mix) > 1 for p in found.values()),
        "members_with_several_identities": sum(len(p.identities) > 1 for p in found.values()),
        "segments": {s.id: sum(s.id in p.segments for p in found.values()) for s in stack.manifest.segments},
        "settlements": {
            p.id: settle(stack, p.id, start, end).to_data(stack.currency) | {"lines": None}
            for p in stack.manifest.partners
        },
        "campaigns": campaigns,
    }
