"""The invariants a simulated day is checked against, from the core's tables and the blocks' own audits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.events.dispatcher import dead_letters, undelivered
from retailblocks.events.positions import behind
from retailblocks.flows.audit import audit_flows
from retailblocks.flows.capabilities import block_findings
from retailblocks.hookspecs import inventory, lifecycle, membership
from retailblocks.model import Order, OrderStatus, StockLevel
from retailblocks.stack import Stack
from retailblocks.storage.tables import event_failures, orders, outbox, sagas

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


#: Stock events that change what is on hand, as the inventory block records them in the outbox.
ON_HAND_EVENTS = ("stock.fulfilled", "stock.returned", "stock.adjusted")


@attrs.frozen
class Baseline:
    """The stack as a run found it: its stock, and the last event recorded before it began."""

    levels: list[StockLevel]
    last_event: int


def stock_snapshot(stack: Stack) -> list[StockLevel]:
    with stack.context(flow="simulation", read_only=True) as ctx:
        return list(stack.hooks.call(inventory.inventory_levels, ctx, []))


def last_event_id(stack: Stack) -> int:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        newest = connection.execute(sa.select(sa.func.max(outbox.c.id))).scalar()
        connection.rollback()
    return int(newest or 0)


def one_snapshot(connection: sa.Connection) -> None:
    """Make the transaction just begun on ``connection`` read one snapshot throughout.

    SQLite's read transactions do already; PostgreSQL's default (read committed) gives each statement its
    own, and a check that reads two tables while another process commits between them would see half a
    checkout. Must come before the transaction's first query."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def baseline(stack: Stack) -> Baseline:
    """Stock and the outbox's position read in one snapshot, so they describe the same moment."""
    with stack.context(flow="simulation", read_only=True) as ctx:
        one_snapshot(ctx.db)
        levels = list(stack.hooks.call(inventory.inventory_levels, ctx, []))
        newest = ctx.db.execute(sa.select(sa.func.max(outbox.c.id))).scalar()
    return Baseline(levels, int(newest or 0))


def backordered_units(stack: Stack, among: set[str] | None = None) -> Counter[str]:
    """Units sold on back-order and still waiting for stock, per SKU, from the orders' details (of the
    orders ``among``, when given)."""
    waiting: Counter[str] = Counter()
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        query = sa.select(orders.c.id, orders.c.details).where(orders.c.status.in_(["paid", "placed"]))
        rows = [row for row in connection.execute(query).all() if among is None or row.id in among]
        connection.rollback()
    for row in rows:
        for line in (row.details or {}).get("backordered", []):
            waiting[line["sku"]] += int(line["quantity"])
    return waiting


@attrs.frozen
class Others:
    """What happened to stock during a run that was not the run's doing, from the outbox's stock events."""

    #: Units other orders took off the shelves (positive) or put back (negative), per SKU.
    on_hand_taken: Counter[str]
    #: Units anyone adjusted outside an order, per SKU (the run's own write-offs included).
    adjusted: Counter[str]
    #: SKUs other orders reserved, allocated, shipped or returned during the run.
    skus: set[str]
    orders: set[str]


def end_of_run(stack: Stack, since: int, own: set[str]) -> tuple[Baseline, Others]:
    """The stack's stock now, and the stock events since ``since`` that are not of the orders ``own``, read in
    one snapshot: an event and the stock it moved are both seen, or neither."""
    with stack.context(flow="simulation", read_only=True) as ctx:
        one_snapshot(ctx.db)
        levels = list(stack.hooks.call(inventory.inventory_levels, ctx, []))
        newest = int(ctx.db.execute(sa.select(sa.func.max(outbox.c.id))).scalar() or 0)
        rows = ctx.db.execute(
            sa.select(outbox.c.type, outbox.c.order_id, outbox.c.payload).where(
                outbox.c.id > since, outbox.c.id <= newest, outbox.c.type.startswith("stock.")
            )
        ).all()
    return Baseline(levels, newest), others_in(rows, own)


def others_in(rows: Sequence[Any], own: set[str]) -> Others:
    """What the outbox's stock events ``rows`` say other orders and operators did to stock."""
    taken: Counter[str] = Counter()
    adjusted: Counter[str] = Counter()
    skus: set[str] = set()
    order_ids: set[str] = set()
    for row in rows:
        payload = row.payload if isinstance(row.payload, dict) else {}
        if row.type == "stock.adjusted":
            adjusted[str(payload["sku"])] += int(payload["delta"])
            continue
        if row.order_id is None or row.order_id in own:
            continue  # the run's own, or no order's (the run's abandoned basket, maintenance)
        order_ids.add(row.order_id)
        for line in payload.get("lines", []):
            sku = str(line["sku"])
            skus.add(sku)
            if row.type == "stock.fulfilled":
                taken[sku] += int(line["quantity"])
            elif row.type == "stock.returned":
                taken[sku] -= int(line.get("restocked", 0))
    return Others(taken, adjusted, skus, order_ids)


def check_invariants(
    stack: Stack,
    before: Sequence[StockLevel] | Baseline,
    orders: Sequence[Order],
    adjusted: Counter[str] | None = None,
    *,
    events_up_to: int | None = None,
) -> list[Invariant]:
    """Check the day against the stock ``before`` it; ``adjusted`` is what operators added or removed.

    With a :class:`Baseline`, the checks are relative to it and about ``orders`` alone: other processes'
    orders and earlier runs' are told apart by the outbox's stock events since the baseline, and only
    ``orders``' flows must be settled. ``events_up_to`` limits "every event delivered" to the events up to
    that id (the end of the run); other processes' later events are theirs to deliver."""
    if not isinstance(before, Baseline):
        after = stock_snapshot(stack)
        waiting = backordered_units(stack)
        stock = [
            _stock_conserved(before, after, orders, waiting, adjusted or Counter()),
            _nothing_held(after, waiting),
        ]
        own: set[str] | None = None
    else:
        own = {order.id for order in orders}
        end, others = end_of_run(stack, before.last_event, own)
        # Adjustments are read from the outbox when the inventory block records them (other operators'
        # included); the run's own tally stands in for a block that does not.
        moved = others.adjusted if others.adjusted else (adjusted or Counter())
        stock = [
            _stock_conserved(before.levels, end.levels, orders, backordered_units(stack, own), moved, others),
            _nothing_held(end.levels, backordered_units(stack), others.skus),
        ]
    checks = [
        *stock,
        _paid_orders_have_payments(stack, orders),
        _failed_orders_hold_no_money(stack, orders),
        _no_points_without_a_sale(stack, orders),
        _no_saga_left(stack, own),
        _events_delivered(stack, events_up_to, before.last_event if isinstance(before, Baseline) else 0),
    ]
    checks.extend(Invariant(finding.name, finding.ok, finding.detail) for finding in audit_flows(stack))
    with stack.context(flow="audit", read_only=True) as ctx:
        # The blocks compare tables with each other (allocated stock with the orders holding it): in one
        # snapshot, another process's checkout is seen whole or not at all.
        one_snapshot(ctx.db)
        for block_id, finding in block_findings(stack.hooks, ctx):
            checks.append(Invariant(f"{block_id}: {finding.name}", finding.ok, finding.detail))
    return checks


def _stock_conserved(
    before: Sequence[StockLevel],
    after: Sequence[StockLevel],
    orders: Sequence[Order],
    waiting: Counter[str],
    adjusted: Counter[str],
    others: Others | None = None,
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
    if others is not None:
        # Other orders shipped and restocked meanwhile: the outbox's stock events say how much, per SKU.
        on_hand_before.subtract(others.on_hand_taken)
    wrong = [
        f"{sku}: {on_hand_before[sku]} → {on_hand_after[sku]} but {shipped[sku]} sold"
        for sku in sorted(set(on_hand_before) | set(on_hand_after) | set(shipped))
        if on_hand_before[sku] - on_hand_after[sku] != shipped[sku]
    ]
    units = sum(shipped.values())
    detail = f"{units} units left the shelves"
    if others is not None and others.orders:
        detail += f"; {len(others.orders)} other orders moved stock meanwhile, counted from their events"
    return Invariant(
        "stock conserved: on hand fell by exactly the units sold and kept",
        not wrong,
        "; ".join(wrong[:5]) if wrong else detail,
    )


def _nothing_held(after: Sequence[StockLevel], waiting: Counter[str], busy: set[str] | None = None) -> Invariant:
    """Nothing reserved, allocations match the back-orders, nothing negative. SKUs in ``busy`` had other
    processes' checkouts in flight during the run: what they reserve and allocate is not checked."""
    busy = busy or set()
    allocated: Counter[str] = Counter()
    for level in after:
        allocated[level.sku] += level.allocated
    held = [
        f"{sku}: {allocated[sku]} allocated but {waiting[sku]} units wait on back-order"
        for sku in sorted(set(allocated) | set(waiting))
        if allocated[sku] != waiting[sku] and sku not in busy
    ] + [
        f"{level.sku}@{level.location}: reserved {level.reserved}, allocated {level.allocated}"
        for level in after
        if level.reserved and level.sku not in busy
    ]
    negative = [f"{level.sku}@{level.location}: on hand {level.on_hand}" for level in after if level.on_hand < 0]
    problems = held + negative
    detail = f"{len(after)} stock positions clean"
    if busy:
        detail += f" ({len(busy)} SKUs other orders were using: only checked for negative stock)"
    return Invariant(
        "no stock reserved without an order, none negative, allocations match orders",
        not problems,
        "; ".join(problems[:5]) if problems else detail,
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
            points = stack.hooks.maybe(membership.membership_order_points, ctx, order.id)
            if points is None:
                return Invariant("no points for a cancelled or failed order", True, "no membership block to ask")
            if points:
                kept.append(f"{order.id} ({order.status.value}) kept {points} points")
    return Invariant(
        "no points for a cancelled or failed order",
        not kept,
        "; ".join(kept[:5]) or f"{len(undone)} cancelled or failed member orders hold none",
    )


def _no_saga_left(stack: Stack, own: set[str] | None = None) -> Invariant:
    """No flow running or stuck (of the orders ``own``, when given: other processes' flows run on)."""
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = connection.execute(sa.select(sagas.c.order_id).where(sagas.c.status.in_(["running", "stuck"]))).all()
        connection.rollback()
    running = sum(1 for row in rows if own is None or row.order_id in own)
    return Invariant("no flow left half-way", running == 0, f"{running} running or stuck")


def _events_delivered(stack: Stack, up_to: int | None = None, since: int = 0) -> Invariant:
    if up_to is None:
        pending = undelivered(stack)
        dead = len(dead_letters(stack))
    else:
        pending, dead = _undelivered_up_to(stack, up_to, since)
    return Invariant("every event delivered", pending == 0 and dead == 0, f"{pending} undelivered, {dead} dead letters")


def _undelivered_up_to(stack: Stack, up_to: int, since: int) -> tuple[int, int]:
    """Deliveries of the events up to ``up_to`` still owed to some subscriber, and how many of those after
    ``since`` are parked or dead (earlier ones' failures were there before the run)."""
    subscribers = stack.hooks.implementers(lifecycle.stack_event)
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        owed = sum(behind(connection, subscriber, outbox.c.id <= up_to) for subscriber in subscribers)
        failures = connection.execute(
            sa.select(event_failures.c.dead).where(
                event_failures.c.event_id > since,
                event_failures.c.event_id <= up_to,
                event_failures.c.delivered_at.is_(None),
            )
        ).all()
        connection.rollback()
    return owed + len(failures), sum(1 for row in failures if row.dead)
