"""Boundaryless retail over the assembled stack: one timeline per member across channels (data fused),
segments and campaigns over it (reach made precise), and settlement with partners (rights shared).

The :class:`~retailblocks.fusion.block.FusionBlock` is registered by the core in every stack and keeps
the timeline from the outbox; the rest reads the core's orders, the timeline and the blocks' hooks.
"""

from retailblocks.assembly.plan import FUSION_ID
from retailblocks.fusion.block import FusionBlock
from retailblocks.fusion.campaigns import CampaignReport, CampaignRun, campaign_report, run_campaign
from retailblocks.fusion.ingest import IngestReport, ingest
from retailblocks.fusion.profile import MemberProfile
from retailblocks.fusion.settlement import Settlement, settle
from retailblocks.fusion.timeline import TimelineEntry
from retailblocks.fusion.views import catch_up, member_view, profiles

__all__ = [
    "FUSION_ID",
    "CampaignReport",
    "CampaignRun",
    "FusionBlock",
    "IngestReport",
    "MemberProfile",
    "Settlement",
    "TimelineEntry",
    "campaign_report",
    "catch_up",
    "ingest",
    "member_view",
    "profiles",
    "run_campaign",
    "settle",
]
