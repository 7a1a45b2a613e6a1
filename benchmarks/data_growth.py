"""Data that grows: ``blocks members``, ``segments``, ``campaigns report`` and ``settle`` on a merchant with
10,000 orders and with ``--orders`` of them, on PostgreSQL, and the ratio of the two times.

    eval "$(bash .ci/start-postgres.sh)"
    uv run python benchmarks/data_growth.py                    # 10k against 100k orders, ~1 minute
    uv run python benchmarks/data_growth.py --orders 1000000   # the figure issue 13 asks for

What is measured is each command's Python call (what the CLI and the HTTP route call): a page of 100 member
profiles, every segment's members, a campaign report listing 100 orders, and the settlement with the
partner for the last day. They read the aggregates the fusion listener keeps (fusion/aggregates.py), so
their time should not follow the order history: the goal is big/base ≤ 2.

**The merchant.** A real stack (loyalty, promotions with a partner-funded coupon, a campaign with a 40%
holdout) places a few real orders of each shape through checkout — a web order with the partner's coupon,
a marketplace order, a store order, an order with the campaign's coupon — and the dispatcher delivers
their events, so the listener writes every kind of row. Then the history is generated fast: for each of
``--members`` members, orders copied from those templates (new id, member, moment; ``--per-day`` orders a
day, so the last day holds as many orders at any size) are written with PostgreSQL ``COPY`` into the
tables checkout writes (orders, order lines, the timeline) together with the rows the listener would have
kept for them: order facts, member totals, segment answers, settlement lines, campaign redemptions and
each member's campaign result, computed by the same functions the listener uses. Every member is drawn
into the campaign before their first order. With ``--check`` (default up to 20,000 orders) the rebuild
check recomputes every aggregate from the raw orders and must find no difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import ManualClock, RandomIds, as_utc
from retailblocks.flows.orders import load_order
from retailblocks.fusion import aggregates
from retailblocks.fusion.campaigns import HOLDOUT, TREATED, in_holdout
from retailblocks.fusion.memberships import definition, order_fact, reading
from retailblocks.fusion.segments import MemberFacts, OrderFact, evaluate
from retailblocks.fusion.tables import (
    campaign_arms,
    campaign_coupons,
    campaign_members,
    campaign_orders,
    campaign_results,
    campaign_totals,
    member_totals,
    order_facts,
    segment_answers,
    settlement_items,
    timeline,
)
from retailblocks.fusion.views import profile_page
from retailblocks.hookspecs import inventory
from retailblocks.model import Address, Cart, CartLine, Fulfilment, FulfilmentKind, Identity, PaymentRequest
from retailblocks.stack import Stack, assemble
from retailblocks.storage.tables import order_lines, orders
from retailblocks.testing.databases import fresh_database

MANIFEST = textwrap.dedent("""
    version: 1
    merchant: {id: growth-shop, name: Growth Shop, currency: CNY}
    database: "DATABASE"
    channels:
      - {id: web, type: online}
      - {id: market, type: marketplace}
      - {id: store-a, type: store, location: store-a}
    catalog:
      - {sku: BEANS, title: Beans, price: "50.00 CNY", category: beans}
      - {sku: MUG, title: Mug, price: "30.00 CNY", category: merch}
      - {sku: TEA, title: Tea, price: "20.00 CNY", category: tea}
    blocks:
      - use: sql-inventory
        id: inventory
        config:
          locations:
            - {id: dc, kind: warehouse, latitude: 31.37, longitude: 121.26}
            - {id: store-a, kind: store, latitude: 31.19, longitude: 121.44}
          channels: {web: {locations: [dc]}, market: {locations: [dc]}, store-a: {locations: [store-a]}}
      - use: sandbox-card
        id: card
        config: {secret_key: sk_test_growth}
      - use: loyalty
        config:
          points_value: "1.00 CNY"
          partners: {metro: {rate_percent: 50}}
          tiers: [{name: base, threshold: "0.00 CNY"}, {name: gold, threshold: "500.00 CNY"}]
      - use: logistics
        config:
          zones: [{id: cn, countries: [CN]}]
          carriers:
            - id: sf
              name: SF
              options: [{id: sf-std, name: Standard, zones: [cn], rates: [{price: "10.00 CNY"}]}]
          locations: [{id: dc, latitude: 31.37, longitude: 121.26}, {id: store-a, latitude: 31.19, longitude: 121.44}]
      - use: promotions
        config:
          promotions:
            - {id: mall-8, code: MALL8, target: order, allocation: across, value_type: fixed,
               value: "8.00 CNY", funder: metro, campaign: metro-spring}
            - {id: comeback-12, automatic: false, target: order, allocation: across, value_type: fixed,
               value: "12.00 CNY", campaign: comeback}
    partners:
      - {id: metro, name: Metro Mall, type: platform, on_refund: clawback}
    segments:
      - {id: buyers, min_orders: 1}
      - {id: big-spenders, min_spend: '500.00 CNY'}
      - {id: store-regulars, channels: [store-a], min_orders: 2}
    campaigns:
      - {id: comeback, segment: buyers, promotion: comeback-12, channel: web, holdout: 40%, seed: growth}
    routing:
      payment: {card: card, points: loyalty}
    """)

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CARD = "4242424242424242"


def cart(sku: str, quantity: int, channel: str, phone: str, coupons: tuple[str, ...] = ()) -> Cart:
    fulfilment = (
        Fulfilment(FulfilmentKind.CARRY_OUT)
        if channel == "store-a"
        else Fulfilment(
            FulfilmentKind.DELIVERY, Address(country="CN", region="Shanghai", latitude=31.2, longitude=121.45)
        )
    )
    return Cart(
        channel=channel,
        lines=(CartLine(sku, quantity),),
        payments=(PaymentRequest("card", None, {"card_number": CARD}),),
        fulfilment=fulfilment,
        identities=(Identity("phone", phone),),
        coupons=coupons,
    )


def real_templates(stack: Stack) -> list[str]:
    """Place one real order of each shape (events delivered): the ids of the orders to copy."""
    with stack.context(flow="setup") as ctx:
        for location in ("dc", "store-a"):
            for sku in stack.catalog:
                stack.hooks.call(
                    inventory.inventory_adjust, ctx, sku, location, 10_000, "received", f"in-{sku}-{location}"
                )
    placed = [
        stack.checkout(cart("BEANS", 2, "web", "+8613800000001", ("MALL8",)), key="t-web-partner"),
        stack.checkout(cart("MUG", 1, "market", "+8613800000002"), key="t-market"),
        stack.checkout(cart("TEA", 3, "store-a", "+8613800000003"), key="t-store"),
    ]
    stack.run_campaign("comeback")  # delivers the events, so the three buyers are drawn
    with stack.engine.connect() as connection:
        # The seed draws at least one of the three into the treated arm.
        code = connection.execute(sa.select(campaign_coupons.c.code).limit(1)).scalar_one()
        holder = connection.execute(
            sa.select(campaign_coupons.c.member_id).where(campaign_coupons.c.code == code)
        ).scalar_one()
    phone = next(str(i.value) for i in stack.member(holder).identities if i.kind.value == "phone")
    placed.append(stack.checkout(cart("BEANS", 3, "web", phone, (code,)), key="t-campaign"))
    stack.campaign_report("comeback")  # delivers the last events
    return [order.id for order in placed]


class Copier:
    """Rows for one table, written with COPY in text format as they come."""

    def __init__(self, connection: Any, table: sa.Table):
        # The timeline's id is the database's to number.
        self.columns = [column.name for column in table.columns if not (table is timeline and column.name == "id")]
        self._context = connection.cursor().copy(f"COPY {table.name} ({', '.join(self.columns)}) FROM STDIN")
        self._copy = self._context.__enter__()
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        values = []
        for name in self.columns:
            value = row.get(name)
            if isinstance(value, dict | list):
                value = json.dumps(value)
            values.append(value)
        self._copy.write_row(values)
        self.rows += 1

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def abort(self, error: BaseException) -> None:
        """End the COPY with the error (a CopyFail), so the connection can roll back instead of waiting."""
        self._context.__exit__(type(error), error, error.__traceback__)


def _plain_row(row: Any) -> dict[str, Any]:
    return dict(row)


def generate(stack: Stack, templates: list[str], total: int, members: int, per_day: int) -> date:
    """``total`` orders copied from the templates for ``members`` members; returns the last day."""
    with stack.engine.connect() as connection:
        shapes = []
        for order_id in templates:
            order = load_order(connection, order_id)
            row = _plain_row(connection.execute(sa.select(orders).where(orders.c.id == order_id)).mappings().one())
            lines = [
                _plain_row(r)
                for r in connection.execute(sa.select(order_lines).where(order_lines.c.order_id == order_id)).mappings()
            ]
            shapes.append((order, row, lines))
        code_map = dict(connection.execute(sa.select(campaign_coupons.c.code, campaign_coupons.c.campaign)).all())
    # Shapes by weight: web orders with the partner's coupon, marketplace, store, campaign coupon.
    weights = [3, 3, 3, 1]
    cycle = [shape for shape, weight in zip(shapes, weights, strict=True) for _ in range(weight)]
    step = timedelta(days=1) / per_day
    first = START + timedelta(days=1)
    campaign = next(c for c in stack.manifest.campaigns if c.id == "comeback")
    segments = list(stack.manifest.segments)
    last_moment = first + step * (total - 1)
    now = last_moment + timedelta(hours=1)
    stack.clock.set(now)  # type: ignore[attr-defined]
    at = reading(stack, now)
    digests = {s.id: definition(s, at) for s in segments}
    per_member = -(-total // members)
    arms: dict[str, list[int]] = {TREATED: [0, 0, 0, 0], HOLDOUT: [0, 0, 0, 0]}  # members, buyers, revenue, sq
    redeemed = [0, 0]
    funders: Counter[str] = Counter()
    funder_orders: Counter[str] = Counter()
    raw = stack.engine.raw_connection()
    try:
        connection = raw.driver_connection
        tables = (
            orders,
            order_lines,
            timeline,
            order_facts,
            member_totals,
            segment_answers,
            settlement_items,
            campaign_orders,
            campaign_members,
            campaign_results,
        )
        # Each table's rows in one COPY; copies on one connection run one after the other, so each table
        # is generated in its own pass over the members (cheap: the rows are templates with new keys).
        for table in tables:
            copier = Copier(connection, table)
            try:
                # A member exists once they order: members beyond the orders would be rows nothing ever wrote.
                for m in range(min(members, total)):
                    member_id = f"mem_syn_{m:07d}"
                    facts: list[OrderFact] = []
                    for j in range(per_member):
                        k = j * members + m  # the order's place in time: members' orders interleave
                        if k >= total:
                            break
                        order, row, lines = cycle[k % len(cycle)]
                        order_id = f"ord_syn_{k:09d}"
                        placed = first + step * k
                        if table is orders:
                            copier.write(
                                row
                                | {
                                    "id": order_id,
                                    "member_id": member_id,
                                    "idempotency_key": f"syn-{k}",
                                    "created_at": placed,
                                    "updated_at": placed,
                                }
                            )
                        elif table is order_lines:
                            for line in lines:
                                copier.write(line | {"order_id": order_id})
                        elif table is timeline:
                            copier.write(
                                {
                                    "key": f"event:syn-{k}",
                                    "member_id": member_id,
                                    "kind": "order.placed",
                                    "channel": order.channel,
                                    "order_id": order_id,
                                    "amount": order.total.amount,
                                    "currency": order.currency,
                                    "detail": {},
                                    "source": "event",
                                    "occurred_at": placed,
                                }
                            )
                        copy = attrs.evolve(order, id=order_id, member_id=member_id, created_at=placed)
                        fact = order_fact(copy, member_id, None)
                        facts.append(fact)
                        if table is order_facts:
                            copier.write(
                                {
                                    "order_id": order_id,
                                    "member_id": member_id,
                                    "placed_by": member_id,
                                    "channel": fact.channel,
                                    "placed_at": placed,
                                    "sale": fact.sale,
                                    "spend": fact.spend,
                                    "units": fact.units,
                                    "points": fact.points,
                                    "lines": [
                                        {"sku": x.sku, "units": x.units, "spend": x.spend, "points": x.points}
                                        for x in fact.lines
                                    ],
                                }
                            )
                        elif table is settlement_items:
                            for item in aggregates.settlement_rows(stack, copy, []):
                                copier.write(item)
                        elif table is campaign_orders:
                            for redemption in aggregates.redemption_rows(copy, code_map):
                                copier.write(redemption)
                                redeemed[0] += 1
                                redeemed[1] += redemption["revenue"]
                                for funder, amount in redemption["discount"].items():
                                    funders[funder] += amount
                                    funder_orders[funder] += 1
                    if table is member_totals:
                        copier.write(aggregates.totals_row(member_id, facts))
                    elif table is segment_answers:
                        member_facts = MemberFacts(member_id, "", frozenset(), tuple(facts), ())
                        for segment in segments:
                            answer = evaluate(segment, member_facts, at)
                            copier.write(
                                {
                                    "segment": segment.id,
                                    "member_id": member_id,
                                    "definition": digests[segment.id],
                                    "member": answer.holds,
                                    "since": now,
                                    "evaluated_at": now,
                                    "fresh_until": answer.changes_at,
                                }
                            )
                    elif table in (campaign_members, campaign_results):
                        arm = HOLDOUT if in_holdout(campaign.seed, member_id, campaign.holdout_bp) else TREATED
                        if table is campaign_members:
                            copier.write(
                                {"campaign": campaign.id, "member_id": member_id, "arm": arm, "assigned_at": START}
                            )
                        else:
                            revenue, bought = aggregates.result_of(facts, START, aggregates.campaign_end(campaign, now))
                            copier.write(
                                {
                                    "campaign": campaign.id,
                                    "member_id": member_id,
                                    "arm": arm,
                                    "revenue": revenue,
                                    "bought": bought,
                                }
                            )
                            sums = arms[arm]
                            sums[0] += 1
                            sums[1] += int(bought)
                            sums[2] += revenue
                            sums[3] += revenue * revenue
            except BaseException as error:
                copier.abort(error)
                raise
            copier.close()
        raw.commit()
    finally:
        raw.close()
    # The sums the listener moves: added to what the real orders left.
    with stack.engine.begin() as conn:
        moves = [("", redeemed[0], redeemed[1])] + [
            (aggregates.FUNDER + f, funder_orders[f], amount) for f, amount in funders.items()
        ]
        for key, count, amount in moves:
            where = sa.and_(campaign_totals.c.campaign == campaign.id, campaign_totals.c.key == key)
            found = conn.execute(sa.select(campaign_totals).where(where)).mappings().first()
            if found is None:
                conn.execute(campaign_totals.insert().values(campaign=campaign.id, key=key, count=count, amount=amount))
            else:
                conn.execute(
                    campaign_totals.update()
                    .where(where)
                    .values(count=found["count"] + count, amount=found["amount"] + amount)
                )
        for arm, (n, buyers, revenue, squares) in arms.items():
            where = sa.and_(campaign_arms.c.campaign == campaign.id, campaign_arms.c.arm == arm)
            found = conn.execute(sa.select(campaign_arms).where(where)).mappings().first()
            before = (
                (0, 0, 0, 0)
                if found is None
                else (found["members"], found["buyers"], found["revenue"], int(found["revenue_squares"]))
            )
            values = {
                "members": before[0] + n,
                "buyers": before[1] + buyers,
                "revenue": before[2] + revenue,
                "revenue_squares": str(before[3] + squares),
            }
            if found is None:
                conn.execute(campaign_arms.insert().values(campaign=campaign.id, arm=arm, **values))
            else:
                conn.execute(campaign_arms.update().where(where).values(**values))
        conn.exec_driver_sql("ANALYZE")
    return as_utc(last_moment).date()


def timed(call: Callable[[], object], repeat: int) -> float:
    """The median of ``repeat`` calls, after one untimed call (caches warm, as a served merchant's are)."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def commands(stack: Stack, last_day: date) -> dict[str, Callable[[], object]]:
    def members() -> object:
        with stack.context(flow="report", read_only=True) as ctx:
            return profile_page(stack, ctx, limit=100)

    return {
        "blocks members (page of 100)": members,
        "blocks segments": stack.segment_members,
        "blocks campaigns report (100 orders listed)": lambda: stack.campaign_report("comeback", limit=100),
        "blocks settle (last day)": lambda: stack.settlement("metro", last_day, last_day),
    }


@attrs.frozen
class Measured:
    orders: int
    build_seconds: float
    times: dict[str, float]
    check_differences: int | None


def measure(total: int, members: int, per_day: int, check: bool, repeat: int) -> Measured:
    with ExitStack() as cleanup:
        directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        url = cleanup.enter_context(fresh_database("postgresql", directory))
        manifest = directory / "blocks.yaml"
        manifest.write_text(MANIFEST.replace("DATABASE", url), encoding="utf-8")
        clock = ManualClock(START)
        stack = assemble(manifest, clock=clock, ids=RandomIds(13), lease_clock=clock)
        cleanup.callback(stack.close)
        started = time.perf_counter()
        templates = real_templates(stack)
        last_day = generate(stack, templates, total, members, per_day)
        build = time.perf_counter() - started
        differences = None
        if check:
            differences = len(stack.check_aggregates().differences)
        times = {name: timed(call, repeat) for name, call in commands(stack, last_day).items()}
        # What the reads returned, so a broken read is not timed as a fast one.
        with stack.context(flow="report", read_only=True) as ctx:
            page = profile_page(stack, ctx, limit=100)
        report = stack.campaign_report("comeback", limit=100)
        settled = stack.settlement("metro", last_day, last_day)
        print(
            f"  {total:,} orders: {page.total:,} members, {report.redemptions:,} campaign redemptions, "
            f"{len(settled.lines):,} settlement lines on {last_day}; built in {build:.1f} s"
            + ("" if differences is None else f"; rebuild check: {differences} differences")
        )
        return Measured(total, build, times, differences)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=10_000, help="orders of the small merchant (default 10,000)")
    parser.add_argument("--orders", type=int, default=100_000, help="orders of the big merchant (default 100,000)")
    parser.add_argument("--members", type=int, default=2_000, help="members, the same at both sizes (2,000)")
    parser.add_argument("--per-day", type=int, default=5_000, help="orders a day (5,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls of each command (median; 5)")
    parser.add_argument(
        "--check",
        choices=["auto", "yes", "no"],
        default="auto",
        help="run the rebuild check on each merchant (auto: up to 20,000 orders)",
    )
    args = parser.parse_args(argv)
    if min(args.base, args.orders, args.members, args.per_day, args.repeat) < 1:
        parser.error("sizes must be at least 1")
    results = []
    for total in (args.base, args.orders):
        check = args.check == "yes" or (args.check == "auto" and total <= 20_000)
        results.append(measure(total, args.members, args.per_day, check, args.repeat))
    base, big = results
    print(f"\n{'command':<46}{base.orders:>12,}{big.orders:>12,}   ratio")
    for name in base.times:
        ratio = big.times[name] / base.times[name]
        print(f"{name:<46}{base.times[name] * 1000:>10.1f}ms{big.times[name] * 1000:>10.1f}ms   {ratio:.2f}")
    failed = any(r.check_differences for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
