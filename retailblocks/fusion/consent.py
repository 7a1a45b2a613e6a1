"""Consent per purpose and medium (PIPL art. 14, GDPR art. 7): recorded with the stack's time and its
source, withdrawn the same way, its whole history kept, and honoured where the purpose is used.

``profiling``: a member who withdrew it is in no segment (so no campaign picks them by profile).
``marketing``: a campaign sends a member no message by a medium whose marketing consent they withdrew
(``medium`` ``any`` covers every medium; a medium's own record wins over ``any``). ``sharing``: with
partners; recorded and exported, and for blocks that share data to read.

A member with no record for a purpose has not withdrawn it: the stack's default follows the opt-out
model of the reach blocks it joins (see docs/identity.md).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.errors import InvalidValue, suggestion
from retailblocks.fusion.members import member_of
from retailblocks.fusion.tables import consents
from retailblocks.hookspecs.reach import MEDIUMS

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime
    from retailblocks.context import FlowContext

PURPOSES = ("marketing", "profiling", "sharing")
ANY_MEDIUM = "any"


@attrs.frozen
class Consent:
    member_id: str
    purpose: str
    medium: str
    granted: bool
    source: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "at": self.at.isoformat()}


def _check(purpose: str, medium: str, source: str) -> None:
    if purpose not in PURPOSES:
        raise InvalidValue(
            f"unknown consent purpose {purpose!r}{suggestion(purpose, PURPOSES)} (purposes: {', '.join(PURPOSES)})"
        )
    mediums = (ANY_MEDIUM, *sorted(MEDIUMS))
    if medium not in mediums:
        raise InvalidValue(f"unknown medium {medium!r}{suggestion(medium, mediums)} (mediums: {', '.join(mediums)})")
    if not isinstance(source, str) or not source.strip() or len(source) > 200:
        raise InvalidValue("a consent's source says where it was given, in 1 to 200 characters")


def record_consent(
    stack: Runtime, member_id: str, purpose: str, *, granted: bool, source: str, medium: str = ANY_MEDIUM
) -> Consent:
    """Record that the member grants (or withdraws) consent to ``purpose`` by ``medium``, now."""
    _check(purpose, medium, source)
    member = member_of(stack, member_id)
    with stack.context(flow="consent") as ctx:
        row = Consent(member.id, purpose, medium, bool(granted), source, ctx.clock.now())
        ctx.db.execute(consents.insert().values(**attrs.asdict(row)))
        ctx.record(
            "member.consent_granted" if granted else "member.consent_withdrawn",
            {"member_id": member.id, "purpose": purpose, "medium": medium, "source": source},
            member_id=member.id,
        )
    return row


def consent_history(stack: Runtime, member_id: str) -> list[Consent]:
    """Every consent the member gave or withdrew, oldest first."""
    member = member_of(stack, member_id)
    with stack.context(flow="read", read_only=True) as ctx:
        return history(ctx, member.id)


def history(ctx: FlowContext, member_id: str) -> list[Consent]:
    rows = ctx.db.execute(
        sa.select(consents).where(consents.c.member_id == member_id).order_by(consents.c.id)
    ).mappings()
    return [
        Consent(row["member_id"], row["purpose"], row["medium"], row["granted"], row["source"], as_utc(row["at"]))
        for row in rows
    ]


def withdrawn(ctx: FlowContext, purpose: str, member_ids: Collection[str], medium: str = ANY_MEDIUM) -> set[str]:
    """Those of ``member_ids`` (all members when empty) whose consent to ``purpose`` by ``medium`` is
    withdrawn now: their latest record for the medium, or for ``any`` when the medium has none."""
    query = sa.select(consents.c.member_id, consents.c.medium, consents.c.granted).where(
        consents.c.purpose == purpose, consents.c.medium.in_(sorted({medium, ANY_MEDIUM}))
    )
    if member_ids:
        query = query.where(consents.c.member_id.in_(sorted(member_ids)))
    latest: dict[tuple[str, str], bool] = {}
    for member_id, row_medium, granted in ctx.db.execute(query.order_by(consents.c.id)).all():
        latest[member_id, row_medium] = granted
    found = set()
    for member_id in {member for member, _ in latest}:
        specific = latest.get((member_id, medium))
        state = specific if specific is not None else latest.get((member_id, ANY_MEDIUM), True)
        if not state:
            found.add(member_id)
    return found
