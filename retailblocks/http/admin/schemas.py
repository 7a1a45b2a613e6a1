"""The admin API's documents: what operators send and what the stack answers, as the OpenAPI document shows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from retailblocks.clock import as_utc
from retailblocks.context import Event
from retailblocks.events.dispatcher import DeadLetter, DeliveryFailure
from retailblocks.flows.api import FlowState, RecoveryReport
from retailblocks.fusion.campaigns import CampaignReport, CampaignRun, Interval, Uplift
from retailblocks.fusion.ingest import IngestReport
from retailblocks.fusion.memberships import Explanation, RebuildReport
from retailblocks.fusion.profile import MemberProfile
from retailblocks.fusion.segments import Check
from retailblocks.fusion.settlement import Settlement
from retailblocks.fusion.timeline import TimelineEntry
from retailblocks.http.schemas import IdentityIn, MoneyOut, OrderOut, money_out, order_out
from retailblocks.model import Member, Money, Order, StockLevel
from retailblocks.model.limits import MAX_ID_LENGTH, MAX_QUANTITY, MAX_TEXT_LENGTH
from retailblocks.stack import MergeRecord, StockChange, StockMovement, StoredValueIssue

#: A moment as RFC 3339 with its offset: SQLite hands back naive UTC datetimes, which would lose it.
Moment = Annotated[datetime, AfterValidator(as_utc)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- orders ------------------------------------------------------------------------------------------


class AdminOrderOut(OrderOut):
    member_id: str | None = Field(description="the member the order was placed for, if any")
    failure: str | None = Field(description="why checkout failed, for a failed order")


def admin_order_out(order: Order) -> AdminOrderOut:
    return AdminOrderOut(**order_out(order).model_dump(), member_id=order.member_id, failure=order.failure)


class OrderSummary(BaseModel):
    id: str
    channel: str
    status: str
    member_id: str | None
    total: MoneyOut
    refunded: MoneyOut
    created_at: Moment


def order_summary(order: Order) -> OrderSummary:
    return OrderSummary(
        id=order.id,
        channel=order.channel,
        status=order.status.value,
        member_id=order.member_id,
        total=money_out(order.total),
        refunded=money_out(order.refunded or Money.zero(order.currency)),
        created_at=order.created_at,
    )


class OrderPage(BaseModel):
    """One page of orders, oldest first. ``next`` (and ``next_cursor``) while more orders follow."""

    data: list[OrderSummary]
    next_cursor: str | None = Field(description="send as ?cursor= for the next page; opaque")
    next: str | None = Field(description="the next page's path and query, filters kept")


class CancelIn(_Strict):
    reason: str = Field(default="", max_length=MAX_TEXT_LENGTH)


class RefundLineIn(_Strict):
    index: int = Field(ge=0, description="the order line's index")
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class RefundIn(_Strict):
    lines: list[RefundLineIn] | None = Field(
        default=None, max_length=500, description="units per line; absent refunds what is left of the order"
    )
    reason: str = Field(default="", max_length=MAX_TEXT_LENGTH)
    restock: bool = Field(default=True, description="put the units back on hand")


def refund_lines(body: RefundIn) -> dict[int, int] | None:
    if body.lines is None:
        return None
    chosen: dict[int, int] = {}
    for line in body.lines:
        chosen[line.index] = chosen.get(line.index, 0) + line.quantity
    return chosen


# -- stock -------------------------------------------------------------------------------------------


class StockLevelOut(BaseModel):
    sku: str
    location: str
    on_hand: int
    reserved: int
    allocated: int
    available: int = Field(description="on hand less reserved and allocated, before any channel's safety stock")


def stock_level_out(level: StockLevel) -> StockLevelOut:
    return StockLevelOut(
        sku=level.sku,
        location=level.location,
        on_hand=level.on_hand,
        reserved=level.reserved,
        allocated=level.allocated,
        available=level.available,
    )


class StockLevels(BaseModel):
    data: list[StockLevelOut]


class MovementOut(BaseModel):
    id: int
    sku: str
    location: str
    delta: int
    kind: str
    reason: str
    order_id: str | None
    at: Moment


def movement_out(movement: StockMovement) -> MovementOut:
    return MovementOut(
        id=movement.id,
        sku=movement.sku,
        location=movement.location,
        delta=movement.delta,
        kind=movement.kind,
        reason=movement.reason,
        order_id=movement.order_id,
        at=movement.at,
    )


class Movements(BaseModel):
    data: list[MovementOut]


class _StockItem(_Strict):
    sku: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    location: str = Field(min_length=1, max_length=MAX_ID_LENGTH)


class ReceiptIn(_StockItem):
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    reason: str = Field(default="received", max_length=MAX_TEXT_LENGTH, description="a delivery note, a PO")


class AdjustmentIn(_StockItem):
    delta: int = Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY, description="non-zero; negative for damage or loss")
    reason: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH, description="why: 'damaged', 'found'")


class CountIn(_StockItem):
    counted: int = Field(ge=0, le=MAX_QUANTITY)
    reason: str = Field(default="", max_length=MAX_TEXT_LENGTH)


class StockChangeOut(BaseModel):
    sku: str
    location: str
    delta: int
    on_hand: int


def stock_change_out(change: StockChange) -> StockChangeOut:
    return StockChangeOut(sku=change.sku, location=change.location, delta=change.delta, on_hand=change.on_hand)


# -- flows -------------------------------------------------------------------------------------------


class FlowOut(BaseModel):
    id: str
    flow: str = Field(description="checkout, cancel or refund")
    order_id: str
    status: str = Field(description="running or stuck")
    step: str = Field(description="the step it reached")
    reason: str | None = Field(description="why it stopped, for a stuck flow")
    lease_until: Moment = Field(description="until when its owner holds it; recovery takes it after")
    updated_at: Moment


def flow_out(state: FlowState) -> FlowOut:
    return FlowOut(
        id=state.id,
        flow=state.flow,
        order_id=state.order_id,
        status=state.status,
        step=state.step,
        reason=state.error,
        lease_until=state.lease_until,
        updated_at=state.updated_at,
    )


class Flows(BaseModel):
    data: list[FlowOut]


class RecoverIn(_Strict):
    retry_stuck: bool = Field(default=False, description="run stuck flows again too, once their cause is mended")


class FlowReason(BaseModel):
    flow: str
    reason: str


class RecoveryOut(BaseModel):
    resumed: list[str]
    compensated: list[str]
    stuck: list[FlowReason]
    skipped: list[FlowReason] = Field(
        description="left for a later run: another process holds them, or a provider cannot tell yet"
    )


def recovery_out(report: RecoveryReport) -> RecoveryOut:
    return RecoveryOut(
        resumed=list(report.resumed),
        compensated=list(report.compensated),
        stuck=[FlowReason(flow=f, reason=report.reasons.get(f, "")) for f in report.stuck],
        skipped=[FlowReason(flow=f, reason=report.reasons.get(f, "")) for f in report.skipped],
    )


# -- events ------------------------------------------------------------------------------------------


class EventOut(BaseModel):
    id: int
    type: str
    source: str
    channel: str | None
    order_id: str | None
    member_id: str | None
    occurred_at: Moment
    payload: dict[str, Any]


def event_out(event: Event) -> EventOut:
    return EventOut(
        id=event.id,
        type=event.type,
        source=event.source,
        channel=event.channel,
        order_id=event.order_id,
        member_id=event.member_id,
        occurred_at=event.occurred_at,
        payload=dict(event.payload),
    )


class EventPage(BaseModel):
    """One page of the outbox, oldest first. ``next`` while more events follow."""

    data: list[EventOut]
    next_cursor: str | None
    next: str | None


class DeadLetterOut(BaseModel):
    event_id: int
    event_type: str
    subscriber: str = Field(description="the block whose listener kept failing, or webhook:<id> for a webhook")
    attempts: int
    last_error: str


def dead_letter_out(letter: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        event_id=letter.event_id,
        event_type=letter.event_type,
        subscriber=letter.subscriber,
        attempts=letter.attempts,
        last_error=letter.last_error,
    )


class DeadLetters(BaseModel):
    data: list[DeadLetterOut]


class DeliveryFailureOut(BaseModel):
    event_id: int
    event_type: str
    subscriber: str = Field(description="a block id, or webhook:<id> for a webhook")
    attempts: int
    state: Literal["retrying", "dead"]
    next_attempt_at: datetime | None = Field(description="when it is tried again; null for a dead letter")
    last_error: str


def delivery_failure_out(failure: DeliveryFailure) -> DeliveryFailureOut:
    return DeliveryFailureOut(
        event_id=failure.event_id,
        event_type=failure.event_type,
        subscriber=failure.subscriber,
        attempts=failure.attempts,
        state="dead" if failure.dead else "retrying",
        next_attempt_at=None if failure.dead else failure.next_attempt_at,
        last_error=failure.last_error,
    )


class DeliveryFailures(BaseModel):
    data: list[DeliveryFailureOut]


class RedeliverIn(_Strict):
    subscriber: str | None = Field(
        default=None, max_length=MAX_ID_LENGTH, description="only this subscriber's dead letter; absent: every one"
    )


class RedeliveryOut(BaseModel):
    rearmed: int = Field(description="dead letters given another attempt")
    delivered: int
    failed: int
    dead: int = Field(description="deliveries that failed again and are dead letters again")


# -- members -----------------------------------------------------------------------------------------


class ProfileOut(BaseModel):
    member_id: str
    identities: list[str] = Field(description="kind:value")
    tier: str
    points: int
    member_ids: list[str] = Field(description="every member id their orders were placed under (after merges)")
    orders: int
    monetary: MoneyOut = Field(description="spend, net of refunds")
    first_purchase: Moment | None
    last_purchase: Moment | None
    recency_days: int | None
    channel_mix: dict[str, int]
    skus: list[str]
    categories: list[str]
    signals: int
    segments: list[str]


def profile_out(profile: MemberProfile) -> ProfileOut:
    return ProfileOut(
        member_id=profile.member_id,
        identities=list(profile.identities),
        tier=profile.tier,
        points=profile.points,
        member_ids=list(profile.member_ids),
        orders=profile.orders,
        monetary=money_out(profile.monetary),
        first_purchase=profile.first_purchase,
        last_purchase=profile.last_purchase,
        recency_days=profile.recency_days,
        channel_mix=dict(profile.channel_mix),
        skus=sorted(profile.skus),
        categories=sorted(profile.categories),
        signals=profile.signals,
        segments=list(profile.segments),
    )


class Profiles(BaseModel):
    data: list[ProfileOut]


class TimelineEntryOut(BaseModel):
    at: Moment
    kind: str
    channel: str | None
    source: str
    order_id: str | None
    amount: MoneyOut | None
    identity: str | None
    detail: dict[str, Any]


def timeline_entry_out(entry: TimelineEntry) -> TimelineEntryOut:
    amount = Money(entry.amount, entry.currency) if entry.amount is not None and entry.currency else None
    return TimelineEntryOut(
        at=entry.at,
        kind=entry.kind,
        channel=entry.channel,
        source=entry.source,
        order_id=entry.order_id,
        amount=money_out(amount) if amount is not None else None,
        identity=entry.identity,
        detail=dict(entry.detail),
    )


class MemberViewOut(BaseModel):
    profile: ProfileOut
    timeline: list[TimelineEntryOut] = Field(description="oldest first, across every channel")


class LinkIn(_Strict):
    identities: list[IdentityIn] = Field(
        min_length=2, max_length=10, description="a known identity and the ones to link to its member"
    )


class MemberOut(BaseModel):
    id: str
    identities: list[str] = Field(description="kind:value")
    tier: str
    points: int


def member_out(member: Member) -> MemberOut:
    return MemberOut(
        id=member.id,
        identities=[f"{i.kind}:{i.value}" for i in member.identities],
        tier=member.tier,
        points=member.points,
    )


class MergeOut(BaseModel):
    id: str
    survivor: str
    absorbed: str
    at: Moment
    reason: str
    identities: list[str] = Field(description="kind:value, moved from the absorbed member to the survivor")
    points_moved: int
    spend_moved: MoneyOut
    reverted_at: Moment | None
    revert_reason: str | None


def merge_out(merge: MergeRecord) -> MergeOut:
    return MergeOut(
        id=merge.id,
        survivor=merge.survivor,
        absorbed=merge.absorbed,
        at=merge.at,
        reason=merge.reason,
        identities=list(merge.identities),
        points_moved=merge.points_moved,
        spend_moved=money_out(merge.spend_moved),
        reverted_at=merge.reverted_at,
        revert_reason=merge.revert_reason,
    )


class Merges(BaseModel):
    data: list[MergeOut]


class AdminOptOutIn(_Strict):
    medium: Literal["mini_program", "sms", "email", "push"] = Field(description="the medium to stop")
    source: str = Field(
        min_length=1, max_length=200, description="where the member said so (a reply STOP, a call, a form)"
    )


class AdminConsentIn(_Strict):
    purpose: Literal["marketing", "profiling", "sharing"] = Field(description="what the consent is for")
    granted: bool = Field(description="true to grant, false to withdraw")
    medium: Literal["any", "mini_program", "sms", "email", "push"] = "any"
    source: str = Field(min_length=1, max_length=200, description="where the member said so")


class EraseIn(_Strict):
    source: str = Field(
        min_length=1, max_length=200, description="who asked and how (a ticket, the data protection officer)"
    )


class UndoMergeIn(_Strict):
    reason: str = Field(default="", max_length=MAX_TEXT_LENGTH, description="why, for the audit trail")


# -- segments, campaigns, settlement, ingest -----------------------------------------------------------


class SegmentOut(BaseModel):
    id: str
    description: str
    count: int
    members: list[str]


class Segments(BaseModel):
    data: list[SegmentOut]


class ConditionCheckOut(BaseModel):
    condition: str = Field(description="what was checked, e.g. 'spend in the last 30 days, channel web'")
    holds: bool
    figure: int | MoneyOut | str = Field(
        description=(
            "the member's figure: a count or whole days as an integer, spend as an amount, otherwise text "
            "(a tier, identity kinds, a day, a score with its reason)"
        )
    )
    threshold: str = Field(description="what the condition asks")
    checks: list[ConditionCheckOut] = Field(description="the conditions inside (all, any, not, RFM scores)")


class SegmentExplanationOut(BaseModel):
    segment: str
    member_id: str = Field(description="the member, by the id membership knows them by now")
    member: bool = Field(description="whether the member is in the segment")
    as_of: Moment
    check: ConditionCheckOut


def check_out(check: Check) -> ConditionCheckOut:
    return ConditionCheckOut(
        condition=check.condition,
        holds=check.holds,
        figure=(
            money_out(check.quantity)
            if isinstance(check.quantity, Money)
            else check.figure
            if check.quantity is None
            else check.quantity
        ),
        threshold=check.threshold,
        checks=[check_out(inner) for inner in check.checks],
    )


def explanation_out(explanation: Explanation) -> SegmentExplanationOut:
    return SegmentExplanationOut(
        segment=explanation.segment,
        member_id=explanation.member_id,
        member=explanation.member,
        as_of=explanation.as_of,
        check=check_out(explanation.check),
    )


class MembershipChangeOut(BaseModel):
    segment: str
    member_id: str
    was: bool
    now: bool


class SegmentsRebuildOut(BaseModel):
    orders: int
    members: int
    differences: int = Field(description="facts and memberships that differed from what was kept")
    facts_changed: list[str] = Field(description="orders whose kept facts differed from the raw data")
    memberships_changed: list[MembershipChangeOut]
    rebuilt_at: Moment


def rebuild_out(report: RebuildReport) -> SegmentsRebuildOut:
    return SegmentsRebuildOut(
        orders=report.orders,
        members=report.members,
        differences=report.differences,
        facts_changed=list(report.facts_changed),
        memberships_changed=[
            MembershipChangeOut(segment=c.segment, member_id=c.member_id, was=c.was, now=c.now)
            for c in report.memberships_changed
        ],
        rebuilt_at=report.rebuilt_at,
    )


class CampaignOut(BaseModel):
    id: str
    segment: str
    promotion: str
    channel: str | None
    description: str


class Campaigns(BaseModel):
    data: list[CampaignOut]


class CampaignRunOut(BaseModel):
    campaign: str
    segment_size: int
    issued: int = Field(description="coupons issued by this run; members reached before keep theirs")
    reach: int = Field(description="members holding the campaign's coupons after this run")
    held_out: int = Field(description="members drawn into the holdout (no coupon, no message), after this run")
    messages: dict[str, int] = Field(
        description="this run's messages by outcome (sent, failed, opted_out, no_address), and members not "
        "sent one because of the frequency cap (capped) or the send window (waiting)"
    )


def campaign_run_out(run: CampaignRun) -> CampaignRunOut:
    return CampaignRunOut(
        campaign=run.campaign,
        segment_size=run.segment_size,
        issued=run.issued,
        reach=run.reach,
        held_out=run.held_out,
        messages=run.messages,
    )


class UpliftOut(BaseModel):
    """The treated arm against the holdout, by intent to treat; intervals are 95%, null with fewer than two
    members in an arm."""

    treated: int
    holdout: int
    treated_buyers: int
    holdout_buyers: int
    treated_revenue: MoneyOut
    holdout_revenue: MoneyOut
    conversion_treated: float
    conversion_holdout: float
    conversion_uplift: float
    conversion_interval: tuple[float, float] | None
    revenue_per_member_uplift: float = Field(description="minor units per member")
    revenue_interval: tuple[float, float] | None = Field(description="minor units per member")


def uplift_out(uplift: Uplift) -> UpliftOut:
    def pair(found: Interval | None) -> tuple[float, float] | None:
        return None if found is None else (found.low, found.high)

    return UpliftOut(
        treated=uplift.treated,
        holdout=uplift.holdout,
        treated_buyers=uplift.treated_buyers,
        holdout_buyers=uplift.holdout_buyers,
        treated_revenue=money_out(uplift.treated_revenue),
        holdout_revenue=money_out(uplift.holdout_revenue),
        conversion_treated=uplift.conversion_treated,
        conversion_holdout=uplift.conversion_holdout,
        conversion_uplift=uplift.conversion_uplift,
        conversion_interval=pair(uplift.conversion_interval),
        revenue_per_member_uplift=uplift.revenue_per_member_uplift,
        revenue_interval=pair(uplift.revenue_interval),
    )


class AttributedOrderOut(BaseModel):
    order_id: str
    member_id: str | None
    channel: str
    placed_at: Moment
    coupon: str
    revenue: MoneyOut
    discount_by_funder: dict[str, MoneyOut]


class CampaignReportOut(BaseModel):
    campaign: str
    promotion: str
    channel: str
    reach: int
    redemptions: int
    revenue: MoneyOut
    discount_by_funder: dict[str, MoneyOut]
    orders: list[AttributedOrderOut]
    held_out: int
    messages: dict[str, int] = Field(description="messages by outcome, each member's latest attempt")
    uplift: UpliftOut | None = Field(description="null when the campaign holds no one out")


def campaign_report_out(report: CampaignReport) -> CampaignReportOut:
    return CampaignReportOut(
        campaign=report.campaign,
        promotion=report.promotion,
        channel=report.channel,
        reach=report.reach,
        redemptions=report.redemptions,
        revenue=money_out(report.revenue),
        discount_by_funder={funder: money_out(a) for funder, a in report.discount_by_funder.items()},
        orders=[
            AttributedOrderOut(
                order_id=o.order_id,
                member_id=o.member_id,
                channel=o.channel,
                placed_at=o.placed_at,
                coupon=o.coupon,
                revenue=money_out(o.revenue),
                discount_by_funder={funder: money_out(a) for funder, a in o.discount_by_funder.items()},
            )
            for o in report.orders
        ],
        held_out=report.held_out,
        messages=report.messages,
        uplift=None if report.uplift is None else uplift_out(report.uplift),
    )


class SettlementLineOut(BaseModel):
    kind: str = Field(description="discount, clawback, points_in, points_out or marketplace_sale")
    reference: str = Field(
        description="the order id (discount, marketplace_sale), ORDER/REFUND (clawback), or the points journal id"
    )
    member_id: str | None
    at: Moment
    amount: MoneyOut = Field(description="positive: the partner owes the merchant")
    detail: str


class SettlementOut(BaseModel):
    partner: str
    start: date
    end: date
    partner_owes_merchant: MoneyOut
    merchant_owes_partner: MoneyOut
    net: MoneyOut = Field(description="positive: the partner pays the merchant")
    lines: list[SettlementLineOut]


def settlement_out(settlement: Settlement, currency: str) -> SettlementOut:
    amounts = [line.amount.amount for line in settlement.lines]
    return SettlementOut(
        partner=settlement.partner.id,
        start=settlement.start,
        end=settlement.end,
        partner_owes_merchant=money_out(Money(sum(a for a in amounts if a > 0), currency)),
        merchant_owes_partner=money_out(Money(-sum(a for a in amounts if a < 0), currency)),
        net=money_out(Money(sum(amounts), currency)),
        lines=[
            SettlementLineOut(
                kind=line.kind,
                reference=line.reference,
                member_id=line.member_id,
                at=line.at,
                amount=money_out(line.amount),
                detail=line.detail,
            )
            for line in settlement.lines
        ],
    )


class BadLineOut(BaseModel):
    line: int = Field(description="1-based line number in the upload")
    reason: str


class IngestOut(BaseModel):
    read: int
    added: int
    duplicates: int = Field(description="signals already there: uploading the same data again adds nothing")
    resolved: int = Field(description="signals matched to members")
    bad: list[BadLineOut] = Field(description="every bad line with its reason; the good lines were added")


def ingest_out(report: IngestReport) -> IngestOut:
    return IngestOut(
        read=report.read,
        added=report.added,
        duplicates=report.duplicates,
        resolved=report.resolved,
        bad=[BadLineOut(line=b.line, reason=b.reason) for b in report.bad],
    )


# -- wallets and gift cards ------------------------------------------------------------------------------


class GiftCardIn(_Strict):
    amount: int = Field(ge=1, le=10**12, description="minor units of the stack's currency")


class TopUpIn(_Strict):
    amount: int = Field(ge=1, le=10**12, description="minor units of the stack's currency")


class StoredValueOut(BaseModel):
    method: str = Field(description="gift_card or wallet")
    reference: str = Field(description="the gift card's number (hand it to its holder) or the wallet's id")
    member_id: str | None
    amount: MoneyOut = Field(description="what this request put on it")
    balance: MoneyOut = Field(description="what it holds now")


def stored_value_out(issued: StoredValueIssue) -> StoredValueOut:
    return StoredValueOut(
        method=issued.method,
        reference=issued.reference,
        member_id=issued.member_id,
        amount=money_out(issued.amount),
        balance=money_out(issued.balance),
    )


class WalletBalanceOut(BaseModel):
    member_id: str
    balance: MoneyOut


# -- the assembled stack -------------------------------------------------------------------------------


class CoreOut(BaseModel):
    distribution: str
    version: str
    api: int | str


class MerchantOut(BaseModel):
    id: str
    name: str
    currency: str


class ChannelOut(BaseModel):
    id: str
    type: str
    location: str | None


class BlockOut(BaseModel):
    id: str
    use: str
    distribution: str
    version: str
    core_api: int | str
    capabilities: list[str]
    payment_methods: list[str]
    config: dict[str, Any] = Field(description="the block's configuration, secrets masked")
    config_fingerprint: str


class HookRouteOut(BaseModel):
    dispatch: str
    blocks: list[str]


class RoutingOut(BaseModel):
    hooks: dict[str, HookRouteOut]
    payment_methods: dict[str, str]


class LockOut(BaseModel):
    locked: bool = Field(description="whether the manifest was assembled: its lock exists")
    changes: list[str] = Field(description="what changed in the manifest since its lock was written")


class AssembledOut(BaseModel):
    """What ``blocks assemble --json`` shows, and the manifest against its lock now."""

    lock_format: int
    core: CoreOut
    merchant: MerchantOut
    database: str = Field(description="as the manifest wrote it, password masked")
    channels: list[ChannelOut]
    blocks: list[BlockOut]
    routing: RoutingOut
    lock: LockOut
