"""Partner settlement: who owes whom for one period, line by line, rebuilt from the ledgers every time.

Three kinds of line: a discount a partner funded on one of the merchant's orders (the partner owes the
merchant that amount); points exchanged with the partner's programme through loyalty's clearing
account (points brought in: the partner owes their value; points sent out: the merchant owes it); and an
order a marketplace partner collected on its channel (the marketplace owes what the buyer paid, less
what was refunded).
Amounts are signed from the merchant's side: positive, the partner owes the merchant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import attrs

from retailblocks.clock import as_utc
from retailblocks.errors import InvalidValue, suggestion
from retailblocks.flows.orders import list_orders
from retailblocks.fusion.profile import NOT_SALES
from retailblocks.hookspecs import membership
from retailblocks.manifest import Partner
from retailblocks.model import Money, Order
from retailblocks.model.channel import MARKETPLACE_PAYMENT_METHOD

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime


@attrs.frozen
class SettlementLine:
    kind: str  # discount | points_in | points_out | marketplace_sale
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


def settle(stack: Runtime, partner_id: str, start: date, end: date) -> Settlement:
    """The settlement with ``partner_id`` for orders placed and points exchanged from ``start`` to ``end``.

    Cancelled orders are left out: cancelling gives the coupon back, so nobody funded anything. Refunds
    leave the discount standing, as the shopper kept the price they were charged on what they kept.
    """
    partner = find_partner(stack, partner_id)
    since, until = period(start, end)
    collects_for = {channel.id for channel in stack.channels.values() if channel.settles_with == partner.id}
    lines: list[SettlementLine] = []
    for order in list_orders(stack.engine):
        placed_at = as_utc(order.created_at)
        if order.status in NOT_SALES or not since <= placed_at < until:
            continue
        if order.channel in collects_for:
            sale = _marketplace_sale(order, placed_at)
            if sale is not None:
                lines.append(sale)
        funded = [a for a in order.adjustments if a.funder == partner.id]
        if funded:
            lines.append(
                SettlementLine(
                    kind="discount",
                    reference=order.id,
                    member_id=order.member_id,
                    at=placed_at,
                    amount=Money(sum(a.amount.amount for a in funded), order.currency),
                    detail="; ".join(f"{a.promotion_id}" + (f" ({a.coupon})" if a.coupon else "") for a in funded),
                )
            )
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
