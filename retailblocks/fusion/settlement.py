"""Partner settlement: who owes whom for one period, line by line, rebuilt from the ledgers every time.

Four kinds of line: a discount a partner funded on one of the merchant's orders (the partner owes the
merchant its part, which for a co-funded promotion is its share of the adjustment); a *clawback*, when
the partner's refund policy is ``clawback`` and such an order was refunded (the merchant credits back
the partner's part in proportion to what the refund returned); points exchanged with the partner's
programme through loyalty's clearing account (points brought in: the partner owes their value; points
sent out: the merchant owes it); and an order a marketplace partner collected on its channel (the
marketplace owes what the buyer paid, less what was refunded).
Amounts are signed from the merchant's side: positive, the partner owes the merchant.

Discounts and marketplace sales are dated when the order was placed; a clawback when its refund
completed, one line per refund, so a refund in a later period is settled in that period.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.errors import InvalidValue, suggestion
from retailblocks.events.dispatcher import dispatch
from retailblocks.flows.orders import list_orders
from retailblocks.flows.saga import SagaStatus
from retailblocks.flows.state import FlowKind, RefundState, load_state
from retailblocks.fusion.profile import NOT_SALES
from retailblocks.hookspecs import membership
from retailblocks.manifest import Partner, RefundPolicy
from retailblocks.model import AdjustmentTarget, Money, Order, PriceAdjustment
from retailblocks.model.channel import MARKETPLACE_PAYMENT_METHOD
from retailblocks.model.money import allocate_integer
from retailblocks.storage.tables import sagas

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime


@attrs.frozen
class SettlementLine:
    kind: str  # discount | clawback | points_in | points_out | marketplace_sale
    reference: str  # the order id, or the points journal id
    member_id: str | None
    at: datetime
    amount: Money
    detail: str


@attrs.frozen
class Settlement:
    partner: Partner
    start: date
    end: date
    lines: tuple[SettlementLine, ...]

    def total(self, kind: str | None = None) -> int:
        return sum(line.amount.amount for line in self.lines if kind is None or line.kind == kind)

    def to_data(self, currency: str, money: Callable[[Money], object] = str) -> dict[str, object]:
        """Plain data; ``money`` renders each amount (the CLI passes its one JSON shape of money)."""
        owed_by_partner = sum(line.amount.amount for line in self.lines if line.amount.amount > 0)
        owed_to_partner = -sum(line.amount.amount for line in self.lines if line.amount.amount < 0)
        return {
            "partner": self.partner.id,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "partner_owes_merchant": money(Money(owed_by_partner, currency)),
            "merchant_owes_partner": money(Money(owed_to_partner, currency)),
            "net": money(Money(self.total(), currency)),
            "discounts": money(Money(self.total("discount"), currency)),
            "clawbacks": money(Money(self.total("clawback"), currency)),
            "points": money(Money(self.total("points_in") + self.total("points_out"), currency)),
            "marketplace_sales": money(Money(self.total("marketplace_sale"), currency)),
            "lines": [
                {
                    "kind": line.kind,
                    "reference": line.reference,
                    "member_id": line.member_id,
                    "at": line.at.isoformat(),
                    "amount": money(line.amount),
                    "detail": line.detail,
                }
                for line in self.lines
            ],
        }


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """``[start 00:00, end + 1 day 00:00)`` in UTC: both dates are included whole."""
    if end < start:
        raise InvalidValue(f"the period ends ({end}) before it starts ({start})")
    return datetime.combine(start, time(), UTC), datetime.combine(end + timedelta(days=1), time(), UTC)


def find_partner(stack: Runtime, partner_id: str) -> Partner:
    partners = {p.id: p for p in stack.manifest.partners}
    if partner_id not in partners:
        listed = ", ".join(sorted(partners)) or "none; declare them under 'partners:' in the manifest"
        raise InvalidValue(
            f"unknown partner {partner_id!r}{suggestion(partner_id, partners)} (the manifest's partners: {listed})"
        )
    return partners[partner_id]


def _marketplace_sale(order: Order, placed_at: datetime) -> SettlementLine | None:
    """What the marketplace owes for ``order``: what it collected, less what went back to the buyer."""
    collected = sum(p.amount.amount for p in order.payments if p.method == MARKETPLACE_PAYMENT_METHOD)
    if not collected:
        return None
    refunded = min(collected, order.refunded.amount if order.refunded is not None else 0)
    detail = ", ".join(p.reference for p in order.payments if p.method == MARKETPLACE_PAYMENT_METHOD)
    return SettlementLine(
        kind="marketplace_sale",
        reference=order.id,
        member_id=order.member_id,
        at=placed_at,
        amount=Money(collected - refunded, order.currency),
        detail=f"marketplace order {detail}" + (f", {Money(refunded, order.currency)} refunded" if refunded else ""),
    )


@attrs.frozen
class Refund:
    """One completed refund of an order: when it completed and the units it returned, by line index."""

    id: str
    order_id: str
    at: datetime
    units: Mapping[int, int]


def completed_refunds(engine: sa.Engine) -> dict[str, list[Refund]]:
    """Every completed refund, by order, oldest first (ties by id, so the order is the same every time).

    A refund counts once its saga completed: one still running may yet be undone, and one undone
    returned nothing.
    """
    with engine.connect() as connection:
        connection.info["read_only"] = True
        refunds = refunds_of(connection)
        connection.rollback()
    return refunds


def refunds_of(connection: sa.Connection, order_id: str | None = None) -> dict[str, list[Refund]]:
    """The completed refunds of ``order_id`` (of every order when None), by order, oldest first."""
    query = (
        sa.select(sagas.c.id, sagas.c.order_id, sagas.c.state, sagas.c.updated_at)
        .where(sagas.c.flow == FlowKind.REFUND.value, sagas.c.status == SagaStatus.COMPLETED.value)
        .order_by(sagas.c.updated_at, sagas.c.id)
    )
    if order_id is not None:
        query = query.where(sagas.c.order_id == order_id)
    rows = connection.execute(query).all()
    refunds: dict[str, list[Refund]] = {}
    for row in rows:
        state = load_state(RefundState, row.state)
        units = {line.index: line.quantity for line in state.lines_refunded}
        refunds.setdefault(row.order_id, []).append(Refund(row.id, row.order_id, as_utc(row.updated_at), units))
    return refunds


def clawed_back(order: Order, partner_id: str, refunded_units: Mapping[int, int]) -> int:
    """What of the partner's part of ``order``'s discounts is credited back once ``refunded_units`` (by
    line index, counted from the first refund) have been refunded.

    The partner's part of each adjustment is spread over the adjustment's lines (largest remainder), and
    each line gives back the floor of its part × refunded units / units: computed over the refunds so
    far rather than added up refund by refund, so no unit is lost to rounding and a fully refunded
    order gives back exactly what was billed. A shipping discount comes back with the last unit, as the
    delivery charge does.
    """
    quantities = {line.index: line.quantity for line in order.lines}
    fully = all(refunded_units.get(index, 0) >= quantity for index, quantity in quantities.items())
    total = 0
    for adjustment in order.adjustments:
        part = adjustment.funded_by_party(partner_id).amount
        if not part:
            continue
        if adjustment.target is AdjustmentTarget.SHIPPING or not adjustment.line_amounts:
            total += part if fully else 0
            continue
        indexes = [index for index, _ in adjustment.line_amounts]
        spread = allocate_integer(part, [share.amount for _, share in adjustment.line_amounts])
        for index, line_part in zip(indexes, spread, strict=True):
            quantity = quantities.get(index, 0)
            if quantity:
                total += line_part * min(refunded_units.get(index, 0), quantity) // quantity
    return total


def _clawbacks(order: Order, partner_id: str, refunds: Sequence[Refund]) -> list[SettlementLine]:
    """One line per refund that credited the partner back: what it added to what was clawed back before."""
    lines: list[SettlementLine] = []
    so_far: dict[int, int] = {}
    before = 0
    for refund in refunds:
        for index, quantity in refund.units.items():
            so_far[index] = so_far.get(index, 0) + quantity
        now = clawed_back(order, partner_id, so_far)
        if now > before:
            returned = ", ".join(f"line {index} × {quantity}" for index, quantity in sorted(refund.units.items()))
            lines.append(
                SettlementLine(
                    kind="clawback",
                    reference=f"{order.id}/{refund.id}",
                    member_id=order.member_id,
                    at=refund.at,
                    amount=Money(before - now, order.currency),
                    detail=f"refund of {returned} on order {order.id}",
                )
            )
        before = now
    return lines


def _funded_detail(adjustment: PriceAdjustment, part: Money) -> str:
    text = adjustment.promotion_id + (f" ({adjustment.coupon})" if adjustment.coupon else "")
    return text + (f": {part} of {adjustment.amount}" if part != adjustment.amount else "")


def collected_by(stack: Runtime, partner: Partner) -> frozenset[str]:
    """The channels whose orders the partner (a marketplace) collects payment for."""
    return frozenset(channel.id for channel in stack.channels.values() if channel.settles_with == partner.id)


def order_settlement_lines(
    order: Order, partner: Partner, collects_for: Collection[str], refunds: Sequence[Refund]
) -> list[SettlementLine]:
    """Every line ``order`` makes with ``partner``, whatever its date: the funded discount and marketplace
    sale (dated when it was placed) and, under ``clawback``, one line per completed refund that credited
    the partner back (dated when the refund completed). None for an order that never became a sale."""
    if order.status in NOT_SALES:
        return []
    placed_at = as_utc(order.created_at)
    lines: list[SettlementLine] = []
    if partner.on_refund is RefundPolicy.CLAWBACK and refunds:
        lines += _clawbacks(order, partner.id, refunds)
    if order.channel in collects_for:
        sale = _marketplace_sale(order, placed_at)
        if sale is not None:
            lines.append(sale)
    funded = [(a, a.funded_by_party(partner.id)) for a in order.adjustments]
    funded = [(a, part) for a, part in funded if part.amount]
    if funded:
        lines.append(
            SettlementLine(
                kind="discount",
                reference=order.id,
                member_id=order.member_id,
                at=placed_at,
                amount=Money(sum(part.amount for _, part in funded), order.currency),
                detail="; ".join(_funded_detail(a, part) for a, part in funded),
            )
        )
    return lines


def settle(stack: Runtime, partner_id: str, start: date, end: date, *, kept: bool = True) -> Settlement:
    """The settlement with ``partner_id`` for orders placed, refunds completed and points exchanged from
    ``start`` to ``end``.

    Cancelled orders are left out: cancelling gives the coupon back, so nobody funded anything. With the
    partner's ``on_refund: keep`` refunds leave the discount standing, as the shopper kept the price
    they were charged on what they kept; with ``clawback`` each refund credits the partner back.

    With ``kept``, pending events are delivered first and the orders' lines are read from the settlement
    lines kept as they arrive (:mod:`retailblocks.fusion.aggregates`), one period's by index; they are
    computed from every order when those are not built for this manifest, or without ``kept`` (a caller
    inside a transaction of its own, which delivering events would wait on).
    """
    from retailblocks.fusion.aggregates import kept_settlement_lines

    partner = find_partner(stack, partner_id)
    since, until = period(start, end)
    lines = None
    if kept:
        dispatch(stack)
        lines = kept_settlement_lines(stack, partner, since, until)
    if lines is None:
        lines = raw_settlement_lines(stack, partner, since, until)
    with stack.context(flow="settlement", read_only=True) as ctx:
        movements = stack.hooks.maybe(membership.membership_partner_movements, ctx, partner.id, since, until) or ()
    for movement in movements:
        brought_in = movement.points > 0
        lines.append(
            SettlementLine(
                kind="points_in" if brought_in else "points_out",
                reference=movement.journal_id,
                member_id=movement.member_id,
                at=as_utc(movement.at),
                amount=movement.value if brought_in else -movement.value,
                detail=f"{abs(movement.points)} points {'in for' if brought_in else 'out as'} "
                f"{movement.partner_points} {partner.id} points",
            )
        )
    lines.sort(key=lambda line: (line.at, line.kind, line.reference))
    return Settlement(partner, start, end, tuple(lines))


def raw_settlement_lines(stack: Runtime, partner: Partner, since: datetime, until: datetime) -> list[SettlementLine]:
    """The orders' lines with ``partner`` dated in ``[since, until)``, computed from every order."""
    collects_for = collected_by(stack, partner)
    refunds = completed_refunds(stack.engine) if partner.on_refund is RefundPolicy.CLAWBACK else {}
    return [
        line
        for order in list_orders(stack.engine)
        for line in order_settlement_lines(order, partner, collects_for, refunds.get(order.id, ()))
        if since <= line.at < until
    ]
