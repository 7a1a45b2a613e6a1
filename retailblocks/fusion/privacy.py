"""Data-subject requests: export everything held about a member, and erase a member.

Erasure pseudonymises (GDPR art. 17, PIPL art. 47): every identity the member is or was known by (phone,
e-mail, openids, union ids, cards...) is replaced by an irreversible token, in every table that holds it,
the blocks' (through ``stack_erase_member``) and the core's, the outbox's stored event payloads included.
The token is random (drawn from the stack's ids), so nothing of the identifier survives in it. Member ids,
order ids, amounts and every ledger row stay, so ``blocks audit`` and every balance are the same before
and after.

The whole erasure runs in one transaction: a process dying half-way leaves nothing half-erased, and
running it again finishes it. A second erasure of the same member finds no identifier left (tokens are
recognisable by their prefix) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.errors import InvalidValue, UnknownMember
from retailblocks.flows.capabilities import member_coupons
from retailblocks.fusion import tables as fusion_tables
from retailblocks.fusion.consent import history as consent_history
from retailblocks.hookspecs import lifecycle, membership
from retailblocks.model import Identity
from retailblocks.model.limits import MAX_ID_LENGTH, check_text
from retailblocks.storage import tables as core_tables
from retailblocks.storage.erasure import pseudonymise

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime
    from retailblocks.context import FlowContext

#: Every token starts with this, so an erased identity is told from a live one.
TOKEN_PREFIX = "erased"
# The core's tables an erasure reads through. The migrations' bookkeeping holds no personal data.
_SKIPPED_CORE_TABLES = frozenset({"schema_versions"})


@attrs.frozen
class Erasure:
    """What one erasure did: the member, how many identifiers it replaced (0 when the member had been
    erased already) and the rows of the core's tables it changed."""

    member_id: str
    identifiers: int
    core_rows: int
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "identifiers": self.identifiers,
            "core_rows": self.core_rows,
            "at": self.at.isoformat(),
        }


def is_token(value: str) -> bool:
    return value.startswith(f"{TOKEN_PREFIX}_")


def _check_member_id(member_id: str) -> None:
    if not isinstance(member_id, str):
        raise InvalidValue(f"a member id is text (got {member_id!r})")
    check_text(member_id, "a member id", max_length=MAX_ID_LENGTH, allow_empty=False)


def _identifiers(stack: Runtime, ctx: FlowContext, member_id: str) -> tuple[str, list[Identity]]:
    if not stack.hooks.provides(membership.membership_member):
        raise InvalidValue("this stack has no membership block: it holds no members to export or erase")
    member = stack.hooks.call(membership.membership_member, ctx, member_id)
    if member is None:
        raise UnknownMember(f"no member {member_id!r}")
    held = stack.hooks.maybe(membership.membership_identifiers, ctx, member.id)
    found = list(held) if held is not None else list(member.identities)
    return member.id, found


#: The parts of a delivery address that single a person out; country, region and city do not.
_PERSONAL_ADDRESS_FIELDS = ("name", "phone", "line1")
#: A text shorter than this is no identifier (an initial): replacing it everywhere would damage other rows.
_SHORTEST = 3


def _address_texts(ctx: FlowContext, member_id: str) -> set[str]:
    """The names, phone numbers and street lines of the delivery addresses of the member's orders: these are
    replaced wherever they occur, like identities (a shipment, a carrier's label, an event)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            if "line1" in value and "country" in value:
                for field in _PERSONAL_ADDRESS_FIELDS:
                    text = value.get(field)
                    if isinstance(text, str) and len(text.strip()) >= _SHORTEST:
                        found.add(text)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    query = sa.select(core_tables.orders.c.details).where(core_tables.orders.c.member_id == member_id)
    for details in ctx.db.execute(query).scalars():
        walk(details)
    return found


def _core_tables(extra: Sequence[sa.Table]) -> list[sa.Table]:
    tables = [*core_tables.metadata.sorted_tables, *fusion_tables.metadata.sorted_tables, *extra]
    return [table for table in tables if table.name not in _SKIPPED_CORE_TABLES]


def erase_member(stack: Runtime, member_id: str, *, source: str, extra_tables: Sequence[sa.Table] = ()) -> Erasure:
    """Erase the member ``member_id`` (or the member they were merged into): see the module. ``source``
    says who asked (``"store:me"``, ``"admin:dpo@merchant"``) and is kept on the ``member.erased`` event.
    ``extra_tables`` are core tables of higher floors (the connectors') to pseudonymise too."""
    _check_member_id(member_id)
    check_text(source, "an erasure's source", max_length=200, allow_empty=False)
    with stack.context(flow="erase") as ctx:
        survivor, held = _identifiers(stack, ctx, member_id)
        live = [identity for identity in held if not is_token(identity.value)]
        replacements: dict[str, str] = {identity.value: ctx.ids.new_id(TOKEN_PREFIX) for identity in live}
        for text in _address_texts(ctx, survivor):
            if text not in replacements and not is_token(text):
                replacements[text] = ctx.ids.new_id(TOKEN_PREFIX)
        # The identity as channels write it in events ("phone:+86..."), too: the token keeps the kind.
        rows = 0
        if replacements:
            stack.hooks.each(lifecycle.stack_erase_member, ctx, survivor, replacements)
            rows = pseudonymise(ctx.db, _core_tables(extra_tables), replacements)
            ctx.record(
                "member.erased",
                {"member_id": survivor, "identifiers": len(replacements), "source": source},
                member_id=survivor,
            )
        return Erasure(member_id=survivor, identifiers=len(replacements), core_rows=rows, at=ctx.clock.now())


def _rows(ctx: FlowContext, table: sa.Table, column: str, value: str) -> list[dict[str, Any]]:
    query = sa.select(table).where(table.c[column] == value)
    order = list(table.primary_key.columns)
    return [_money(_plain(dict(row))) for row in ctx.db.execute(query.order_by(*order)).mappings().all()]


def _money(row: dict[str, Any]) -> dict[str, Any]:
    # Money is written as {"amount": minor units, "currency": ...} everywhere the stack answers in JSON.
    if "amount" in row and "currency" in row:
        amount, currency = row.pop("amount"), row.pop("currency")
        row["amount"] = None if amount is None else {"amount": amount, "currency": currency}
    return row


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def export_member(stack: Runtime, member_id: str) -> dict[str, Any]:
    """Everything the stack holds about the member, as one JSON document (GDPR art. 15 and 20, PIPL art.
    45): the member as membership knows them, every identity held, their orders with lines, the coupons in
    their wallet, every event recorded about them, their timeline and the fusion's rows about them."""
    _check_member_id(member_id)
    with stack.context(flow="read", read_only=True) as ctx:
        survivor, held = _identifiers(stack, ctx, member_id)
        member = stack.hooks.call(membership.membership_member, ctx, survivor)
        assert member is not None
        orders = _rows(ctx, core_tables.orders, "member_id", survivor)
        for order in orders:
            order["lines"] = _rows(ctx, core_tables.order_lines, "order_id", order["id"])
        coupons = [attrs.asdict(coupon) for coupon in member_coupons(stack.hooks, ctx, survivor)]
        fusion = {
            table.name: _rows(ctx, table, "member_id", survivor)
            for table in fusion_tables.metadata.sorted_tables
            if "member_id" in table.c and table.name not in (fusion_tables.timeline.name, fusion_tables.consents.name)
        }
        return {
            "member": {"id": member.id, "tier": member.tier, "points": member.points},
            "identities": [{"kind": identity.kind.value, "value": identity.value} for identity in held],
            "orders": orders,
            "coupons": _plain(coupons),
            "events": _rows(ctx, core_tables.outbox, "member_id", survivor),
            "timeline": _rows(ctx, fusion_tables.timeline, "member_id", survivor),
            "consents": [row.to_dict() for row in consent_history(ctx, survivor)],
            "fusion": fusion,
            "exported_at": ctx.clock.now().isoformat(),
        }
