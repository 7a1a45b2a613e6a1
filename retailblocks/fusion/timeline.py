"""The member timeline: outbox events and external signals, fused into one ordered history per member."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.context import Event, FlowContext
from retailblocks.fusion.tables import insert_new, timeline
from retailblocks.model import ChannelType

#: Outbox events that belong on a member's timeline; ``points.*`` events join them below.
TIMELINE_EVENTS = frozenset(
    {
        "order.placed",
        "order.cancelled",
        "order.refunded",
        "promotion.redeemed",
        "promotion.released",
        "coupon.issued",
    }
)
# Holds and their releases are the inside of a points payment; the member sees ``points.redeemed``.
_SKIPPED_POINTS = frozenset({"points.held", "points.released"})


@attrs.frozen
class TimelineEntry:
    """One thing a member did or had done to them, in one channel, at one time."""

    at: datetime
    kind: str
    channel: str | None
    source: str
    order_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    identity: str | None = None
    detail: Mapping[str, Any] = attrs.field(factory=dict)


def belongs_on_timeline(event: Event) -> bool:
    if event.member_id is None:
        return False  # guests have no timeline
    if event.type.startswith("points."):
        return event.type not in _SKIPPED_POINTS
    return event.type in TIMELINE_EVENTS


def _amount(event: Event) -> int | None:
    payload = event.payload
    if event.type == "order.placed":
        return int(payload.get("total", 0))
    if event.type == "order.refunded":
        return -int(payload.get("amount", 0))
    if event.type.startswith("promotion."):
        return int(payload.get("amount", 0))
    return None


def record_event(ctx: FlowContext, event: Event) -> int:
    """Write the timeline rows ``event`` makes (none, one, or a store visit besides an order); returns how
    many were new. Keyed by the outbox id, so a redelivered event adds nothing."""
    if not belongs_on_timeline(event):
        return 0
    rows = [(f"event:{event.id}", event.type)]
    if event.type == "order.placed" and ctx.channel is not None and ctx.channel.type is ChannelType.STORE:
        # A purchase in a store is also a visit: the signal a store's footfall reports are built from.
        rows.append((f"event:{event.id}:visit", "store.visit"))
    written = 0
    for key, kind in rows:
        written += insert_new(
            ctx.db,
            timeline,
            {
                "key": key,
                "member_id": event.member_id,
                "identity": None,
                "kind": kind,
                "channel": event.channel,
                "order_id": event.order_id,
                "amount": _amount(event) if kind == event.type else None,
                "currency": event.payload.get("currency"),
                "detail": dict(event.payload),
                "source": "event",
                "occurred_at": event.occurred_at,
            },
        )
    return written


def read_timeline(
    connection: sa.Connection, member_ids: Collection[str], identities: Collection[str]
) -> list[TimelineEntry]:
    """Every entry of the member known by any of ``member_ids`` (merged members included) or, for external
    signals, by any of ``identities``; oldest first."""
    condition = sa.or_(timeline.c.member_id.in_(sorted(member_ids)), timeline.c.identity.in_(sorted(identities)))
    rows = connection.execute(
        sa.select(timeline).where(condition).order_by(timeline.c.occurred_at, timeline.c.id)
    ).mappings()
    return [
        TimelineEntry(
            at=as_utc(row["occurred_at"]),
            kind=row["kind"],
            channel=row["channel"],
            source=row["source"],
            order_id=row["order_id"],
            amount=row["amount"],
            currency=row["currency"],
            identity=row["identity"],
            detail=row["detail"] or {},
        )
        for row in rows
    ]


def signal_counts(connection: sa.Connection) -> dict[str, int]:
    """External signals per member id, and per identity for signals no member was known for yet."""
    counts: dict[str, int] = {}
    query = (
        sa.select(timeline.c.member_id, timeline.c.identity, sa.func.count())
        .where(timeline.c.source == "signal")
        .group_by(timeline.c.member_id, timeline.c.identity)
    )
    for member_id, identity, count in connection.execute(query):
        owner = member_id or identity
        counts[owner] = counts.get(owner, 0) + int(count)
    return counts
