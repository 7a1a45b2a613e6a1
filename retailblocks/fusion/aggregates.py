"""Aggregates kept as events arrive, so member profiles, campaign reports and settlements read in time that
does not grow with the order history; and their rebuild, which checks them against the raw data.

**What is kept** (tables in :mod:`retailblocks.fusion.tables`):

- ``fusion_member_totals``: per known member, what their order facts sum to (sales, spend, first and last
  purchase, channel mix, SKUs, the ids their orders were placed under). ``blocks members`` pages over it.
- ``fusion_settlement_items``: every settlement line each order makes with each partner, dated as the
  settlement dates it; a settlement reads one period's lines by index.
- ``fusion_campaign_orders`` and ``fusion_campaign_totals``: the orders that used a campaign's coupons, and
  their count, revenue and discount by funder.
- ``fusion_campaign_results`` and ``fusion_campaign_arms``: each drawn member's sales from their draw to the
  campaign's end, and per arm the members, buyers, revenue and sum of squared revenue the uplift's means
  and variances come from.

**How.** The fusion block's listener calls :func:`on_event` in the transaction that delivers the event,
after the order facts (:mod:`retailblocks.fusion.memberships`) are up to date, holding the same lock. Each
row is recomputed whole from its sources (the order, the member's facts), so an event delivered twice or
out of order writes the same row; sums are moved by the difference between a row before and after, so a
replay moves them by nothing.

**When they are not used.** A database upgraded with history is marked to need a rebuild, and the
aggregates remember the manifest they were built under (partners' refund policies, the channels
marketplaces collect on, campaigns' ends): until rebuilt, or under another manifest, reads compute from
the raw orders as before (right, and slower). :func:`rebuild` recomputes everything from the raw data,
reports each row that differed, and (unless only checking) writes the result.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from retailblocks.clock import as_utc
from retailblocks.context import Event, FlowContext
from retailblocks.errors import UnknownOrder
from retailblocks.flows.orders import load_order, order_from_rows
from retailblocks.fusion.memberships import lock_store, raw_facts, stored_fact
from retailblocks.fusion.profile import NOT_SALES, MemberResolver, net_amount
from retailblocks.fusion.segments import OrderFact
from retailblocks.fusion.settlement import (
    SettlementLine,
    collected_by,
    order_settlement_lines,
    refunds_of,
)
from retailblocks.fusion.tables import (
    aggregate_store,
    campaign_arms,
    campaign_coupons,
    campaign_members,
    campaign_orders,
    campaign_results,
    campaign_totals,
    member_totals,
    order_facts,
    settlement_items,
    timeline,
)
from retailblocks.fusion.timeline import belongs_on_timeline
from retailblocks.manifest import Partner
from retailblocks.model import Money, Order
from retailblocks.storage.tables import order_lines, orders

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime
    from retailblocks.manifest.model import Campaign

_STORE = "aggregates"
_ORDER_EVENTS = frozenset({"order.placed", "order.cancelled", "order.refunded", "points.earned"})
_MERGES = frozenset({"member.merged", "member.unmerged"})
#: The key of a campaign's redemption total in ``fusion_campaign_totals``; funders' keys carry this prefix.
REDEMPTIONS = ""
FUNDER = "funder:"


def _dialect(connection: sa.Connection) -> Any:
    return postgresql if connection.dialect.name == "postgresql" else sqlite


def _upsert(connection: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> None:
    keys = [column.name for column in table.primary_key.columns]
    statement = _dialect(connection).insert(table).values(**values)
    update = {k: statement.excluded[k] for k in values if k not in keys}
    connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=update))


# -- the store's row ---------------------------------------------------------------------------------


def manifest_digest(stack: Runtime) -> str:
    """What of the manifest the kept rows depend on: partners' refund policies and the channels each
    collects for, and each campaign's promotion and end."""
    partners = [[p.id, p.on_refund.value, sorted(collected_by(stack, p))] for p in stack.manifest.partners]
    campaigns = [[c.id, str(c.ends)] for c in stack.manifest.campaigns]
    text = json.dumps([sorted(partners), sorted(campaigns)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _store_row(connection: sa.Connection) -> Any:
    query = sa.select(aggregate_store).where(aggregate_store.c.name == _STORE)
    return connection.execute(query).mappings().first()


def usable(stack: Runtime, connection: sa.Connection) -> bool:
    """Whether the kept aggregates hold every order under the manifest the stack runs now."""
    row = _store_row(connection)
    return row is not None and not row["needs_rebuild"] and row["digest"] == manifest_digest(stack)


# -- computing rows ----------------------------------------------------------------------------------


def totals_row(member_id: str, facts: Iterable[OrderFact]) -> dict[str, Any]:
    """A member's totals from their order facts (any order, of any status)."""
    every = list(facts)
    sales = sorted((f for f in every if f.sale), key=lambda f: (f.placed_at, f.order_id))
    return {
        "member_id": member_id,
        "aliases": sorted({member_id, *(f.placed_by for f in every)}),
        "orders": len(sales),
        "spend": sum(f.spend for f in sales),
        "first_purchase": sales[0].placed_at if sales else None,
        "last_purchase": sales[-1].placed_at if sales else None,
        "channel_mix": dict(sorted(Counter(f.channel for f in sales).items())),
        "skus": sorted({line.sku for f in sales for line in f.lines}),
    }


def item_row(partner: str, order_id: str, line: SettlementLine) -> dict[str, Any]:
    return {
        "partner": partner,
        "kind": line.kind,
        "reference": line.reference,
        "order_id": order_id,
        "member_id": line.member_id,
        "at": line.at,
        "amount": line.amount.amount,
        "currency": line.amount.currency,
        "detail": line.detail,
    }


def settlement_rows(stack: Runtime, order: Order, refunds: Sequence[Any]) -> list[dict[str, Any]]:
    """Every settlement line ``order`` makes with each of the manifest's partners, as rows."""
    rows = []
    for partner in stack.manifest.partners:
        for line in order_settlement_lines(order, partner, collected_by(stack, partner), refunds):
            rows.append(item_row(partner.id, order.id, line))
    return rows


def redemption_rows(order: Order, campaign_of_code: Mapping[str, str]) -> list[dict[str, Any]]:
    """The order's row for each campaign whose coupon it used (none unless it became a sale)."""
    if order.status in NOT_SALES:
        return []
    by_campaign: dict[str, list[Any]] = {}
    for adjustment in order.adjustments:
        code = adjustment.coupon.strip().upper() if adjustment.coupon else ""
        if code in campaign_of_code:
            by_campaign.setdefault(campaign_of_code[code], []).append(adjustment)
    rows = []
    for campaign, used in sorted(by_campaign.items()):
        by_funder: Counter[str] = Counter()
        for adjustment in used:
            for funder, part in adjustment.funded_by:
                by_funder[funder] += part.amount
        rows.append(
            {
                "campaign": campaign,
                "order_id": order.id,
                "member_id": order.member_id,
                "channel": order.channel,
                "placed_at": as_utc(order.created_at),
                "coupon": str(used[0].coupon).strip().upper(),
                "revenue": net_amount(order),
                "discount": dict(sorted(by_funder.items())),
            }
        )
    return rows


def campaign_end(campaign: Campaign, now: datetime) -> datetime | None:
    """The end of the campaign's last day (None: it has no end), as the uplift counts sales up to."""
    if campaign.ends is None:
        return None
    return datetime.combine(campaign.ends + timedelta(days=1), time(), tzinfo=as_utc(now).tzinfo)


def result_of(facts: Iterable[OrderFact], assigned_at: datetime, end: datetime | None) -> tuple[int, bool]:
    """A drawn member's revenue and whether they bought, from the facts of orders placed under their id."""
    counted = [f for f in facts if f.sale and as_utc(assigned_at) <= f.placed_at and (end is None or f.placed_at < end)]
    return sum(f.spend for f in counted), bool(counted)


# -- moving sums by a row's difference ---------------------------------------------------------------


def _move_totals(
    connection: sa.Connection, before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> None:
    """Move each campaign's redemption totals by the difference between an order's rows before and after."""
    moves: Counter[tuple[str, str, str]] = Counter()
    for sign, rows in ((-1, before), (1, after)):
        for row in rows:
            campaign = row["campaign"]
            moves[campaign, REDEMPTIONS, "count"] += sign
            moves[campaign, REDEMPTIONS, "amount"] += sign * int(row["revenue"])
            for funder, amount in (row["discount"] or {}).items():
                moves[campaign, FUNDER + funder, "count"] += sign
                moves[campaign, FUNDER + funder, "amount"] += sign * int(amount)
    keys = sorted({(campaign, key) for campaign, key, _ in moves})
    for campaign, key in keys:
        count, amount = moves[campaign, key, "count"], moves[campaign, key, "amount"]
        if not count and not amount:
            continue
        statement = (
            _dialect(connection).insert(campaign_totals).values(campaign=campaign, key=key, count=count, amount=amount)
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["campaign", "key"],
                set_={"count": campaign_totals.c.count + count, "amount": campaign_totals.c.amount + amount},
            )
        )


def _move_arm(
    connection: sa.Connection, campaign: str, arm: str, members: int, was: tuple[int, bool], now: tuple[int, bool]
) -> None:
    """Move an arm's sums from a member's result ``was`` to ``now`` (``members``: 1 for a new draw)."""
    buyers = int(now[1]) - int(was[1])
    revenue = now[0] - was[0]
    squares = now[0] ** 2 - was[0] ** 2
    if not (members or buyers or revenue or squares):
        return
    key = sa.and_(campaign_arms.c.campaign == campaign, campaign_arms.c.arm == arm)
    # Locked: the square sum is moved in Python (it may pass what a BIGINT holds).
    row = connection.execute(sa.select(campaign_arms).where(key).with_for_update()).mappings().first()
    if row is None:
        connection.execute(
            campaign_arms.insert().values(
                campaign=campaign,
                arm=arm,
                members=members,
                buyers=buyers,
                revenue=revenue,
                revenue_squares=str(squares),
            )
        )
        return
    connection.execute(
        campaign_arms.update()
        .where(key)
        .values(
            members=int(row["members"]) + members,
            buyers=int(row["buyers"]) + buyers,
            revenue=int(row["revenue"]) + revenue,
            revenue_squares=str(int(row["revenue_squares"]) + squares),
        )
    )


# -- as events arrive --------------------------------------------------------------------------------


def on_event(stack: Runtime, ctx: FlowContext, event: Event) -> None:
    """Bring the aggregates up to date with ``event`` (after the order facts are)."""
    order_event = event.type in _ORDER_EVENTS and event.order_id is not None
    member_event = event.member_id is not None and (belongs_on_timeline(event) or event.type.startswith("member."))
    if not order_event and not member_event:
        return
    lock_store(ctx.db)
    _adopt_manifest(stack, ctx.db)
    resolver = MemberResolver(stack, ctx)
    known: set[str] = set()
    placed_by: set[str] = set()
    if order_event and event.order_id is not None:
        order = _refresh_order(stack, ctx, event.order_id)
        if order is not None and order.member_id is not None:
            known.add(resolver.canonical(order.member_id))
            placed_by.add(order.member_id)
    if event.member_id is not None and (belongs_on_timeline(event) or event.type in _ORDER_EVENTS):
        known.add(resolver.canonical(event.member_id))
    maybe: set[str] = set()
    if event.type in _MERGES and event.member_id is not None:
        payload = event.payload
        involved = {str(m) for m in (payload.get("survivor"), payload.get("absorbed"), payload.get("restored")) if m}
        involved.add(event.member_id)
        canonical = {resolver.canonical(m) for m in involved}
        absorbed = sorted(involved - canonical)
        if absorbed:
            ctx.db.execute(member_totals.delete().where(member_totals.c.member_id.in_(absorbed)))
        maybe |= canonical - known
    for member_id in sorted(known):
        refresh_member(ctx, member_id, known=True)
    for member_id in sorted(maybe):
        refresh_member(ctx, member_id, known=False)
    refresh_results(stack, ctx, placed_by)


def _adopt_manifest(stack: Runtime, connection: sa.Connection) -> None:
    """A store made with no history takes the manifest of the first event it counts."""
    row = _store_row(connection)
    if row is None:
        connection.execute(
            aggregate_store.insert().values(name=_STORE, needs_rebuild=False, digest=manifest_digest(stack))
        )
    elif row["digest"] == "" and not row["needs_rebuild"]:
        connection.execute(
            aggregate_store.update().where(aggregate_store.c.name == _STORE).values(digest=manifest_digest(stack))
        )


def after_signals(ctx: FlowContext, member_ids: Collection[str]) -> None:
    """Members newly ingested signals name are known members (in the ingest's transaction)."""
    if member_ids:
        lock_store(ctx.db)
        for member_id in sorted(member_ids):
            refresh_member(ctx, member_id, known=True)


def _facts_of(connection: sa.Connection, column: sa.Column[Any], member_id: str) -> list[OrderFact]:
    rows = connection.execute(sa.select(order_facts).where(column == member_id)).mappings()
    return [stored_fact(row) for row in rows]


def refresh_member(ctx: FlowContext, member_id: str, *, known: bool) -> None:
    """Recompute the member's totals from their facts; a member not ``known`` otherwise is kept only when
    something names them (an order, a row already kept, their timeline)."""
    facts = _facts_of(ctx.db, order_facts.c.member_id, member_id)
    if not known and not facts:
        kept = ctx.db.execute(sa.select(member_totals.c.member_id).where(member_totals.c.member_id == member_id))
        on_timeline = ctx.db.execute(sa.select(timeline.c.id).where(timeline.c.member_id == member_id).limit(1))
        if kept.first() is None and on_timeline.first() is None:
            return
    _upsert(ctx.db, member_totals, totals_row(member_id, facts))


def _refresh_order(stack: Runtime, ctx: FlowContext, order_id: str) -> Order | None:
    """Rewrite the order's settlement lines and campaign redemptions; the order (None if not the core's)."""
    try:
        order = load_order(ctx.db, order_id)
    except UnknownOrder:
        return None
    ctx.db.execute(settlement_items.delete().where(settlement_items.c.order_id == order_id))
    if stack.manifest.partners:
        refunds = refunds_of(ctx.db, order_id).get(order_id, [])
        for row in settlement_rows(stack, order, refunds):
            ctx.db.execute(settlement_items.insert().values(**row))
    codes = sorted({a.coupon.strip().upper() for a in order.adjustments if a.coupon})
    campaign_of_code = (
        dict(
            ctx.db.execute(
                sa.select(campaign_coupons.c.code, campaign_coupons.c.campaign).where(
                    campaign_coupons.c.code.in_(codes)
                )
            ).all()
        )
        if codes
        else {}
    )
    before = [
        dict(r)
        for r in ctx.db.execute(sa.select(campaign_orders).where(campaign_orders.c.order_id == order_id)).mappings()
    ]
    after = redemption_rows(order, campaign_of_code)
    if before != after:
        ctx.db.execute(campaign_orders.delete().where(campaign_orders.c.order_id == order_id))
        for row in after:
            ctx.db.execute(campaign_orders.insert().values(**row))
        _move_totals(ctx.db, before, after)
    return order


def refresh_results(stack: Runtime, ctx: FlowContext, placed_by: Collection[str]) -> None:
    """Recompute each campaign result of the members (ids orders were placed under) and move the arms."""
    if not placed_by:
        return
    campaigns = {c.id: c for c in stack.manifest.campaigns}
    now = ctx.clock.now()
    rows = ctx.db.execute(
        sa.select(campaign_results, campaign_members.c.assigned_at)
        .join(
            campaign_members,
            sa.and_(
                campaign_members.c.campaign == campaign_results.c.campaign,
                campaign_members.c.member_id == campaign_results.c.member_id,
            ),
        )
        .where(campaign_results.c.member_id.in_(sorted(placed_by)))
    ).mappings()
    facts: dict[str, list[OrderFact]] = {}
    for row in list(rows):
        campaign = campaigns.get(row["campaign"])
        if campaign is None:
            continue  # dropped from the manifest: its report is not asked for
        member_id = row["member_id"]
        if member_id not in facts:
            facts[member_id] = _facts_of(ctx.db, order_facts.c.placed_by, member_id)
        now_result = result_of(facts[member_id], row["assigned_at"], campaign_end(campaign, now))
        was = (int(row["revenue"]), bool(row["bought"]))
        if now_result != was:
            ctx.db.execute(
                campaign_results.update()
                .where(campaign_results.c.campaign == campaign.id, campaign_results.c.member_id == member_id)
                .values(revenue=now_result[0], bought=now_result[1])
            )
            _move_arm(ctx.db, campaign.id, row["arm"], 0, was, now_result)


def drawn(ctx: FlowContext, campaign: Campaign, member_id: str, arm: str, assigned_at: datetime) -> None:
    """A member newly drawn into the campaign's ``arm`` (in the draw's transaction): their result, counted."""
    lock_store(ctx.db)
    facts = _facts_of(ctx.db, order_facts.c.placed_by, member_id)
    revenue, bought = result_of(facts, assigned_at, campaign_end(campaign, ctx.clock.now()))
    row = {"campaign": campaign.id, "member_id": member_id, "arm": arm, "revenue": revenue, "bought": bought}
    statement = _dialect(ctx.db).insert(campaign_results).values(**row).on_conflict_do_nothing()
    if ctx.db.execute(statement.returning(campaign_results.c.member_id)).first() is not None:
        _move_arm(ctx.db, campaign.id, arm, 1, (0, False), (revenue, bought))


# -- reading -----------------------------------------------------------------------------------------


def kept_settlement_lines(
    stack: Runtime, partner: Partner, since: datetime, until: datetime
) -> list[SettlementLine] | None:
    """The orders' lines with ``partner`` dated in ``[since, until)``; None when the aggregates are not usable."""
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        if not usable(stack, connection):
            connection.rollback()
            return None
        rows = connection.execute(
            sa.select(settlement_items).where(
                settlement_items.c.partner == partner.id,
                settlement_items.c.at >= since,
                settlement_items.c.at < until,
            )
        ).mappings()
        lines = [
            SettlementLine(
                kind=row["kind"],
                reference=row["reference"],
                member_id=row["member_id"],
                at=as_utc(row["at"]),
                amount=Money(int(row["amount"]), row["currency"]),
                detail=row["detail"],
            )
            for row in rows
        ]
        connection.rollback()
    return lines


def member_page(connection: sa.Connection, *, after: str | None, limit: int | None) -> tuple[list[Any], int]:
    """Kept member totals ordered by member id, after ``after``, at most ``limit``; and how many in all."""
    query = sa.select(member_totals).order_by(member_totals.c.member_id)
    if after is not None:
        query = query.where(member_totals.c.member_id > after)
    if limit is not None:
        query = query.limit(limit)
    rows = list(connection.execute(query).mappings())
    count = int(connection.execute(sa.select(sa.func.count()).select_from(member_totals)).scalar_one())
    return rows, count


def member_row(connection: sa.Connection, member_id: str) -> Any:
    return connection.execute(sa.select(member_totals).where(member_totals.c.member_id == member_id)).mappings().first()


@attrs.frozen
class ArmSums:
    members: int
    buyers: int
    revenue: int
    revenue_squares: int


def arm_sums(connection: sa.Connection, campaign: str) -> dict[str, ArmSums]:
    return {
        row["arm"]: ArmSums(int(row["members"]), int(row["buyers"]), int(row["revenue"]), int(row["revenue_squares"]))
        for row in connection.execute(sa.select(campaign_arms).where(campaign_arms.c.campaign == campaign)).mappings()
    }


def redemption_totals(connection: sa.Connection, campaign: str) -> tuple[int, int, dict[str, int]]:
    """The campaign's redemptions, their revenue, and the discount by funder."""
    count = revenue = 0
    funders: dict[str, int] = {}
    for key, n, amount in connection.execute(
        sa.select(campaign_totals.c.key, campaign_totals.c.count, campaign_totals.c.amount).where(
            campaign_totals.c.campaign == campaign
        )
    ):
        if key == REDEMPTIONS:
            count, revenue = int(n), int(amount)
        elif int(n):
            funders[key.removeprefix(FUNDER)] = int(amount)
    return count, revenue, dict(sorted(funders.items()))


def redemption_page(connection: sa.Connection, campaign: str, limit: int | None) -> list[Any]:
    """The campaign's redemptions, oldest first, at most ``limit``."""
    query = (
        sa.select(campaign_orders)
        .where(campaign_orders.c.campaign == campaign)
        .order_by(campaign_orders.c.placed_at, campaign_orders.c.order_id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(connection.execute(query).mappings())


# -- rebuilding --------------------------------------------------------------------------------------


@attrs.frozen
class AggregateDifference:
    table: str
    key: str
    #: what was kept and what the raw data gives (None: no row)
    kept: Mapping[str, Any] | None
    rebuilt: Mapping[str, Any] | None


@attrs.frozen
class AggregateReport:
    """What a rebuild (or a check) found: how many rows each aggregate has, and each that differed."""

    rows: Mapping[str, int]
    differences: tuple[AggregateDifference, ...]
    written: bool
    #: the aggregates were marked to need a rebuild (or built under another manifest): differences expected
    was_stale: bool

    def to_data(self) -> dict[str, object]:
        return {
            "rows": dict(self.rows),
            "written": self.written,
            "was_stale": self.was_stale,
            "differences": [
                {"table": d.table, "key": d.key, "kept": _plain(d.kept), "rebuilt": _plain(d.rebuilt)}
                for d in self.differences
            ],
        }


def _plain(row: Mapping[str, Any] | None) -> dict[str, object] | None:
    if row is None:
        return None
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _all_orders(connection: sa.Connection) -> Iterator[Order]:
    """Every order of the core's, read in batches (guests' too: settlement counts marketplace sales)."""
    last = ""
    while True:
        batch = list(
            connection.execute(sa.select(orders).where(orders.c.id > last).order_by(orders.c.id).limit(2000)).mappings()
        )
        if not batch:
            return
        ids = [row["id"] for row in batch]
        lines: dict[str, list[Any]] = {order_id: [] for order_id in ids}
        for line in connection.execute(
            sa.select(order_lines)
            .where(order_lines.c.order_id.in_(ids))
            .order_by(order_lines.c.order_id, order_lines.c.line_index)
        ).mappings():
            lines[line["order_id"]].append(line)
        for row in batch:
            yield order_from_rows(row, lines[row["id"]])
        last = ids[-1]


def _normal(table: sa.Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as compared: moments in UTC, JSON as data, the square sum as a number."""
    out: dict[str, Any] = {}
    for column in table.columns:
        value = row.get(column.name)
        if isinstance(value, datetime):
            value = as_utc(value)
        elif column.name == "revenue_squares" and value is not None:
            value = int(value)
        elif column.name == "bought" and value is not None:
            value = bool(value)
        out[column.name] = value
    return out


def raw_aggregates(stack: Runtime, ctx: FlowContext) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every aggregate row computed from the raw orders, refunds, earn events, timeline and draws."""
    facts_by_member = raw_facts(stack, ctx)
    resolver = MemberResolver(stack, ctx)
    members = set(facts_by_member)
    on_timeline = ctx.db.execute(sa.select(timeline.c.member_id).where(timeline.c.member_id.is_not(None)).distinct())
    members |= {resolver.canonical(m) for m in on_timeline.scalars()}
    totals = {(m,): totals_row(m, facts_by_member.get(m, [])) for m in sorted(members)}

    campaign_of_code = dict(ctx.db.execute(sa.select(campaign_coupons.c.code, campaign_coupons.c.campaign)).all())
    refunds = refunds_of(ctx.db)
    items: dict[tuple[Any, ...], dict[str, Any]] = {}
    redeemed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for order in _all_orders(ctx.db):
        for row in settlement_rows(stack, order, refunds.get(order.id, [])) if stack.manifest.partners else ():
            items[row["partner"], row["kind"], row["reference"]] = row
        for row in redemption_rows(order, campaign_of_code):
            redeemed[row["campaign"], row["order_id"]] = row
    totals_by_campaign: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in redeemed.values():
        for key, amount in [(REDEMPTIONS, row["revenue"]), *((FUNDER + f, a) for f, a in row["discount"].items())]:
            found = totals_by_campaign.setdefault(
                (row["campaign"], key), {"campaign": row["campaign"], "key": key, "count": 0, "amount": 0}
            )
            found["count"] += 1
            found["amount"] += int(amount)

    campaigns = {c.id: c for c in stack.manifest.campaigns}
    by_placer: dict[str, list[OrderFact]] = {}
    for facts in facts_by_member.values():
        for fact in facts:
            by_placer.setdefault(fact.placed_by, []).append(fact)
    now = ctx.clock.now()
    results: dict[tuple[Any, ...], dict[str, Any]] = {}
    arms: dict[tuple[Any, ...], dict[str, Any]] = {}
    for campaign_id, member_id, arm, assigned_at in ctx.db.execute(
        sa.select(
            campaign_members.c.campaign,
            campaign_members.c.member_id,
            campaign_members.c.arm,
            campaign_members.c.assigned_at,
        )
    ):
        campaign = campaigns.get(campaign_id)
        if campaign is None:
            continue
        revenue, bought = result_of(by_placer.get(member_id, []), assigned_at, campaign_end(campaign, now))
        results[campaign_id, member_id] = {
            "campaign": campaign_id,
            "member_id": member_id,
            "arm": arm,
            "revenue": revenue,
            "bought": bought,
        }
        sums = arms.setdefault(
            (campaign_id, arm),
            {"campaign": campaign_id, "arm": arm, "members": 0, "buyers": 0, "revenue": 0, "revenue_squares": 0},
        )
        sums["members"] += 1
        sums["buyers"] += int(bought)
        sums["revenue"] += revenue
        sums["revenue_squares"] += revenue**2
    return {
        member_totals.name: totals,
        settlement_items.name: items,
        campaign_orders.name: redeemed,
        campaign_totals.name: totals_by_campaign,
        campaign_results.name: results,
        campaign_arms.name: arms,
    }


_KEPT = (member_totals, settlement_items, campaign_orders, campaign_totals, campaign_results, campaign_arms)


def rebuild(stack: Runtime, *, write: bool = True) -> AggregateReport:
    """Recompute every aggregate from the raw data and report each row that differed from what was kept;
    with ``write``, replace the kept rows with the recomputed ones (one transaction) and mark the
    aggregates built under the stack's manifest. A check (``write=False``) changes nothing."""
    with stack.context(flow="aggregates-rebuild", read_only=not write) as ctx:
        if write:
            lock_store(ctx.db)
        row = _store_row(ctx.db)
        was_stale = row is None or bool(row["needs_rebuild"]) or row["digest"] not in ("", manifest_digest(stack))
        raw = raw_aggregates(stack, ctx)
        differences: list[AggregateDifference] = []
        for table in _KEPT:
            keys = [column.name for column in table.primary_key.columns]
            kept = {
                tuple(r[k] for k in keys): _normal(table, dict(r)) for r in ctx.db.execute(sa.select(table)).mappings()
            }
            rebuilt = {key: _normal(table, r) for key, r in raw[table.name].items()}
            if table is campaign_totals:
                # A total moved back to nothing is the same as no row.
                kept = {k: v for k, v in kept.items() if v["count"] or v["amount"]}
            for key in sorted(set(kept) | set(rebuilt), key=lambda k: tuple(str(x) for x in k)):
                if kept.get(key) != rebuilt.get(key):
                    differences.append(
                        AggregateDifference(table.name, "/".join(str(x) for x in key), kept.get(key), rebuilt.get(key))
                    )
            if write:
                ctx.db.execute(table.delete())
                values = [dict(r) for r in raw[table.name].values()]
                if table is campaign_arms:
                    values = [v | {"revenue_squares": str(v["revenue_squares"])} for v in values]
                for start in range(0, len(values), 1000):
                    ctx.db.execute(table.insert(), values[start : start + 1000])
        if write:
            ctx.db.execute(aggregate_store.delete().where(aggregate_store.c.name == _STORE))
            ctx.db.execute(
                aggregate_store.insert().values(
                    name=_STORE, needs_rebuild=False, digest=manifest_digest(stack), rebuilt_at=ctx.clock.now()
                )
            )
    return AggregateReport(
        rows={table.name: len(raw[table.name]) for table in _KEPT},
        differences=tuple(differences),
        written=write,
        was_stale=was_stale,
    )
