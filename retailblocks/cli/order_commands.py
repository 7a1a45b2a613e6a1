"""``blocks checkout``, ``cancel``, ``refund``, ``orders``, ``recover`` and ``events``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from retailblocks.cli.support import (
    console,
    fail,
    json_option,
    json_text,
    manifest_option,
    money_data,
    open_stack,
    print_json,
    print_table,
    whole_number,
)
from retailblocks.errors import BusinessRejection, InvalidValue

if TYPE_CHECKING:
    from retailblocks.model import Order, PaymentAuthorization, PaymentBalance
    from retailblocks.stack import Stack

#: The order statuses ``--status`` takes, written out so that reading ``--help`` imports no model
#: (a test keeps them equal to OrderStatus).
ORDER_STATUSES = ("pending", "failed", "placed", "paid", "fulfilled", "cancelled", "partially_refunded", "refunded")


def order_summary(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "channel": order.channel,
        "status": order.status.value,
        "member": order.member_id,
        "subtotal": money_data(order.subtotal),
        "discount": money_data(order.discount),
        "shipping": money_data(order.shipping),
        "total": money_data(order.total),
        "refunded": money_data(order.refunded) if order.refunded else None,
        "failure": order.failure,
    }


def payment_balances(stack: Stack, order: Order) -> dict[str, PaymentBalance]:
    """What each payment block holds of the order's payments now, by authorization id (those it says)."""
    from retailblocks.hookspecs import payment

    found: dict[str, PaymentBalance] = {}
    with stack.context(None, flow="report", read_only=True) as ctx:
        for paid in order.payments:
            balance = stack.hooks.maybe(payment.payment_balance, ctx, paid)
            if balance is not None:
                found[paid.id] = balance
    return found


def payment_data(payment: PaymentAuthorization, balance: PaymentBalance | None) -> dict[str, Any]:
    """A payment as the payment block reports it now; what the order row stored when the block does not say."""
    return {
        "id": payment.id,
        "block": payment.block,
        "method": payment.method,
        "reference": payment.reference,
        "amount": money_data(payment.amount),
        "status": (balance.status if balance else payment.status).value,
        "captured": money_data(balance.captured) if balance else None,
        "refunded": money_data(balance.refunded) if balance else None,
    }


def show_order(
    order: Order,
    as_json: bool,
    balances: dict[str, PaymentBalance] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    from retailblocks.model.serialize import to_data

    balances = balances or {}
    if as_json:
        data = to_data(order)
        data["payments"] = [payment_data(p, balances.get(p.id)) for p in order.payments]
        print_json(data | (extra or {}))
        return
    summary = order_summary(order)
    console.print(
        f"[bold]order {escape(order.id)}[/] — {summary['status']} in {escape(order.channel)}"
        + (f" for member {escape(order.member_id)}" if order.member_id else "")
    )
    print_table(
        "Lines",
        ["#", "sku", "qty", "unit", "discount", "total", "refunded"],
        [
            [line.index, line.sku, line.quantity, line.unit_price, line.discount, line.total, line.refunded_quantity]
            for line in order.lines
        ],
    )
    for adjustment in order.adjustments:
        funded = (
            ", ".join(f"{who} {part}" for who, part in adjustment.funded_by)
            if adjustment.funders
            else adjustment.funder
        )
        console.print(f"  − {adjustment.amount} {escape(adjustment.reason)} (funded by {escape(funded)})")
    if order.groups:
        print_table(
            "Leaves in groups",
            ["lines", "fulfilment", "at / option", "shipping"],
            [
                [
                    ", ".join(str(index) for index in group.lines),
                    group.fulfilment.kind.value,
                    group.fulfilment.pickup_location or group.option_id or "",
                    group.shipping,
                ]
                for group in order.groups
            ],
        )
    console.print(
        f"subtotal {order.subtotal}  discount {order.discount}  shipping {order.shipping}  [bold]total {order.total}[/]"
    )
    if order.payments:
        rows = [payment_data(p, balances.get(p.id)) for p in order.payments]
        print_table(
            "Payments",
            ["payment", "method", "status", "amount", "captured", "refunded"],
            [
                [r["id"], r["method"], r["status"], p.amount, balance_text(r["captured"]), balance_text(r["refunded"])]
                for r, p in zip(rows, order.payments, strict=True)
            ],
        )


def balance_text(data: dict[str, Any] | None) -> str:
    from retailblocks.model import Money

    return "" if data is None else str(Money(data["amount"], data["currency"]))


def payload_text(payload: Any) -> str:
    """An event's payload as ``key=value`` words for a person; nested values as compact JSON, never a repr."""
    if not isinstance(payload, dict):
        return json_text(payload)
    return " ".join(
        f"{key}={value if isinstance(value, str) else json_text(value)}" for key, value in sorted(payload.items())
    )


def refund_split(order: Order, before: dict[str, PaymentBalance], after: dict[str, PaymentBalance]) -> dict[str, Any]:
    """The money this refund returned, per payment: what each payment block refunded since ``before``.

    A refund replayed under its key returns nothing new, so it shows 0 (the order shows what it returned then).
    """
    from retailblocks.model import Money

    payments = []
    total = Money.zero(order.currency)
    for paid in order.payments:
        if paid.id not in after:
            continue
        now = after[paid.id].refunded
        returned = now - before[paid.id].refunded if paid.id in before else now
        if returned.amount:
            payments.append({"payment": paid.id, "method": paid.method, "amount": money_data(returned)})
            total += returned
    return {"amount": money_data(total), "payments": payments}


def _parse_pairs(values: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name or not rest:
            raise click.BadParameter(f"expected {what} (got {value!r})")
        pairs.append((name, rest))
    return pairs


@click.command()
@manifest_option()
@click.option("--channel", required=True, help="The channel the order comes from.")
@click.option("--item", "items", multiple=True, required=True, metavar="SKU:QTY", help="A cart line; repeat.")
@click.option(
    "--pay",
    "payments",
    multiple=True,
    metavar="METHOD[:AMOUNT][:KEY=VALUE,…]",
    help="A payment, e.g. card::card_number=4242424242424242 or gift_card:50.00:code=GC-…",
)
@click.option("--identity", "identities", multiple=True, metavar="KIND:VALUE", help="e.g. phone:+8613800000000")
@click.option("--coupon", "coupons", multiple=True)
@click.option("--deliver-to", "region", metavar="COUNTRY/REGION", help="Deliver to an address in this region.")
@click.option("--pickup", "pickup", metavar="LOCATION", help="Click and collect at this store.")
@click.option("--key", required=True, help="Idempotency key: the same key never places two orders.")
@json_option()
def checkout(
    manifest: Path,
    channel: str,
    items: tuple[str, ...],
    payments: tuple[str, ...],
    identities: tuple[str, ...],
    coupons: tuple[str, ...],
    region: str | None,
    pickup: str | None,
    key: str,
    as_json: bool,
) -> None:
    """Place one order through the stack's checkout saga."""
    from retailblocks.model import (
        Address,
        Cart,
        CartLine,
        Fulfilment,
        FulfilmentKind,
        Identity,
        Money,
        PaymentRequest,
    )
    from retailblocks.model.limits import check_key, check_quantity

    check_key(key)
    lines = []
    for sku, text in _parse_pairs(items, "SKU:QTY"):
        quantity = whole_number(text)
        if quantity is None or quantity <= 0:
            raise click.BadParameter(
                f"quantity of {sku} must be a positive integer (got {text!r})", param_hint="--item"
            )
        lines.append(CartLine(sku, check_quantity(quantity, f"--item: the quantity of {sku}", minimum=1)))
    with open_stack(manifest) as stack:
        requests = []
        for text in payments:
            method, _, rest = text.partition(":")
            amount_text, _, detail_text = rest.partition(":")
            details = dict(part.split("=", 1) for part in detail_text.split(",") if "=" in part)
            amount = Money.parse(f"{amount_text} {stack.currency}") if amount_text else None
            requests.append(PaymentRequest(method, amount, details))
        try:
            ids = tuple(Identity(kind, value) for kind, value in _parse_pairs(identities, "KIND:VALUE"))
        except ValueError as error:
            raise InvalidValue(f"--identity: {error}") from None
        if pickup and region:
            fail("choose either --pickup or --deliver-to")
        if pickup:
            fulfilment = Fulfilment(FulfilmentKind.PICKUP, pickup_location=pickup)
        elif region:
            country, _, area = region.partition("/")
            fulfilment = Fulfilment(FulfilmentKind.DELIVERY, Address(country=country, region=area))
        else:
            fulfilment = Fulfilment(FulfilmentKind.CARRY_OUT)
        cart = Cart(
            channel=channel,
            lines=tuple(lines),
            payments=tuple(requests),
            identities=ids,
            fulfilment=fulfilment,
            coupons=coupons,
        )
        try:
            order = stack.checkout(cart, key=key)
        except BusinessRejection as rejection:
            fail(f"rejected ({rejection.cause}): {rejection}", rejection.exit_status, type(rejection).__name__)
        show_order(order, as_json, payment_balances(stack, order))


@click.command()
@manifest_option()
@click.argument("order_id")
@click.option("--reason", default="")
@json_option()
def cancel(manifest: Path, order_id: str, reason: str, as_json: bool) -> None:
    """Cancel ORDER_ID: stop delivery, restock, release coupons, reverse points, return the money."""
    with open_stack(manifest) as stack:
        try:
            order = stack.cancel(order_id, reason=reason)
        except BusinessRejection as rejection:
            fail(str(rejection), rejection.exit_status, type(rejection).__name__)
        show_order(order, as_json, payment_balances(stack, order))


@click.command()
@manifest_option()
@click.argument("order_id")
@click.option("--line", "lines", multiple=True, metavar="INDEX:QTY", help="Refund QTY units of line INDEX.")
@click.option("--key", required=True, help="Idempotency key of this refund.")
@click.option("--no-restock", is_flag=True, help="Do not put the units back on hand.")
@json_option()
def refund(manifest: Path, order_id: str, lines: tuple[str, ...], key: str, no_restock: bool, as_json: bool) -> None:
    """Refund ORDER_ID in full, or some units of some lines."""
    from retailblocks.flows.api import check_order_request
    from retailblocks.model.limits import check_quantity

    chosen: dict[int, int] | None = None
    if lines:
        chosen = {}
        for index_text, quantity_text in _parse_pairs(lines, "INDEX:QTY"):
            index, quantity = whole_number(index_text), whole_number(quantity_text)
            if index is None or quantity is None:
                raise click.BadParameter(
                    f"expected INDEX:QTY with whole numbers (got {index_text}:{quantity_text})", param_hint="--line"
                )
            chosen[index] = check_quantity(chosen.get(index, 0) + quantity, f"--line: the quantity of line {index}")
    check_order_request(order_id, key=key, lines=chosen)
    with open_stack(manifest) as stack:
        before = payment_balances(stack, stack.order(order_id))
        try:
            order = stack.flows.refund(order_id, chosen, key=key, restock=not no_restock)
        except BusinessRejection as rejection:
            fail(str(rejection), rejection.exit_status, type(rejection).__name__)
        after = payment_balances(stack, order)
        returned = refund_split(order, before, after)
        show_order(order, as_json, after, {"returned": returned})
    if not as_json:
        total = balance_text(returned["amount"])
        split = ", ".join(f"{p['method']} {balance_text(p['amount'])} ({p['payment']})" for p in returned["payments"])
        console.print(f"[bold]returned {escape(total)}[/]" + (f": {escape(split)}" if split else ""), soft_wrap=True)


@click.command()
@manifest_option()
@click.option("--status", type=click.Choice(ORDER_STATUSES))
@click.option("--channel")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option()
def orders(manifest: Path, status: str | None, channel: str | None, limit: int, as_json: bool) -> None:
    """List orders."""
    from retailblocks.model.limits import MAX_SLUG_LENGTH, check_text

    if channel is not None:
        check_text(channel, "--channel", max_length=MAX_SLUG_LENGTH)
    with open_stack(manifest) as stack:
        found = stack.orders(status=status, channel=channel)[-limit:]
    if as_json:
        print_json([order_summary(o) for o in found])
        return
    print_table(
        "Orders",
        ["id", "channel", "status", "member", "total", "refunded"],
        [[o.id, o.channel, o.status.value, o.member_id or "", o.total, o.refunded or ""] for o in found],
    )


@click.command()
@manifest_option()
@click.option(
    "--all",
    "ignore_leases",
    is_flag=True,
    help="Take over every running saga, not only those whose lease ran out (only when no other "
    "process serves this stack).",
)
@click.option(
    "--retry-stuck",
    is_flag=True,
    help="Run the stuck flows again too (after mending what stopped them; each is listed with its reason).",
)
@json_option()
def recover(manifest: Path, ignore_leases: bool, retry_stuck: bool, as_json: bool) -> None:
    """Resume or compensate every flow a crash left half-way, then run the blocks' housekeeping.

    Reports every flow it finished or undid, the stuck flows (with where and why they stopped) and the
    flows it left for a later run (another process holds their rows, or a provider cannot tell yet).
    Exits 1 while any flow is stuck or skipped.
    """
    with open_stack(manifest) as stack:
        report = stack.recover(ignore_leases=ignore_leases, retry_stuck=retry_stuck)
        dispatched = stack.dispatch_events()
    data = {
        "resumed": list(report.resumed),
        "compensated": list(report.compensated),
        "stuck": [{"flow": saga_id, "reason": report.reasons.get(saga_id, "")} for saga_id in report.stuck],
        "skipped": [{"flow": saga_id, "reason": report.reasons.get(saga_id, "")} for saga_id in report.skipped],
        "events_delivered": dispatched.delivered,
        "events_failed": dispatched.failed,
    }
    if as_json:
        print_json(data)
    else:
        console.print(
            f"resumed {len(report.resumed)}, compensated {len(report.compensated)}, stuck {len(report.stuck)}, "
            f"skipped {len(report.skipped)}; events delivered {dispatched.delivered}"
        )
        for saga_id in report.resumed:
            console.print(f"  resumed      {escape(saga_id)}")
        for saga_id in report.compensated:
            console.print(f"  compensated  {escape(saga_id)}")
        for saga_id in (*report.stuck, *report.skipped):
            kind = "stuck" if saga_id in report.stuck else "skipped"
            console.print(f"  {kind:<12} {escape(saga_id)}: {escape(report.reasons.get(saga_id, ''))}", soft_wrap=True)
    if report.stuck or report.skipped:
        fail(f"{len(report.stuck)} flows stuck and {len(report.skipped)} left for later; see above", 1)


@click.command()
@manifest_option()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (and deliver them) until Ctrl-C.")
@click.option("--type", "event_type", help="Only events whose type starts with this, e.g. order.")
@click.option("--order", "order_id", help="Only the events of one order.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--deliver",
    is_flag=True,
    help="Deliver pending events first: to the blocks, and one round to the manifest's webhooks.",
)
@click.option(
    "--failures",
    is_flag=True,
    help="Show the deliveries that failed (to blocks and webhooks), retrying or dead letters, instead of events.",
)
@click.option(
    "--redeliver",
    "redeliver_event",
    type=click.IntRange(min=1),
    help="Give this event's dead letters another attempt (with --subscriber, only that one's), then deliver.",
)
@click.option("--subscriber", help="With --redeliver: a block id, or webhook:<id>.")
@json_option("One JSON object per line.")
def events(
    manifest: Path,
    follow: bool,
    event_type: str | None,
    order_id: str | None,
    limit: int,
    deliver: bool,
    failures: bool,
    redeliver_event: int | None,
    subscriber: str | None,
    as_json: bool,
) -> None:
    """Show the event outbox, or the deliveries that failed; deliver and redeliver events."""
    from retailblocks.events import read_events
    from retailblocks.model.limits import MAX_ID_LENGTH, check_text

    if event_type is not None:
        check_text(event_type, "--type", max_length=MAX_ID_LENGTH)
    if order_id is not None:
        check_text(order_id, "--order", max_length=MAX_ID_LENGTH)
    if subscriber is not None:
        check_text(subscriber, "--subscriber", max_length=MAX_ID_LENGTH)
        if redeliver_event is None:
            fail("--subscriber goes with --redeliver EVENT_ID")

    with open_stack(manifest) as stack:
        if redeliver_event is not None:
            rearmed = stack.redeliver(redeliver_event, subscriber).rearmed
            if not rearmed:
                fail(f"event {redeliver_event} has no dead letter{' to ' + subscriber if subscriber else ''}")
            if not as_json:
                console.print(f"re-armed {rearmed} dead letters of event {redeliver_event}")
        if deliver or follow or redeliver_event is not None:
            stack.dispatch_events()
            stack.deliver_webhooks()
        if failures:
            _print_failures(stack, as_json)
            return
        found = read_events(stack, event_type=event_type, order_id=order_id, limit=1_000_000)[-limit:]
        last = found[-1].id if found else 0

        def emit(batch: list[Any]) -> None:
            for event in batch:
                if as_json:
                    click.echo(
                        json_text(
                            {
                                "id": event.id,
                                "type": event.type,
                                "source": event.source,
                                "channel": event.channel,
                                "order_id": event.order_id,
                                "member_id": event.member_id,
                                "occurred_at": str(event.occurred_at),
                                "payload": event.payload,
                            }
                        )
                    )
                else:
                    payload = payload_text(event.payload)
                    console.print(
                        f"{event.id:>6} {str(event.occurred_at)[:19]} [bold]{escape(event.type):<24}[/] "
                        f"{escape(event.source):<14} {escape(event.order_id or ''):<28} {escape(payload)}",
                        soft_wrap=True,
                    )

        emit(found)
        if not follow:
            return
        try:
            while True:
                time.sleep(1.0)
                # Several followers share the outbox: each delivers the subscribers no other is delivering.
                stack.dispatch_events(wait=False)
                stack.deliver_webhooks()
                batch = read_events(stack, after=last, event_type=event_type, order_id=order_id, limit=500)
                if batch:
                    last = batch[-1].id
                    emit(batch)
        except KeyboardInterrupt:
            return


def _print_failures(stack: Stack, as_json: bool) -> None:
    found = stack.delivery_failures()
    rows = [
        {
            "event_id": failure.event_id,
            "event_type": failure.event_type,
            "subscriber": failure.subscriber,
            "attempts": failure.attempts,
            "state": "dead" if failure.dead else "retrying",
            "next_attempt_at": None if failure.dead else failure.next_attempt_at.isoformat(),
            "last_error": failure.last_error,
        }
        for failure in found
    ]
    if as_json:
        for row in rows:
            click.echo(json_text(row))
        return
    print_table(
        f"Failed deliveries: {sum(not f.dead for f in found)} retrying, {sum(f.dead for f in found)} dead",
        ["event", "type", "subscriber", "attempts", "state", "next attempt", "last error"],
        [
            [
                r["event_id"],
                r["event_type"],
                r["subscriber"],
                r["attempts"],
                r["state"],
                str(r["next_attempt_at"] or "")[:19],
                r["last_error"],
            ]
            for r in rows
        ],
    )


@click.command()
@manifest_option()
@json_option()
def audit(manifest: Path, as_json: bool) -> None:
    """Check the flows against the blocks' ledgers (money refunded, units restocked, no flow stuck or
    orphaned, every order event once) and every block's own invariants (ledgers balanced, stock equal to
    its movements). Exits 3 when any does not hold."""
    from retailblocks.flows.audit import audit_flows
    from retailblocks.flows.capabilities import block_findings
    from retailblocks.fusion.statements import audit_statements

    with open_stack(manifest) as stack:
        findings = [("core", finding) for finding in audit_flows(stack)]
        findings += [("fusion", finding) for finding in audit_statements(stack)]
        with stack.context(flow="audit", read_only=True) as ctx:
            findings += block_findings(stack.hooks, ctx)
    rows = [{"block": block, "name": f.name, "ok": f.ok, "detail": f.detail} for block, f in findings]
    if as_json:
        print_json(rows)
    else:
        print_table(
            "Audit",
            ["", "block", "invariant", "detail"],
            [["[green]✓[/]" if r["ok"] else "[red]✗[/]", r["block"], r["name"], r["detail"]] for r in rows],
        )
    if not all(r["ok"] for r in rows):
        fail(f"{sum(not r['ok'] for r in rows)} invariants do not hold", 3)


COMMANDS = [checkout, cancel, refund, orders, recover, events, audit]
