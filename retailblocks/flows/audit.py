"""The core's audit of its flows against what the blocks say happened: money, stock, flows and events.

Each check compares two records kept by different parties — the orders the core wrote and the ledgers the
blocks wrote — so a flow that half-applied (an order marked refunded whose card was never refunded, a unit
counted twice) shows up even when every record is consistent within itself. Orders with a flow still in
progress (a live lease) are left out of the money and stock checks: their records are allowed to differ
until the flow ends.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.context import AuditFinding, FlowContext
from retailblocks.flows.orders import list_orders
from retailblocks.flows.saga import SagaStatus
from retailblocks.flows.state import FlowKind, RefundState, load_state
from retailblocks.hookspecs import inventory, payment
from retailblocks.model import Order, OrderStatus
from retailblocks.storage.tables import outbox, sagas

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

#: Order events a flow records once per order, whatever happens.
ONCE_PER_ORDER = (
    "order.created",
    "order.placed",
    "order.paid",
    "order.completed",
    "order.cancelled",
    "order.failed",
    "order.rejected",
)
#: Orders whose payment is settled: the payment blocks keep the total less what was refunded.
_SETTLED = {OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}
#: Orders whose payment was fully undone: the payment blocks keep nothing.
_UNDONE = {OrderStatus.CANCELLED, OrderStatus.FAILED}
_SHOWN = 5


def audit_flows(stack: Runtime) -> list[AuditFinding]:
    """The core's findings: each names an invariant, whether it holds, and the first offenders."""
    flows = _flows(stack)
    busy = {order_id for order_id, rows in flows.items() if any(_in_flight(stack, row) for row in rows)}
    orders = [order for order in list_orders(stack.engine) if order.id not in busy]
    with stack.context(flow="audit", read_only=True) as ctx:
        return [
            *_money(stack, ctx, orders),
            _units(stack, ctx, orders, flows),
            _flows_settled(stack, flows),
            _events_once(stack, flows),
        ]


def _flows(stack: Runtime) -> dict[str, list[Any]]:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = connection.execute(
            sa.select(
                sagas.c.id,
                sagas.c.flow,
                sagas.c.order_id,
                sagas.c.status,
                sagas.c.error,
                sagas.c.state,
                sagas.c.lease_until,
                sagas.c.step,
            )
        ).all()
        connection.rollback()
    by_order: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_order[row.order_id].append(row)
    return by_order


def _in_flight(stack: Runtime, row: Any) -> bool:
    return row.status == SagaStatus.RUNNING.value and as_utc(row.lease_until) >= stack.lease_clock.now()


def _money(stack: Runtime, ctx: FlowContext, orders: Sequence[Order]) -> list[AuditFinding]:
    refund_wrong: list[str] = []
    kept_wrong: list[str] = []
    unchecked: set[str] = set()
    for order in orders:
        refunded = 0
        kept = 0
        known = True
        for authorization in order.payments:
            balance = stack.hooks.maybe(payment.payment_balance, ctx, authorization)
            if balance is None:
                unchecked.add(authorization.block)
                known = False
                break
            refunded += balance.refunded.amount
            kept += balance.captured.amount - balance.refunded.amount
        if not known:
            continue
        said = order.refunded.amount if order.refunded is not None else 0
        if order.status is not OrderStatus.FAILED and refunded != said:
            refund_wrong.append(f"{order.id}: the order says {said} refunded, the payment blocks refunded {refunded}")
        expected = order.total.amount - said if order.status in _SETTLED else 0 if order.status in _UNDONE else None
        if expected is not None and kept != expected:
            kept_wrong.append(
                f"{order.id} ({order.status.value}): payment blocks keep {kept}, the order says {expected}"
            )
    note = f"; not checked for {', '.join(sorted(unchecked))} (no payment_balance)" if unchecked else ""
    return [
        AuditFinding(
            "every refund an order records was paid out by its payment blocks, and no more",
            not refund_wrong,
            ("; ".join(refund_wrong[:_SHOWN]) if refund_wrong else f"{len(orders)} orders reconcile") + note,
        ),
        AuditFinding(
            "payment blocks keep exactly what the orders say was paid and not refunded",
            not kept_wrong,
            ("; ".join(kept_wrong[:_SHOWN]) if kept_wrong else f"{len(orders)} orders reconcile") + note,
        ),
    ]


def _units(stack: Runtime, ctx: FlowContext, orders: Sequence[Order], flows: dict[str, list[Any]]) -> AuditFinding:
    name = "every unit a refund or cancel restocked came back to stock, once"
    wrong: list[str] = []
    checked = 0
    for order in orders:
        expected: Counter[str] = Counter()
        finished = [
            row
            for row in flows.get(order.id, ())
            if row.flow in (FlowKind.REFUND, FlowKind.CANCEL) and row.status == SagaStatus.COMPLETED.value
        ]
        if not finished:
            continue
        for row in finished:
            if row.flow == FlowKind.CANCEL:
                for line in order.lines:
                    expected[line.sku] += line.quantity
                continue
            refund = load_state(RefundState, row.state)
            if refund.restock:
                for unit in refund.units:
                    expected[unit.sku] += unit.quantity
        returned = stack.hooks.maybe(inventory.inventory_returned, ctx, order.id)
        if returned is None:
            return AuditFinding(name, True, "not checked: the inventory block has no inventory_returned")
        checked += 1
        if dict(returned) != {sku: units for sku, units in expected.items() if units}:
            wrong.append(f"{order.id}: restock asked {dict(sorted(expected.items()))}, stock got {dict(returned)}")
    return AuditFinding(name, not wrong, "; ".join(wrong[:_SHOWN]) if wrong else f"{checked} orders reconcile")


def _flows_settled(stack: Runtime, flows: dict[str, list[Any]]) -> AuditFinding:
    now = stack.lease_clock.now()
    problems: list[str] = []
    for rows in flows.values():
        for row in rows:
            if row.status == SagaStatus.STUCK.value:
                problems.append(f"{row.flow} {row.id} of {row.order_id} stuck after {row.step}: {row.error}")
            elif row.status == SagaStatus.RUNNING.value and as_utc(row.lease_until) < now:
                problems.append(f"{row.flow} {row.id} of {row.order_id} running with no live owner (at {row.step})")
    return AuditFinding(
        "no flow stuck, none running without a live owner",
        not problems,
        "; ".join(problems[:_SHOWN]) if problems else f"{sum(len(r) for r in flows.values())} flows settled",
    )


def _events_once(stack: Runtime, flows: dict[str, list[Any]]) -> AuditFinding:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = connection.execute(
            sa.select(outbox.c.order_id, outbox.c.type, sa.func.count().label("n"))
            .where(outbox.c.order_id.is_not(None), outbox.c.type.in_([*ONCE_PER_ORDER, "order.refunded"]))
            .group_by(outbox.c.order_id, outbox.c.type)
        ).all()
        connection.rollback()
    refunds = Counter(
        order_id
        for order_id, saga_rows in flows.items()
        for row in saga_rows
        if row.flow == FlowKind.REFUND and row.status == SagaStatus.COMPLETED.value
    )
    wrong = [
        f"{row.order_id}: {row.type} ×{row.n}"
        for row in rows
        if (row.n != refunds[row.order_id] if row.type == "order.refunded" else row.n > 1)
    ]
    return AuditFinding(
        "every order event recorded once (order.refunded once per refund)",
        not wrong,
        "; ".join(wrong[:_SHOWN]) if wrong else f"{len(rows)} order events checked",
    )


__all__ = ["ONCE_PER_ORDER", "audit_flows"]
