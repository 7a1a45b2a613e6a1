"""Segment memberships kept as events arrive, checked against time at read, and rebuilt from the raw data.

**Facts.** The fusion block listens to the outbox. When an order's event is delivered (``order.placed``,
``order.cancelled``, ``order.refunded``, ``points.earned``) the order's row in ``fusion_order_facts`` is
recomputed whole from the order as the core stores it (net spend, net units, lines, the points its earn
event gave), so delivering an event twice, or out of order, writes the same row. Merges move an absorbed
member's facts to the survivor (and an unmerge moves them back). Signals need no facts of their own: the
timeline already holds each one with its moment, and ingesting refreshes the members it names.

**Answers.** After the facts, the member's answer for every segment of the manifest is evaluated and
stored in ``fusion_segment_members`` with the moment it was computed and ``fresh_until``: the earliest
moment at which time alone could change it (the first purchase or signal to slide out of a ``within_days``
window, the day the days-since-last-purchase cross a bound, an RFM score's threshold). A tier change, an
identity linked or a merge are events too, and refresh the member the same way.

**Reading.** :func:`segment_members` uses a stored answer while it is fresh (``now < fresh_until``, the
segment's definition unchanged — a hash of its conditions is stored beside the answer) and evaluates the
member again, from the stored facts, at read time otherwise. So a window slides without an event: a member
whose big purchase is 31 days old leaves "spent 200 in the last 30 days" at the read that follows, with no
writing on the read path. Maintenance (``stack_maintain``: ``blocks recover``, the dispatcher) writes the
answers time made stale, so later reads find them fresh again. Windows count from the stack's clock
(``ctx.clock``), never the wall clock.

**Rebuild.** :func:`rebuild` recomputes every fact from the orders table and the outbox's earn events,
evaluates every member again, writes the result, and reports what differed from what the store held: the
orders whose facts changed and the memberships that changed. A database upgraded from before the store
existed is marked to need one; until it is rebuilt, reads evaluate from the raw data (correct, slower).

The listener, ingest and rebuild each lock the store's one row first, so they never interleave.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from retailblocks.clock import as_utc
from retailblocks.context import Event, FlowContext
from retailblocks.errors import UnknownMember, UnknownOrder
from retailblocks.flows.orders import load_order, order_from_rows
from retailblocks.fusion.consent import withdrawn
from retailblocks.fusion.profile import NEVER_PLACED, NOT_SALES, MemberResolver, net_amount
from retailblocks.fusion.segments import (
    Check,
    LineFact,
    MemberFacts,
    OrderFact,
    Reading,
    SignalFact,
    evaluate,
)
from retailblocks.fusion.tables import (
    aggregate_store,
    member_totals,
    order_facts,
    segment_answers,
    segment_store,
    timeline,
)
from retailblocks.manifest import Segment
from retailblocks.manifest.conditions import AllOf, AnyOf, Condition, MetricCondition, Not, condition_data
from retailblocks.model import Member, Order
from retailblocks.storage.tables import order_lines, orders, outbox

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime
    from retailblocks.fusion.aggregates import AggregateReport

#: Events after which a member's facts or answers may have changed.
_ORDER_EVENTS = frozenset({"order.placed", "order.cancelled", "order.refunded", "points.earned"})
_MERGES = frozenset({"member.merged", "member.unmerged"})
_STORE = "store"


@attrs.frozen
class Earned:
    """What an order's ``points.earned`` event gave: the points, and the points of each line by index."""

    points: int
    lines: Mapping[int, int] = attrs.field(factory=dict)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Earned:
        lines = {int(line["index"]): int(line["points"]) for line in payload.get("lines", ()) if "index" in line}
        return cls(int(payload.get("points", 0)), lines)


def order_fact(order: Order, member_id: str, earned: Earned | None) -> OrderFact:
    """The order as segments see it: spend net of refunds (the order's, shipping included; a line's, its
    total less the refunded units' share, rounded down), units net of refunded units, the points earned."""
    lines = []
    for line in order.lines:
        total = line.total.amount
        refunded = total * line.refunded_quantity // line.quantity if line.quantity else 0
        lines.append(
            LineFact(
                sku=line.sku,
                units=line.quantity - line.refunded_quantity,
                spend=total - refunded,
                points=earned.lines.get(line.index, 0) if earned else 0,
            )
        )
    return OrderFact(
        order_id=order.id,
        member_id=member_id,
        placed_by=str(order.member_id),
        channel=order.channel,
        placed_at=as_utc(order.created_at),
        sale=order.status not in NOT_SALES,
        spend=net_amount(order),
        units=sum(line.units for line in lines),
        points=earned.points if earned else 0,
        lines=tuple(lines),
    )


# -- the store's rows ------------------------------------------------------------------------------


def _upsert(connection: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> None:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    keys = [column.name for column in table.primary_key.columns]
    statement = dialect.insert(table).values(**values)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={k: statement.excluded[k] for k in values if k not in keys}
        )
    )


def _fact_row(fact: OrderFact) -> dict[str, Any]:
    return {
        "order_id": fact.order_id,
        "member_id": fact.member_id,
        "placed_by": fact.placed_by,
        "channel": fact.channel,
        "placed_at": fact.placed_at,
        "sale": fact.sale,
        "spend": fact.spend,
        "units": fact.units,
        "points": fact.points,
        "lines": [{"sku": x.sku, "units": x.units, "spend": x.spend, "points": x.points} for x in fact.lines],
    }


def stored_fact(row: Any) -> OrderFact:
    return OrderFact(
        order_id=row["order_id"],
        member_id=row["member_id"],
        placed_by=row["placed_by"],
        channel=row["channel"],
        placed_at=as_utc(row["placed_at"]),
        sale=bool(row["sale"]),
        spend=int(row["spend"]),
        units=int(row["units"]),
        points=int(row["points"]),
        lines=tuple(
            LineFact(str(x["sku"]), int(x["units"]), int(x["spend"]), int(x["points"])) for x in row["lines"] or ()
        ),
    )


def lock_store(connection: sa.Connection) -> Any:
    """The store's row, locked for this transaction (SQLite serialises writers by itself)."""
    query = sa.select(segment_store).where(segment_store.c.name == _STORE)
    row: Any = connection.execute(query.with_for_update()).mappings().first()
    if row is None:  # pragma: no cover - the migration writes it
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(
            dialect.insert(segment_store).values(name=_STORE, needs_rebuild=False).on_conflict_do_nothing()
        )
        row = connection.execute(query.with_for_update()).mappings().first()
    return row


def needs_rebuild(connection: sa.Connection) -> bool:
    row = connection.execute(sa.select(segment_store.c.needs_rebuild).where(segment_store.c.name == _STORE)).first()
    return bool(row[0]) if row is not None else False


def definition(segment: Segment, at: Reading) -> str:
    """A digest of what the segment asks, and of what its answer reads besides the facts (the currency, the
    SKUs of the categories it names): a stored answer for another definition is not used."""
    categories = sorted(_categories(segment.condition))
    skus = {c: sorted(s for s, of in at.categories.items() if of == c) for c in categories}
    text = json.dumps([condition_data(segment.condition), at.currency, skus], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _categories(condition: Condition) -> set[str]:
    if isinstance(condition, AllOf | AnyOf):
        return set().union(*(_categories(c) for c in condition.conditions))
    if isinstance(condition, Not):
        return _categories(condition.condition)
    return set(condition.categories) if isinstance(condition, MetricCondition) else set()


# -- a member's facts ------------------------------------------------------------------------------


def reading(stack: Runtime, now: datetime) -> Reading:
    return Reading(now=now, currency=stack.currency, categories={s: p.category for s, p in stack.catalog.items()})


def member_facts(
    ctx: FlowContext, member_id: str, member: Member | None, orders_of: Iterable[OrderFact] | None = None
) -> MemberFacts:
    """The member's facts from the store (or, given ``orders_of``, from those), with their signals."""
    if orders_of is None:
        rows = ctx.db.execute(
            sa.select(order_facts).where(order_facts.c.member_id == member_id).order_by(order_facts.c.placed_at)
        ).mappings()
        orders_of = [stored_fact(row) for row in rows]
    bought = tuple(orders_of)
    aliases = sorted({member_id, *(fact.placed_by for fact in bought)})
    identities = sorted(str(identity) for identity in member.identities) if member is not None else []
    owner: sa.ColumnElement[bool] = timeline.c.member_id.in_(aliases)
    if identities:
        owner = sa.or_(owner, timeline.c.identity.in_(identities))
    signals = tuple(
        SignalFact(kind, channel, as_utc(at))
        for kind, channel, at in ctx.db.execute(
            sa.select(timeline.c.kind, timeline.c.channel, timeline.c.occurred_at).where(
                timeline.c.source == "signal", owner
            )
        )
    )
    return MemberFacts(
        member_id=member_id,
        tier=member.tier if member is not None else "",
        identity_kinds=frozenset(identity.kind.value for identity in member.identities) if member else frozenset(),
        orders=bought,
        signals=signals,
    )


# -- as events arrive ------------------------------------------------------------------------------


def on_event(stack: Runtime, ctx: FlowContext, event: Event) -> None:
    """Bring the member's facts and answers up to date with ``event`` (the fusion block's listener)."""
    relevant = event.type in _ORDER_EVENTS or event.type.startswith("member.")
    if event.member_id is None or not relevant:
        return
    lock_store(ctx.db)
    resolver = MemberResolver(stack, ctx)
    touched = {resolver.canonical(event.member_id)}
    if event.type in _ORDER_EVENTS and event.order_id:
        earned = Earned.from_payload(event.payload) if event.type == "points.earned" else None
        _refresh_order(ctx, resolver, event.order_id, earned)
    if event.type in _MERGES:
        touched |= _follow_merge(ctx, resolver, event)
    refresh_members(stack, ctx, touched, resolver)


def _refresh_order(ctx: FlowContext, resolver: MemberResolver, order_id: str, earned: Earned | None) -> None:
    try:
        order = load_order(ctx.db, order_id)
    except UnknownOrder:
        return  # not an order of the core's (a block's own reference): nothing to count
    if order.member_id is None:
        return
    if earned is None:
        # Another event of the order: keep what its earn event gave.
        stored = ctx.db.execute(sa.select(order_facts).where(order_facts.c.order_id == order_id)).mappings().first()
        if stored is not None:
            kept = stored_fact(stored)
            by_index = {line.index: was.points for line, was in zip(order.lines, kept.lines, strict=False)}
            earned = Earned(kept.points, by_index)
    _upsert(ctx.db, order_facts, _fact_row(order_fact(order, resolver.canonical(order.member_id), earned)))


def _follow_merge(ctx: FlowContext, resolver: MemberResolver, event: Event) -> set[str]:
    """Point the facts of the members a merge or unmerge involved at whom each order counts for now."""
    payload = event.payload
    involved = {str(m) for m in (payload.get("survivor"), payload.get("absorbed"), payload.get("restored")) if m}
    involved.add(str(event.member_id))
    rows = ctx.db.execute(
        sa.select(order_facts.c.order_id, order_facts.c.placed_by, order_facts.c.member_id).where(
            sa.or_(order_facts.c.placed_by.in_(sorted(involved)), order_facts.c.member_id.in_(sorted(involved)))
        )
    ).all()
    for order_id, placed_by, member_id in rows:
        now_for = resolver.canonical(placed_by)
        if now_for != member_id:
            ctx.db.execute(order_facts.update().where(order_facts.c.order_id == order_id).values(member_id=now_for))
    canonical = {resolver.canonical(m) for m in involved}
    # An absorbed member is no one's answer any more: the survivor's answers count their history.
    absorbed = sorted(involved - canonical)
    if absorbed:
        ctx.db.execute(segment_answers.delete().where(segment_answers.c.member_id.in_(absorbed)))
    return canonical


def after_signals(stack: Runtime, ctx: FlowContext, member_ids: Collection[str]) -> None:
    """Refresh the answers of the members newly ingested signals name (in the ingest's transaction)."""
    if member_ids and stack.manifest.segments:
        lock_store(ctx.db)
        resolver = MemberResolver(stack, ctx)
        refresh_members(stack, ctx, {resolver.canonical(m) for m in member_ids}, resolver)


def refresh_members(
    stack: Runtime, ctx: FlowContext, member_ids: Collection[str], resolver: MemberResolver | None = None
) -> None:
    """Evaluate every segment for each of ``member_ids`` (canonical ids) and store the answers."""
    segments = stack.manifest.segments
    if not segments or not member_ids:
        return
    resolver = resolver or MemberResolver(stack, ctx)
    now = ctx.clock.now()
    for member_id in sorted(member_ids):
        facts = member_facts(ctx, member_id, resolver.member(member_id))
        _store_answers(ctx.db, segments, facts, reading(stack, now))


def _store_answers(connection: sa.Connection, segments: Iterable[Segment], facts: MemberFacts, at: Reading) -> None:
    before = {
        row.segment: (bool(row.member), row.since)
        for row in connection.execute(
            sa.select(segment_answers.c.segment, segment_answers.c.member, segment_answers.c.since).where(
                segment_answers.c.member_id == facts.member_id
            )
        )
    }
    for segment in segments:
        answer = evaluate(segment, facts, at)
        was = before.get(segment.id)
        unchanged = was is not None and was[0] == answer.holds
        _upsert(
            connection,
            segment_answers,
            {
                "segment": segment.id,
                "member_id": facts.member_id,
                "definition": definition(segment, at),
                "member": answer.holds,
                "since": was[1] if was is not None and unchanged else at.now,
                "evaluated_at": at.now,
                "fresh_until": answer.changes_at,
            },
        )


def refresh_stale(stack: Runtime, ctx: FlowContext, limit: int = 500) -> int:
    """Evaluate again the members whose stored answers time has made stale (or that were stored for another
    definition), at most ``limit`` of them; returns how many. Housekeeping (``stack_maintain``): reads are
    right without it, and faster after it."""
    segments = list(stack.manifest.segments)
    if not segments:
        return 0
    now = ctx.clock.now()
    at = reading(stack, now)
    stale = sa.or_(
        segment_answers.c.fresh_until <= now,
        segment_answers.c.evaluated_at > now,
        *(
            sa.and_(segment_answers.c.segment == s.id, segment_answers.c.definition != definition(s, at))
            for s in segments
        ),
    )
    members = list(
        ctx.db.execute(
            sa.select(segment_answers.c.member_id)
            .where(stale)
            .group_by(segment_answers.c.member_id)
            .order_by(segment_answers.c.member_id)
            .limit(limit)
        ).scalars()
    )
    if members:
        lock_store(ctx.db)
        refresh_members(stack, ctx, members)
    return len(members)


# -- reading ---------------------------------------------------------------------------------------


def segment_members(
    stack: Runtime, ctx: FlowContext, segments: Iterable[Segment] | None = None
) -> dict[str, list[str]]:
    """The members of each segment now (sorted ids), in the order the segments are given (the manifest's)."""
    chosen = list(stack.manifest.segments if segments is None else segments)
    answers = _answers(stack, ctx, chosen)
    # A member who withdrew consent to profiling is in no segment, whatever their profile says.
    unprofiled = withdrawn(ctx, "profiling", [])
    return {
        segment.id: sorted(m for m, inside in answers[segment.id].items() if inside and m not in unprofiled)
        for segment in chosen
    }


def _answers(stack: Runtime, ctx: FlowContext, segments: list[Segment]) -> dict[str, dict[str, bool]]:
    """Every known member's answer for each segment, now: stored where fresh, evaluated where not."""
    if not segments:
        return {}
    if needs_rebuild(ctx.db):
        return _evaluate_all(stack, ctx, segments, raw_facts(stack, ctx))
    now = ctx.clock.now()
    at = reading(stack, now)
    digests = {segment.id: definition(segment, at) for segment in segments}
    stored: dict[tuple[str, str], Any] = {}
    if segments:
        for row in ctx.db.execute(
            sa.select(segment_answers).where(segment_answers.c.segment.in_(sorted(digests)))
        ).mappings():
            stored[row["segment"], row["member_id"]] = row
    resolver = MemberResolver(stack, ctx)
    known = _known_members(ctx, resolver, {member for _, member in stored})
    answers: dict[str, dict[str, bool]] = {segment.id: {} for segment in segments}
    stale: dict[str, list[Segment]] = {}
    for member_id in sorted(known):
        for segment in segments:
            found = stored.get((segment.id, member_id))
            if found is not None and _fresh(found, digests[segment.id], now):
                answers[segment.id][member_id] = bool(found["member"])
            else:
                stale.setdefault(member_id, []).append(segment)
    for member_id, wanted in stale.items():
        facts = member_facts(ctx, member_id, resolver.member(member_id))
        for segment in wanted:
            answers[segment.id][member_id] = evaluate(segment, facts, at).holds
    return answers


def segments_of(stack: Runtime, ctx: FlowContext, member_ids: Collection[str]) -> dict[str, tuple[str, ...]]:
    """The segments each of ``member_ids`` (canonical ids) is in now, in the manifest's order: stored answers
    where fresh, evaluated from the member's facts where not. Reads only these members' rows."""
    segments = list(stack.manifest.segments)
    if not segments or not member_ids:
        return dict.fromkeys(member_ids, ())
    now = ctx.clock.now()
    at = reading(stack, now)
    digests = {segment.id: definition(segment, at) for segment in segments}
    stored: dict[tuple[str, str], Any] = {}
    wanted = sorted(member_ids)
    for start in range(0, len(wanted), 500):
        for row in ctx.db.execute(
            sa.select(segment_answers).where(segment_answers.c.member_id.in_(wanted[start : start + 500]))
        ).mappings():
            stored[row["segment"], row["member_id"]] = row
    resolver = MemberResolver(stack, ctx)
    found: dict[str, tuple[str, ...]] = {}
    for member_id in wanted:
        inside: list[str] = []
        facts: MemberFacts | None = None
        for segment in segments:
            kept = stored.get((segment.id, member_id))
            if kept is not None and _fresh(kept, digests[segment.id], now):
                holds = bool(kept["member"])
            else:
                facts = facts or member_facts(ctx, member_id, resolver.member(member_id))
                holds = evaluate(segment, facts, at).holds
            if holds:
                inside.append(segment.id)
        found[member_id] = tuple(inside)
    return found


def _fresh(row: Any, digest: str, now: datetime) -> bool:
    if row["definition"] != digest or as_utc(row["evaluated_at"]) > now:
        return False  # another definition, or a clock set back past the evaluation
    return row["fresh_until"] is None or now < as_utc(row["fresh_until"])


def _known_members(ctx: FlowContext, resolver: MemberResolver, answered: set[str]) -> set[str]:
    """Every member the store has seen (answers, facts, timeline), by the id membership knows them by now."""
    known = set(answered)
    if _totals_kept(ctx.db):
        # The kept member totals list every known member by the id membership knows them by: no scan of
        # every order's facts or of the whole timeline.
        known |= set(ctx.db.execute(sa.select(member_totals.c.member_id)).scalars())
        return known
    known |= set(ctx.db.execute(sa.select(order_facts.c.member_id).distinct()).scalars())
    on_timeline = set(
        ctx.db.execute(sa.select(timeline.c.member_id).where(timeline.c.member_id.is_not(None)).distinct()).scalars()
    )
    # Only ids the store holds no answer for need asking: a merged member's old id leads to the survivor.
    known |= {resolver.canonical(member_id) for member_id in on_timeline - known}
    return known


def _totals_kept(connection: sa.Connection) -> bool:
    row = connection.execute(
        sa.select(aggregate_store.c.needs_rebuild, aggregate_store.c.digest).where(
            aggregate_store.c.name == "aggregates"
        )
    ).first()
    # The digest is of the manifest's partners and campaigns, which member totals do not depend on.
    return row is not None and not row[0] and row[1] != ""


def _evaluate_all(
    stack: Runtime, ctx: FlowContext, segments: list[Segment], facts_by_member: Mapping[str, list[OrderFact]]
) -> dict[str, dict[str, bool]]:
    resolver = MemberResolver(stack, ctx)
    known = set(facts_by_member)
    on_timeline = ctx.db.execute(
        sa.select(timeline.c.member_id).where(timeline.c.member_id.is_not(None)).distinct()
    ).scalars()
    known |= {resolver.canonical(member_id) for member_id in on_timeline}
    at = reading(stack, ctx.clock.now())
    answers: dict[str, dict[str, bool]] = {segment.id: {} for segment in segments}
    for member_id in sorted(known):
        facts = member_facts(ctx, member_id, resolver.member(member_id), facts_by_member.get(member_id, []))
        for segment in segments:
            answers[segment.id][member_id] = evaluate(segment, facts, at).holds
    return answers


# -- from the raw data -----------------------------------------------------------------------------


def raw_facts(stack: Runtime, ctx: FlowContext) -> dict[str, list[OrderFact]]:
    """Every member's order facts computed from the orders table and the outbox's earn events."""
    earned: dict[str, Earned] = {}
    for order_id, payload in ctx.db.execute(
        sa.select(outbox.c.order_id, outbox.c.payload)
        .where(outbox.c.type == "points.earned", outbox.c.order_id.is_not(None))
        .order_by(outbox.c.id)
    ):
        # One earn per order (the loyalty block keys it by the order); the last one stands, as it does
        # when the listener receives them.
        earned[order_id] = Earned.from_payload(payload)
    # An order never placed (a checkout under way, or one that failed) is no one's history: the listener
    # hears of none (no order.placed), so a recomputation leaves them out as well.
    rows = ctx.db.execute(
        sa.select(orders)
        .where(orders.c.member_id.is_not(None), orders.c.status.not_in([status.value for status in NEVER_PLACED]))
        .order_by(orders.c.created_at, orders.c.id)
    ).mappings()
    by_order = {row["id"]: row for row in rows}
    lines: dict[str, list[Any]] = {order_id: [] for order_id in by_order}
    ids = sorted(by_order)
    for start in range(0, len(ids), 500):
        for line in ctx.db.execute(
            sa.select(order_lines)
            .where(order_lines.c.order_id.in_(ids[start : start + 500]))
            .order_by(order_lines.c.order_id, order_lines.c.line_index)
        ).mappings():
            lines[line["order_id"]].append(line)
    resolver = MemberResolver(stack, ctx)
    facts: dict[str, list[OrderFact]] = {}
    for order_id, row in by_order.items():
        order = order_from_rows(row, lines[order_id])
        member_id = resolver.canonical(str(order.member_id))
        facts.setdefault(member_id, []).append(order_fact(order, member_id, earned.get(order_id)))
    return facts


@attrs.frozen
class MembershipChange:
    segment: str
    member_id: str
    #: what the store answered before the rebuild, and what the rebuild found
    was: bool
    now: bool


@attrs.frozen
class RebuildReport:
    """What a rebuild found: how much it read, and where the store had differed from the raw data."""

    orders: int
    members: int
    #: orders whose stored facts differed from the raw data (missing, extra or changed), sorted
    facts_changed: tuple[str, ...]
    memberships_changed: tuple[MembershipChange, ...]
    rebuilt_at: datetime
    #: the member totals, settlement lines and campaign results rebuilt beside (fusion.aggregates)
    aggregates: AggregateReport | None = None

    @property
    def differences(self) -> int:
        kept = len(self.aggregates.differences) if self.aggregates is not None else 0
        return len(self.facts_changed) + len(self.memberships_changed) + kept

    def to_data(self) -> dict[str, object]:
        return {
            "orders": self.orders,
            "members": self.members,
            "differences": self.differences,
            "facts_changed": list(self.facts_changed),
            "memberships_changed": [
                {"segment": c.segment, "member_id": c.member_id, "was": c.was, "now": c.now}
                for c in self.memberships_changed
            ],
            "rebuilt_at": self.rebuilt_at.isoformat(),
            "aggregates": self.aggregates.to_data() if self.aggregates is not None else None,
        }


def rebuild(stack: Runtime) -> RebuildReport:
    """Recompute every order fact and every member's answers from the raw orders, earn events and signals,
    write them in one transaction, and report where the store differed."""
    segments = list(stack.manifest.segments)
    with stack.context(flow="segments-rebuild") as ctx:
        was_marked = bool(lock_store(ctx.db)["needs_rebuild"])
        before = {} if was_marked else _answers(stack, ctx, segments)
        raw = raw_facts(stack, ctx)
        stored = {row["order_id"]: stored_fact(row) for row in ctx.db.execute(sa.select(order_facts)).mappings()}
        rebuilt = {fact.order_id: fact for facts in raw.values() for fact in facts}
        changed = sorted(
            order_id for order_id in set(stored) | set(rebuilt) if stored.get(order_id) != rebuilt.get(order_id)
        )
        for order_id in changed:
            if order_id in rebuilt:
                _upsert(ctx.db, order_facts, _fact_row(rebuilt[order_id]))
            else:
                ctx.db.execute(order_facts.delete().where(order_facts.c.order_id == order_id))
        after = _evaluate_all(stack, ctx, segments, raw)
        now = ctx.clock.now()
        resolver = MemberResolver(stack, ctx)
        members = sorted({member for answers in after.values() for member in answers})
        # Answers of members that are no one now (merged away) or of segments the manifest dropped go.
        ctx.db.execute(
            segment_answers.delete().where(
                sa.or_(
                    segment_answers.c.member_id.not_in(members),
                    segment_answers.c.segment.not_in([s.id for s in segments]),
                )
            )
        )
        at = reading(stack, now)
        for member_id in members:
            facts = member_facts(ctx, member_id, resolver.member(member_id), raw.get(member_id, []))
            _store_answers(ctx.db, segments, facts, at)
        ctx.db.execute(
            segment_store.update().where(segment_store.c.name == _STORE).values(needs_rebuild=False, rebuilt_at=now)
        )
    differences = tuple(
        MembershipChange(segment.id, member_id, before[segment.id].get(member_id, False), inside)
        for segment in segments
        for member_id, inside in sorted(after[segment.id].items())
        if not was_marked and before[segment.id].get(member_id, False) != inside
    )
    return RebuildReport(
        orders=len(rebuilt),
        members=len(members),
        facts_changed=() if was_marked else tuple(changed),
        memberships_changed=differences,
        rebuilt_at=now,
    )


# -- explaining ------------------------------------------------------------------------------------


@attrs.frozen
class Explanation:
    """Why a member is in a segment or not: every condition with the member's figure and the threshold."""

    segment: str
    member_id: str
    member: bool
    as_of: datetime
    check: Check

    def to_data(self) -> dict[str, object]:
        return {
            "segment": self.segment,
            "member_id": self.member_id,
            "member": self.member,
            "as_of": self.as_of.isoformat(),
            "check": self.check.to_data(),
        }


def explain(stack: Runtime, ctx: FlowContext, segment: Segment, member_id: str) -> Explanation:
    """The segment's conditions checked for the member (by any id they were known by) at the stack's now."""
    resolver = MemberResolver(stack, ctx)
    member = resolver.member(member_id)
    canonical = member.id if member is not None else member_id
    raw = raw_facts(stack, ctx) if needs_rebuild(ctx.db) else None
    facts = member_facts(ctx, canonical, member, None if raw is None else raw.get(canonical, []))
    if member is None and not facts.orders and not facts.signals:
        raise UnknownMember(f"unknown member {member_id!r}: no membership record, order or signal names it")
    now = ctx.clock.now()
    answer = evaluate(segment, facts, reading(stack, now))
    return Explanation(segment=segment.id, member_id=canonical, member=answer.holds, as_of=now, check=answer)
