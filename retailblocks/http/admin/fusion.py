"""``/admin/segments``, ``/admin/campaigns``, ``/admin/settlement`` and ``/admin/ingest``: the fused views of
members across channels, and what operators do with them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from retailblocks.errors import InvalidInput
from retailblocks.fusion.views import find_campaign
from retailblocks.http.admin._common import READ_PROBLEMS, WRITE_PROBLEMS, ApiDep, IdempotencyKey, scoped
from retailblocks.http.admin.schemas import (
    CampaignOut,
    CampaignReportOut,
    CampaignRunOut,
    Campaigns,
    IngestOut,
    SegmentExplanationOut,
    SegmentOut,
    Segments,
    SegmentsRebuildOut,
    SettlementOut,
    campaign_report_out,
    campaign_run_out,
    explanation_out,
    ingest_out,
    rebuild_out,
    settlement_out,
)
from retailblocks.http.state import run_once
from retailblocks.manifest.api import ApiKey
from retailblocks.model.limits import MAX_SLUG_LENGTH, MAX_TEXT_LENGTH

segments = APIRouter(prefix="/segments", tags=["admin: segments"])
campaigns = APIRouter(prefix="/campaigns", tags=["admin: campaigns"])
settlement = APIRouter(prefix="/settlement", tags=["admin: settlement"])
ingest = APIRouter(prefix="/ingest", tags=["admin: ingest"])
routers = (segments, campaigns, settlement, ingest)


@segments.get(
    "", response_model=Segments, responses=READ_PROBLEMS, summary="The manifest's segments and their members now"
)
def list_segments(caller: Annotated[ApiKey, Depends(scoped("segments", "read"))], api: ApiDep) -> Segments:
    described = {segment.id: segment.description for segment in api.stack.manifest.segments}
    return Segments(
        data=[
            SegmentOut(id=segment, description=described[segment], count=len(members), members=members)
            for segment, members in api.stack.segment_members().items()
        ]
    )


@segments.get(
    "/{segment_id}/explain",
    response_model=SegmentExplanationOut,
    responses={**READ_PROBLEMS, 404: {"description": "no such member"}},
    summary="Why a member is in the segment or not: each condition with the member's figure and the threshold",
)
def explain_segment(
    segment_id: str,
    caller: Annotated[ApiKey, Depends(scoped("segments", "read"))],
    api: ApiDep,
    member: Annotated[
        str, Query(min_length=1, max_length=MAX_TEXT_LENGTH, description="a member id, or an identity as kind:value")
    ],
) -> SegmentExplanationOut:
    return explanation_out(api.stack.explain_segment(segment_id, member))


@segments.post(
    "/rebuild",
    response_model=SegmentsRebuildOut,
    responses=WRITE_PROBLEMS,
    summary="Recompute every membership from the raw orders and signals; report where the kept ones differed",
)
async def rebuild_segments(
    request: Request,
    caller: Annotated[ApiKey, Depends(scoped("segments", "write"))],
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await run_once(request, api, caller, idempotency_key, lambda _key: rebuild_out(api.stack.rebuild_segments()))


@campaigns.get("", response_model=Campaigns, responses=READ_PROBLEMS, summary="The manifest's campaigns")
def list_campaigns(caller: Annotated[ApiKey, Depends(scoped("campaigns", "read"))], api: ApiDep) -> Campaigns:
    return Campaigns(
        data=[
            CampaignOut(id=c.id, segment=c.segment, promotion=c.promotion, channel=c.channel, description=c.description)
            for c in api.stack.manifest.campaigns
        ]
    )


@campaigns.post(
    "/{campaign_id}/run",
    response_model=CampaignRunOut,
    responses={**WRITE_PROBLEMS, 404: {"description": "no such campaign"}},
    summary="Issue the campaign's coupons to the members of its segment not yet reached",
)
async def run_campaign(
    request: Request,
    campaign_id: str,
    caller: Annotated[ApiKey, Depends(scoped("campaigns", "write"))],
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await run_once(
        request, api, caller, idempotency_key, lambda _key: campaign_run_out(api.stack.run_campaign(campaign_id))
    )


@campaigns.get(
    "/{campaign_id}/report",
    response_model=CampaignReportOut,
    responses={**READ_PROBLEMS, 404: {"description": "no such campaign"}},
    summary="What a campaign brought: reach, orders that used its coupons, revenue, discount by funder",
)
def campaign_report(
    campaign_id: str, caller: Annotated[ApiKey, Depends(scoped("campaigns", "read"))], api: ApiDep
) -> CampaignReportOut:
    find_campaign(api.stack, campaign_id)  # an unknown campaign is 404 before any work
    return campaign_report_out(api.stack.campaign_report(campaign_id))


@settlement.get(
    "/{partner_id}",
    response_model=SettlementOut,
    responses={**READ_PROBLEMS, 404: {"description": "no such partner"}},
    summary="Who owes whom with a partner for a period: funded discounts, clawbacks and points exchanged",
)
def settle(
    partner_id: str,
    caller: Annotated[ApiKey, Depends(scoped("settlement", "read"))],
    api: ApiDep,
    start: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="last day, included")],
) -> SettlementOut:
    return settlement_out(api.stack.settlement(partner_id, start, end), api.stack.currency)


_FORMATS = {"application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "text/csv": "csv"}


@ingest.post(
    "",
    response_model=IngestOut,
    responses=WRITE_PROBLEMS,
    summary="Add external signals (JSON Lines or CSV body) to members' timelines; each bad line reported",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def add_signals(
    request: Request,
    caller: Annotated[ApiKey, Depends(scoped("ingest", "write"))],
    api: ApiDep,
    content_type: Annotated[str | None, Header(max_length=MAX_SLUG_LENGTH * 2)] = None,
    format: Annotated[Literal["jsonl", "csv"] | None, Query(description="default: from Content-Type")] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    fmt = format or _FORMATS.get((content_type or "").partition(";")[0].strip().lower())
    if fmt is None:
        raise InvalidInput("send JSON Lines as application/x-ndjson or CSV as text/csv (or say ?format=jsonl or csv)")
    data = await request.body()
    return await run_once(
        request, api, caller, idempotency_key, lambda _key: ingest_out(api.stack.ingest_signals(data, fmt))
    )
