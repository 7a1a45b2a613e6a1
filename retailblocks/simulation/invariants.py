"""The invariants a simulated day is checked against, from the core's tables and the blocks' own audits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import attrs
import sqlalchemy as sa

from retailblocks.assembly.stack import Stack
from retailblocks.events.dispatcher import dead_letters, undelivered
from retailblocks.flows.audit import audit_flows
from retailblocks.model import Order, OrderStatus, StockLevel
from retailblocks.storage.tables import orders, sagas

SOLD = {
    OrderStatus.PLACED,
    OrderStatus.PAID,
    OrderStatus.FULFILLED,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.REFUNDED,
}


@attrs.frozen
class Invariant:
    name: str
    ok: bool
    detail: str = ""


def stock_snapshot(stack: Stack) -> list[StockLevel]:
    with stack.context(flow="simulation", read_only=True) as ctx:
        return list(stack.hooks.inventory_levels(ctx, []))


def backordered_units(stack: Stack) -> Counter[str]:
    """Units sold on back-order and still waiting for stock, per SKU, from the orders' details."""
    waiting: Counter[str] = Counter()
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = connection.execute(sa.select(orders.c.details).where(orders.c.status.in_(["paid", "placed"]))).all()
        connection.rollback()
    for row in rows:
        for line in (row.details or {}).get("backordered", []):
            waiting[line["sku"]] += int(line["quantity"])
    return waiting


def check_invariants(
    stack: Stack, before: Sequence[StockLevel], orders: Sequence[Order], adjusted: Counter[str] | None = None
) -> list[Invariant]:
    """Check the day against the stock ``before`` it; ``adjusted`` is what operators added or removed."""
    after = stock_snapshot(stack)
    waiting = backordered_units(stack)
    checks = [
        _stock_conserved(before, after, orders, waiting, adjusted or Counter()),
        _nothing_held(after, waiting),
        _paid_orders_have_payments(stack, orders),
        _failed_orders_hold_no_money(stack, orders),
        _no_points_without_a_sale(stack, orders),
        _no_saga_left(stack),
        _events_delivered(stack),
    ]
    checks.extend(Invariant(finding.name, finding.ok, finding.detail) for finding in audit_flows(stack))
    with stack.context(flow="audit", read_only=True) as ctx:
        for block_id, finding in stack.hooks.stack_audit(ctx):
            checks.append(Invariant(f"{block_id}: {finding.name}", finding.ok, finding.detail))
    return checks


def _stock_conserved(
    before: Sequence[StockLevel],
    after: Sequence[StockLevel],
    orders: Sequence[Order],
    waiting: Counter[str],
    adjusted: Counter[str],
) -> Invariant:
    on_hand_before: Counter[str] = Counter()
    on_hand_after: Counter[str] = Counter()
    for level in before:
        on_hand_before[level.sku] += level.on_hand
    for level in after:
        on_hand_after[level.sku] += level.on_hand
    shipped: Counter[str] = Counter()
    for order in orders:
        if order.status in SOLD:
            for line in order.lines:
                # The simulation restocks every refunded unit.
                shipped[line.sku] += line.quantity - line.refunded_quantity
    shipped.subtract(waiting)  # sold, but still waiting for stock to arrive
    for sku, delta in adjusted.items():
        on_hand_before[sku] += delta  # operators' adjustments are not sales
    wrong = [
        f"{sku}: {on_hand_before[sku]} → {on_hand_after[sku]} but {shipped[sku]} sold"
        for sku in sorted(set(on_hand_before) | set(on_hand_after) | set(shipped))
        if on_hand_before[sku] - on_hand_after[sku] != shipped[sku]
    ]
    units = sum(shipped.values())
    return Invariant(
        "stock conserved: on hand fell by exactly the units sold and kept",
        not wrong,
        "; ".join(wrong[:5]) if wrong else f"{units} units left the shelves",
    )


def _nothing_held(after: Sequence[StockLevel], waiting: Counter[str]) -> Invariant:
    allocated: Counter[str] = Counter()
    for level in after:
        allocated[level.sku] += level.allocated
    held = [
        f"{sku}: {allocated[sku]} allocated but {waiting[sku]} units wait on back-order"
        for sku in sorted(set(allocated) | set(waiting))
        if allocated[sku] != waiting[sku]
    ] + [
        f"{level.sku}@{level.location}: reserved {level.reserved}, allocated {level.allocated}"
        for level in after
        if level.reserved
    ]
    negative = [f"{level.sku}@{level.location}: on hand {level.on_hand}" for level in after if level.on_hand < 0]
    problems = held + negative
    return Invariant(
        "no stock reserved without an order, none negative, allocations match orders",
        not problems,
        "; ".join(problems[:5]) if problems else f"{len(after)} stock positions clean",
    )


def _checkout_states(stack: Stack) -> dict[str, dict[str, object]]:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = connection.execute(sa.select(sagas.c.order_id, sagas.c.state).where(sagas.c.flow == "checkout")).all()
        connection.rollback()
    return {row.order_id: dict(row.state) for row in rows}


def _paid_orders_have_payments(stack: Stack, orders: Sequence[Order]) -> Invariant:
    states = _checkout_states(stack)
    wrong = []
    checked = 0
    for order in orders:
        if order.status not in SOLD or order.status is OrderStatus.PLACED:
            continue
        checked += 1
        authorized = sum(p.amount.amount for p in order.payments)
        captures: dict[str, int] = dict(states.get(order.id, {}).get("captures") or {})  # type: ignore[call-overload]
        captured = sum(int(v) for v in captures.values())
        if authorized != order.total.amount or captured != order.total.amount:
            wrong.append(f"{order.id}: total {order.total.amount}, authorized {authorized}, captured {captured}")
    return Invariant(
        "every paid order has its payment, captured in full",
        not wrong,
        "; ".join(wrong[:5]) if wrong else f"{checked} paid orders reconcile",
    )


def _failed_orders_hold_no_money(stack: Stack, orders: Sequence[Order]) -> Invariant:
    states = _checkout_states(stack)
    wrong = []
    for order in orders:
        if order.status is not OrderStatus.FAILED:
            continue
        state = states.get(order.id, {})
        if "capture" in (state.get("done") or []):  # type: ignore[operator]
            wrong.append(f"{order.id}: failed with a capture not undone")
    failed = sum(1 for o in orders if o.status is OrderStatus.FAILED)
    return Invariant(
        "no captured payment without an order or a refund",
        not wrong,
        "; ".join(wrong[:5]) if wrong else f"{failed} failed checkouts hold nothing",
    )


def _no_points_without_a_sale(stack: Stack, orders: Sequence[Order]) -> Invariant:
    undone = [o for o in orders if o.member_id and o.status in (OrderStatus.CANCELLED, OrderStatus.FAILED)]
    kept: list[str] = []
    with stack.context(flow="audit", read_only=True) as ctx:
        for order in undone:
            points = stack.hooks.membership_order_points(ctx, order.id)
            if points is None:
                return Invariant("no points for a cancelled or failed order", True, "no membership block to ask")
            if points:
                kept.append(f"{order.id} ({order.status.value}) kept {points} points")
    return Invariant(
        "no points for a cancelled or failed order",
        not kept,
        "; ".join(kept[:5]) or f"{len(undone)} cancelled or failed member orders hold none",
    )


def _no_saga_left(stack: Stack) -> Invariant:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        running = (
            connection.execute(
                sa.select(sa.func.count()).select_from(sagas).where(sagas.c.status.in_(["running", "stuck"]))
            ).scalar()
            or 0
        )
        connection.rollback()
    return Invariant("no flow left half-way", running == 0, f"{running} running or stuck")


def _events_delivered(stack: Stack) -> Invariant:
    pending = undelivered(stack)
    dead = len(dead_letters(stack))
    return Invariant("every event delivered", pending == 0 and dead == 0, f"{pending} undelivered, {dead} dead letters")
