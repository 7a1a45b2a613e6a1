"""Members across channels: resolving identities, enrolling, linking, merging and unmerging.

Identities are unique per ``(kind, value)`` in the database, and that constraint is what keeps two
channels from enrolling the same shopper twice: an identity is claimed with insert-or-ignore, and whoever
loses the race re-reads and finds the winner's member. Merges move identities and points (as ledger
postings) into the oldest member and are recorded in ``loyalty_merges`` so they can be reverted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import EnvironmentFailure, InvalidValue, UnknownObject
from retailblocks.model import Identity, Member, Money
from retailblocks.model.limits import MAX_ID_LENGTH, check_text
from retailblocks.storage import InsertIfAbsent, Prepared, PreparedQuery, pseudonymise
from retailblocks_loyalty import ledger
from retailblocks_loyalty.config import LoyaltyConfig, MergePolicy
from retailblocks_loyalty.engine import BASE_TIER, normalize_identities, normalize_identity, tier_name
from retailblocks_loyalty.tables import accounts, identities, member_account, members, merges, metadata

# How often identify re-reads after losing a race for an identity before giving up. Each loss means
# another transaction committed that identity, so a handful is plenty.
_ATTEMPTS = 8
# Merges chain (A into B, B into C); a chain longer than this is a corrupted table, not a real history.
_MAX_CHAIN = 64

# The statements identify and earn issue on every member's checkout, built once (see ledger.py).
_MEMBER = PreparedQuery(sa.select(members).where(members.c.id == sa.bindparam("member_id")))
# A member's identities and points balance in one round trip: the balance as a scalar subquery on
# every identity row (an active member always holds at least one identity; ``view`` falls back if not).
_VIEW = PreparedQuery(
    sa.select(
        identities.c.kind,
        identities.c.value,
        sa.select(accounts.c.balance)
        .where(accounts.c.id == sa.bindparam("account_id"))
        .scalar_subquery()
        .label("balance"),
    )
    .where(identities.c.member_id == sa.bindparam("member_id"))
    .order_by(identities.c.kind, identities.c.value)
)
_OWNERS = PreparedQuery(
    sa.select(identities.c.kind, identities.c.value, identities.c.member_id).where(
        identities.c.kind.in_(sa.bindparam("kinds", expanding=True)),
        identities.c.value.in_(sa.bindparam("values", expanding=True)),
    )
)
_CLAIM_IDENTITY = InsertIfAbsent(identities, ("kind", "value", "member_id", "linked_at"))
_ENROL = Prepared.insert(
    members, "id", "status", "merged_into", "tier", "lifetime_spend", "enrolled_at", "enrolled_channel"
)
_UNCLAIM_IDENTITY = Prepared(
    identities.delete().where(identities.c.kind == sa.bindparam("kind"), identities.c.value == sa.bindparam("value"))
)
_DELETE_MEMBER = Prepared(members.delete().where(members.c.id == sa.bindparam("member_id")))
_SET_TIER = Prepared(
    members.update().where(members.c.id == sa.bindparam("member_id")).values(tier=sa.bindparam("new_tier"))
)


class UnknownMerge(UnknownObject):
    """No merge has the given id."""


def resolve(ctx: FlowContext, member_id: str) -> Any | None:
    """The active member ``member_id`` is now: itself, or the survivor it was merged into."""
    check_text(member_id, "a member id", max_length=MAX_ID_LENGTH, allow_empty=False)
    current = member_id
    for _ in range(_MAX_CHAIN):
        row = _MEMBER.first_mapping(ctx.db, member_id=current)
        if row is None:
            return None
        if row["status"] == "active" or row["merged_into"] is None:
            return row
        current = row["merged_into"]
    raise EnvironmentFailure(f"member {member_id!r} is merged through more than {_MAX_CHAIN} members")


def view(ctx: FlowContext, row: Any) -> Member:
    """The Member value for an active member row."""
    found = _VIEW.all(ctx.db, member_id=row["id"], account_id=member_account(row["id"]))
    points = int(found[0][2] or 0) if found else ledger.balance(ctx, member_account(row["id"]))
    return Member(
        id=row["id"],
        identities=tuple(Identity(kind, value) for kind, value, _ in found),
        tier=row["tier"],
        points=points,
    )


def identify(ctx: FlowContext, config: LoyaltyConfig, given: Sequence[Identity], enroll: bool) -> Any | None:
    """Resolve identities to one active member row (enrolling, linking or merging), or None."""
    wanted = normalize_identities(given)
    verified = {normalize_identity(identity) for identity in given if identity.verified}
    withheld_recorded = False
    for _ in range(_ATTEMPTS):
        owners = _owners(ctx, wanted)
        resolved: dict[str, Any] = {}
        ties: dict[str, list[Identity]] = {}
        for identity, member_id in owners.items():
            row = resolve(ctx, member_id)
            if row is not None:
                resolved[row["id"]] = row
                ties.setdefault(row["id"], []).append(identity)
        unknown = [identity for identity in wanted if identity not in owners]
        if config.merge_policy and (len(resolved) > 1 or (resolved and unknown)):
            firm = {
                member_id: row for member_id, row in resolved.items() if _may_join(config, ties[member_id], verified)
            }
            withheld = sorted(set(resolved) - set(firm))
            if withheld:
                if not withheld_recorded:
                    _record_withheld(ctx, sorted(firm), withheld, ties)
                    withheld_recorded = True
                if not firm and not unknown:
                    # Every identity belongs to someone, none may join them: the oldest, nothing merged.
                    return min(resolved.values(), key=lambda row: (row["enrolled_at"], row["id"]))
                resolved = firm
        if not resolved:
            if not enroll:
                return None
            row = _enroll(ctx, config, unknown)
            if row is not None:
                return row
            continue  # lost a race for an identity: re-read
        if len(resolved) == 1:
            survivor = next(iter(resolved.values()))
        else:
            merged = _merge_all(ctx, config, list(resolved))
            if merged is None:
                continue  # someone merged these members meanwhile: re-read
            survivor = merged
        if not unknown:
            return survivor  # nothing to link: the row just read is the answer
        if _link(ctx, survivor["id"], unknown):
            return resolve(ctx, survivor["id"])
    raise EnvironmentFailure(
        f"could not settle the member for {[str(i) for i in wanted]} after {_ATTEMPTS} attempts; "
        "identities kept changing under concurrent requests"
    )


def _may_join(config: LoyaltyConfig, tie: Sequence[Identity], verified: set[Identity]) -> bool:
    """Whether the identities ``tie`` (those of a request that belong to one member) may bring the rest of
    the request to that member, under the merge policy of their kinds."""
    if len(tie) >= 2:
        return True  # a second identifier matches: the never_alone kinds' condition
    (identity,) = tie
    policy = config.policy(identity.kind.value)
    return policy is MergePolicy.AUTO or (policy is MergePolicy.VERIFIED and identity in verified)


def _record_withheld(ctx: FlowContext, kept: list[str], withheld: list[str], ties: dict[str, list[Identity]]) -> None:
    # A merge candidate an operator can review (``blocks events``); kinds only, never the identifiers.
    ctx.record(
        "member.merge_withheld",
        {
            "kept": kept,
            "withheld": withheld,
            "kinds": sorted({identity.kind.value for member_id in withheld for identity in ties[member_id]}),
            "reason": "the shared identities' merge policy does not allow a merge on them alone",
        },
        member_id=withheld[0],
    )


def _owners(ctx: FlowContext, wanted: Sequence[Identity]) -> dict[Identity, str]:
    # Both key columns with IN lists, so the primary key index answers it; a kind of one identity with
    # the value of another can come back too, and is dropped here.
    rows = _OWNERS.all(ctx.db, kinds=sorted({i.kind.value for i in wanted}), values=sorted({i.value for i in wanted}))
    found = {Identity(kind, value): member_id for kind, value, member_id in rows}
    return {identity: found[identity] for identity in wanted if identity in found}


def _enroll(ctx: FlowContext, config: LoyaltyConfig, wanted: Sequence[Identity]) -> Any | None:
    """A new member holding ``wanted``; None (with nothing left behind) if another request got one first."""
    now = ctx.clock.now()
    member_id = ctx.ids.new_id("mem")
    tier = tier_name(config.tiers, Money.zero(config.tiers[0].threshold.currency)) if config.tiers else BASE_TIER
    row = {
        "id": member_id,
        "status": "active",
        "merged_into": None,
        "tier": tier,
        "lifetime_spend": 0,
        "enrolled_at": now,
        "enrolled_channel": ctx.channel.id if ctx.channel else None,
    }
    _ENROL.execute(ctx.db, row)
    claimed: list[Identity] = []
    for identity in wanted:
        if not _claim_identity(ctx, identity, member_id):
            # Undo within this transaction; nothing of it was ever visible to anyone else.
            for mine in claimed:
                _UNCLAIM_IDENTITY.execute(ctx.db, kind=mine.kind.value, value=mine.value)
            _DELETE_MEMBER.execute(ctx.db, member_id=member_id)
            return None
        claimed.append(identity)
    ledger.open_member_account(ctx, member_id)
    ctx.record(
        "member.enrolled",
        {
            "member_id": member_id,
            "identities": [str(i) for i in claimed],
            "tier": tier,
            "channel": ctx.channel.id if ctx.channel else None,
        },
        member_id=member_id,
    )
    # The row as written; reading it back would only add a round trip (callers use its id and tier).
    return row


def _claim_identity(ctx: FlowContext, identity: Identity, member_id: str) -> bool:
    return _CLAIM_IDENTITY(
        ctx.db,
        {
            "kind": identity.kind.value,
            "value": identity.value,
            "member_id": member_id,
            "linked_at": ctx.clock.now(),
        },
    )


def _link(ctx: FlowContext, member_id: str, unknown: Sequence[Identity]) -> bool:
    """Link identities to a member; False if one was taken meanwhile (the caller re-reads)."""
    for identity in unknown:
        if not _claim_identity(ctx, identity, member_id):
            return False
        ctx.record(
            "member.identity_linked",
            {
                "member_id": member_id,
                "identity": str(identity),
                "channel": ctx.channel.id if ctx.channel else None,
            },
            member_id=member_id,
        )
    return True


def _lock_active(ctx: FlowContext, member_ids: Sequence[str]) -> list[Any] | None:
    """Lock the members (in id order, so concurrent merges cannot deadlock); None if one is no longer active."""
    rows = (
        ctx.db.execute(
            sa.select(members).where(members.c.id.in_(sorted(member_ids))).order_by(members.c.id).with_for_update()
        )
        .mappings()
        .all()
    )
    if len(rows) != len(member_ids) or any(row["status"] != "active" for row in rows):
        return None
    return list(rows)


def _merge_all(ctx: FlowContext, config: LoyaltyConfig, member_ids: Sequence[str]) -> Any | None:
    rows = _lock_active(ctx, member_ids)
    if rows is None:
        return None
    ordered = sorted(rows, key=lambda row: (row["enrolled_at"], row["id"]))
    survivor = ordered[0]
    for absorbed in ordered[1:]:
        merge(
            ctx,
            config,
            survivor["id"],
            absorbed["id"],
            reason="identities resolved to both members",
        )
    return ctx.db.execute(sa.select(members).where(members.c.id == survivor["id"])).mappings().one()


def merge(ctx: FlowContext, config: LoyaltyConfig, survivor: str, absorbed: str, *, reason: str) -> str:
    """Merge ``absorbed`` into ``survivor`` (both locked and active): identities, points, spend."""
    merge_id = ctx.ids.new_id("merge")
    now = ctx.clock.now()
    moved = [
        [kind, value]
        for kind, value in ctx.db.execute(
            sa.select(identities.c.kind, identities.c.value)
            .where(identities.c.member_id == absorbed)
            .order_by(identities.c.kind, identities.c.value)
        ).all()
    ]
    ctx.db.execute(identities.update().where(identities.c.member_id == absorbed).values(member_id=survivor))
    points = _transfer_all(
        ctx,
        config,
        absorbed,
        survivor,
        key=f"merge:{merge_id}",
        reference=merge_id,
        reason=f"merge {merge_id}: {absorbed} into {survivor}",
    )
    spend = int(ctx.db.execute(sa.select(members.c.lifetime_spend).where(members.c.id == absorbed)).scalar() or 0)
    ctx.db.execute(
        members.update().where(members.c.id == absorbed).values(status="merged", merged_into=survivor, lifetime_spend=0)
    )
    ctx.db.execute(
        members.update().where(members.c.id == survivor).values(lifetime_spend=members.c.lifetime_spend + spend)
    )
    ctx.db.execute(
        merges.insert().values(
            id=merge_id,
            survivor=survivor,
            absorbed=absorbed,
            at=now,
            reason=reason,
            identities=moved,
            points_moved=points,
            spend_moved=spend,
            reverted_at=None,
            revert_reason=None,
        )
    )
    ctx.record(
        "member.merged",
        {
            "merge_id": merge_id,
            "survivor": survivor,
            "absorbed": absorbed,
            "identities": moved,
            "points_moved": points,
            "reason": reason,
        },
        member_id=survivor,
    )
    refresh_tier(ctx, config, survivor)
    return merge_id


def _transfer_all(
    ctx: FlowContext,
    config: LoyaltyConfig,
    source: str,
    target: str,
    *,
    key: str,
    reference: str,
    reason: str,
) -> int:
    """Move a member's whole balance to another member as one transfer journal; returns the points."""
    available = ledger.balance(ctx, ledger.ensure_member_account(ctx, source), lock=True)
    return _transfer(ctx, config, source, target, available, key=key, reference=reference, reason=reason)


def _transfer(
    ctx: FlowContext,
    config: LoyaltyConfig,
    source: str,
    target: str,
    points: int,
    *,
    key: str,
    reference: str,
    reason: str,
) -> int:
    claim = ledger.claim(
        ctx,
        kind="transfer",
        key=key,
        member_id=target,
        reason=reason,
        requested=points,
        reference=reference,
    )
    if claim.replay:
        return int(claim.existing["points"])
    parts = ledger.debit_member(ctx, claim.journal_id, source, points)
    # The points keep the expiry they had: a merge must not extend or shorten their life.
    ledger.credit_member(ctx, claim.journal_id, target, points, expire_after=config.points_expire_after, parts=parts)
    ledger.finish(
        ctx,
        claim.journal_id,
        points=points,
        balance_after=ledger.balance(ctx, member_account(target)),
    )
    return points


def unmerge(ctx: FlowContext, config: LoyaltyConfig, merge_id: str, reason: str) -> Any:
    """Revert a merge: identities and the transferred points go back, as new postings. Idempotent."""
    row = ctx.db.execute(sa.select(merges).where(merges.c.id == merge_id).with_for_update()).mappings().first()
    if row is None:
        raise UnknownMerge(f"no merge with id {merge_id!r}")
    if row["reverted_at"] is not None:
        return row
    survivor, absorbed = row["survivor"], row["absorbed"]
    locked = (
        ctx.db.execute(
            sa.select(members)
            .where(members.c.id.in_(sorted([survivor, absorbed])))
            .order_by(members.c.id)
            .with_for_update()
        )
        .mappings()
        .all()
    )
    by_id = {member["id"]: member for member in locked}
    if by_id[survivor]["status"] != "active":
        raise InvalidValue(
            f"merge {merge_id} cannot be reverted while its survivor {survivor} is itself merged into "
            f"{by_id[survivor]['merged_into']}; revert that later merge first"
        )
    for kind, value in row["identities"]:
        ctx.db.execute(
            identities.update()
            .where(
                identities.c.kind == kind,
                identities.c.value == value,
                identities.c.member_id == survivor,
            )
            .values(member_id=absorbed)
        )
    # The survivor may have spent the points since; give back what is there and say what was not.
    available = ledger.balance(ctx, member_account(survivor), lock=True)
    wanted = int(row["points_moved"])
    giving = min(wanted, available)
    note = f"unmerge {merge_id}: {survivor} back to {absorbed}"
    if giving < wanted:
        note += f"; shortfall {wanted - giving} points already spent by the survivor"
    _transfer(
        ctx,
        config,
        survivor,
        absorbed,
        giving,
        key=f"unmerge:{merge_id}",
        reference=merge_id,
        reason=note,
    )
    spend = int(row["spend_moved"])
    ctx.db.execute(
        members.update()
        .where(members.c.id == survivor)
        .values(lifetime_spend=sa.case((members.c.lifetime_spend >= spend, members.c.lifetime_spend - spend), else_=0))
    )
    ctx.db.execute(
        members.update()
        .where(members.c.id == absorbed)
        .values(status="active", merged_into=None, lifetime_spend=members.c.lifetime_spend + spend)
    )
    ctx.db.execute(
        merges.update().where(merges.c.id == merge_id).values(reverted_at=ctx.clock.now(), revert_reason=reason or note)
    )
    ctx.record(
        "member.unmerged",
        {
            "merge_id": merge_id,
            "survivor": survivor,
            "restored": absorbed,
            "identities": row["identities"],
            "points_returned": giving,
            "shortfall": wanted - giving,
            "reason": reason,
        },
        member_id=absorbed,
    )
    refresh_tier(ctx, config, absorbed)
    return ctx.db.execute(sa.select(merges).where(merges.c.id == merge_id)).mappings().one()


def refresh_tier(ctx: FlowContext, config: LoyaltyConfig, member_id: str, row: Any = None) -> str:
    """Move a member up to the tier their lifetime spend has reached; never down (see README).

    ``row`` holds the member's current ``tier`` and ``lifetime_spend`` when the caller has them already
    (from the UPDATE that changed the spend); otherwise they are read.
    """
    if row is None:
        row = _MEMBER.first_mapping(ctx.db, member_id=member_id)
        if row is None:
            raise InvalidValue(f"unknown member {member_id!r}")
    if not config.tiers:
        return str(row["tier"])
    reached = tier_name(config.tiers, Money(int(row["lifetime_spend"]), config.tiers[0].threshold.currency))
    rank = {tier.name: index for index, tier in enumerate(config.sorted_tiers())}
    current = row["tier"]
    if rank.get(reached, -1) <= rank.get(current, -1):
        return str(current)
    _SET_TIER.execute(ctx.db, member_id=member_id, new_tier=reached)
    ctx.record(
        "member.tier_changed",
        {
            "member_id": member_id,
            "from": current,
            "to": reached,
            "lifetime_spend": int(row["lifetime_spend"]),
        },
        member_id=member_id,
    )
    return reached


def merges_of(ctx: FlowContext, member_id: str) -> list[dict[str, Any]]:
    rows = (
        ctx.db.execute(
            sa.select(merges)
            .where(sa.or_(merges.c.survivor == member_id, merges.c.absorbed == member_id))
            .order_by(merges.c.at, merges.c.id)
        )
        .mappings()
        .all()
    )
    return [dict(row) for row in rows]


def identifiers(ctx: FlowContext, member_id: str) -> list[Identity]:
    """Every identity the member holds, or held through a merge in either direction (a merge's record
    keeps the identities it moved, so an unmerged member's identities are there too)."""
    row = resolve(ctx, member_id)
    if row is None:
        raise UnknownObject(f"no member {member_id!r}")
    people = {row["id"]}
    # Members merged into this one (and into those), whose identities moved here or went back.
    frontier = [row["id"]]
    for _ in range(_MAX_CHAIN):
        if not frontier:
            break
        absorbed = ctx.db.execute(sa.select(members.c.id).where(members.c.merged_into.in_(frontier))).scalars().all()
        frontier = [found for found in absorbed if found not in people]
        people.update(frontier)
    found = {
        Identity(kind, value)
        for kind, value in ctx.db.execute(
            sa.select(identities.c.kind, identities.c.value).where(identities.c.member_id.in_(sorted(people)))
        ).all()
    }
    for moved in ctx.db.execute(
        sa.select(merges.c.identities).where(sa.or_(merges.c.survivor.in_(people), merges.c.absorbed.in_(people)))
    ).scalars():
        found.update(Identity(kind, value) for kind, value in moved)
    return sorted(found, key=str)


def erase(ctx: FlowContext, replacements: Mapping[str, str]) -> int:
    """Replace the member's identifiers by their tokens in every table of the block (see the hook)."""
    return pseudonymise(ctx.db, metadata.sorted_tables, replacements)
