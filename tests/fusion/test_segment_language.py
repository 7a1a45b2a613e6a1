"""The segment language against the raw data: every kind of condition (windowed spend, negation, any, signal
counts, tier, identities, RFM, units by category, points, recency) gives exactly the members a plain
computation over ``stack.orders()``, the earn events and the signals sent finds — as events arrive, after time
passes with no event, and after a rebuild."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.events.dispatcher import read_events
from retailblocks.events.positions import behind
from retailblocks.fusion import FUSION_ID, catch_up
from retailblocks.fusion.tables import order_facts, segment_answers, segment_store
from retailblocks.manifest import ManifestError
from retailblocks.model import Identity, Order, OrderStatus
from retailblocks.stack import Stack, assemble
from tests.fusion.conftest import BRAND
from tests.helpers import cart, make_stack, write_manifest

LANGUAGE = """\
  - id: recent-big-spenders
    description: spent 200 in the last 30 days
    spend: {at_least: "200.00", within_days: 30}
  - id: store-never-online
    all:
      - orders: {at_least: 1, channel: store-a}
      - not: {orders: {at_least: 1, channel: [web, market]}}
  - id: gold-or-fan
    any:
      - tier: gold
      - signal: {type: social.like, at_least: 2, within_days: 7}
  - id: live-watchers
    signal: {type: social., at_least: 1, within_days: 3, channel: web}
  - id: mini-program-only
    all: [{has_identity: openid}, {not: {has_identity: phone}}]
  - id: champions
    rfm: {recency: 5, frequency: {at_least: 3}, monetary: {at_least: 2}}
  - id: tea-in-march
    units: {at_least: 3, category: tea, from: "2026-03-01", to: "2026-03-31"}
  - id: bean-spenders
    spend: {at_least: "100.00", category: beans, within_days: 14}
  - id: points-earners
    points: {at_least: 100, within_days: 30}
  - id: lapsed
    recency: {at_least: 10}
  - id: mug-regulars
    orders: {at_least: 2, sku: MUG, within_days: 21}
  - id: last-bought-by-the-20th
    last_purchase: {to: "2026-03-20"}
campaigns:"""

TEXT = BRAND.replace("campaigns:", LANGUAGE, 1)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SALES_EXCLUDED = {OrderStatus.PENDING, OrderStatus.FAILED, OrderStatus.CANCELLED}


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    the_stack = make_stack(tmp_path, database_url, text=TEXT, stock=400)
    yield the_stack
    the_stack.close()


def deliver(stack: Stack) -> None:
    """Dispatch until the fusion block has every committed event. On a PostgreSQL server shared with other
    work, a transaction running elsewhere holds delivery back for a moment (events/positions.py)."""
    for _ in range(400):
        catch_up(stack)
        with stack.engine.connect() as connection:
            if behind(connection, FUSION_ID) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("committed events stayed undelivered")


def identities_of(n: int) -> tuple[Identity, ...]:
    """Shoppers 0-5 give a phone (0 and 1 also their mini-program openid); 6 and 7 only an openid."""
    phone = Identity("phone", f"+86138000002{n:02d}")
    openid = Identity("openid", f"o-shopper-{n}")
    if n < 2:
        return (phone, openid)
    return (phone,) if n < 6 else (openid,)


def identity_text(n: int) -> str:
    first = identities_of(n)[0]
    return f"{first.kind.value}:{first.value}"


#: How often each shopper buys on a day, and the day they stop (some lapse, some stay).
RATES = (0.45, 0.3, 0.2, 0.2, 0.1, 0.25, 0.15, 0.12)
STOPS = (None, 18, None, 10, None, 22, None, 14)


def shop(stack: Stack, seed: int = 7, days: int = 28) -> list[dict[str, str]]:
    """About a month of shopping: orders in three channels, refunds, cancellations, signals; events dispatched
    now and then, as a running stack's dispatcher would. Returns the signals sent."""
    rng = random.Random(seed)
    sent: list[dict[str, str]] = []
    clock = stack.clock
    for day in range(days):
        clock.advance(timedelta(hours=rng.choice([20, 24, 27])))  # type: ignore[attr-defined]
        for n in range(8):
            stopped = STOPS[n] is not None and day >= STOPS[n]
            if not stopped and rng.random() < RATES[n]:
                channel = rng.choice(["web", "web", "market", "store-a"]) if n != 3 else "store-a"
                skus = rng.sample(["BEANS", "MUG", "TEA"], rng.randint(1, 2))
                order = stack.checkout(
                    cart(*[(sku, rng.randint(1, 2)) for sku in skus], channel=channel, identities=identities_of(n)),
                    key=f"d{day}-n{n}",
                )
                roll = rng.random()
                if roll < 0.12:
                    stack.refund(order.id, {0: 1}, key=f"refund-{order.id}")
                elif roll < 0.2 and channel == "web":
                    stack.cancel(order.id)
            if rng.random() < 0.25:
                kind = rng.choice(["social.like", "social.like", "social.live_like", "marketplace.view"])
                at = clock.now() - timedelta(hours=rng.randint(0, 30))
                sent.append(
                    {
                        "identity": identity_text(n),
                        "type": kind,
                        "at": at.isoformat(),
                        "channel": rng.choice(["web", "market"]),
                    }
                )
        if day % 3 == 2:
            deliver(stack)
            stack.ingest_signals("\n".join(json.dumps(s) for s in sent), "jsonl")
    # A stranger's signal: counted for no one until someone has that identity.
    sent.append({"identity": "phone:+8613900000000", "type": "social.like", "at": clock.now().isoformat()})
    stack.ingest_signals("\n".join(json.dumps(s) for s in sent), "jsonl")
    deliver(stack)
    return sent


# -- the independent computation: plain Python over the raw orders, earn events and signals sent -----------


def expected(stack: Stack, sent: list[dict[str, str]]) -> dict[str, list[str]]:
    now = stack.clock.now()
    orders = stack.orders()
    earned = {
        e.order_id: int(e.payload["points"]) for e in read_events(stack, limit=100_000) if e.type == "points.earned"
    }
    # Whom each order counts for now: a merged member's orders count for the survivor.
    counts_for = {o.id: stack.member(o.member_id).id for o in orders if o.member_id}
    member_of_identity: dict[str, str] = {}
    for order in orders:
        if order.member_id:
            for identity in stack.member(order.member_id).identities:
                member_of_identity[f"{identity.kind.value}:{identity.value}"] = counts_for[order.id]
    members = sorted(set(counts_for.values()))
    category = {"BEANS": "beans", "MUG": "merch", "TEA": "tea"}

    def net(order: Order) -> int:
        return order.total.amount - (order.refunded.amount if order.refunded else 0)

    def within(moment: datetime, days: int) -> bool:
        return now - timedelta(days=days) <= moment <= now

    answers: dict[str, list[str]] = {}
    for member_id in members:
        sales = [o for o in orders if counts_for.get(o.id) == member_id and o.status not in SALES_EXCLUDED]
        member = stack.member(member_id)
        kinds = {identity.kind.value for identity in member.identities}
        signals = [s for s in sent if member_of_identity.get(s["identity"]) == member_id]
        last = max((o.created_at for o in sales), default=None)
        days_since = (now - last).days if last else None
        spend_30 = sum(net(o) for o in sales if within(o.created_at, 30))
        in_store = any(o.channel == "store-a" for o in sales)
        online = any(o.channel in ("web", "market") for o in sales)
        likes_7 = sum(1 for s in signals if s["type"] == "social.like" and within(datetime.fromisoformat(s["at"]), 7))
        social_web_3 = sum(
            1
            for s in signals
            if s["type"].startswith("social.")
            and s.get("channel") == "web"
            and within(datetime.fromisoformat(s["at"]), 3)
        )
        # RFM on the documented fixed thresholds.
        recency = 0 if days_since is None else 5 if days_since <= 30 else 4 if days_since <= 90 else 3
        year = [o for o in sales if within(o.created_at, 365)]
        frequency = 0 if not year else 1 + sum(len(year) >= t for t in (2, 3, 5, 10))
        spend_year = sum(net(o) for o in year)
        monetary = 0 if spend_year <= 0 else 1 + sum(spend_year >= t for t in (20000, 50000, 100000, 200000))
        march = [
            o for o in sales if datetime(2026, 3, 1, tzinfo=UTC) <= o.created_at < datetime(2026, 4, 1, tzinfo=UTC)
        ]
        tea_units = sum(line.quantity - line.refunded_quantity for o in march for line in o.lines if line.sku == "TEA")
        bean_spend = sum(
            line.total.amount - line.total.amount * line.refunded_quantity // line.quantity
            for o in sales
            if within(o.created_at, 14)
            for line in o.lines
            if category[line.sku] == "beans"
        )
        points_30 = sum(earned.get(o.id, 0) for o in sales if within(o.created_at, 30))
        mug_orders_21 = sum(1 for o in sales if within(o.created_at, 21) and any(li.sku == "MUG" for li in o.lines))
        holds = {
            "store-regulars": in_store,
            "big-spenders": sum(net(o) for o in sales) >= 20000,
            "tea-drinkers": any(line.sku == "TEA" for o in sales for line in o.lines)
            and days_since is not None
            and days_since <= 30,
            "recent-big-spenders": spend_30 >= 20000,
            "store-never-online": in_store and not online,
            "gold-or-fan": member.tier == "gold" or likes_7 >= 2,
            "live-watchers": social_web_3 >= 1,
            "mini-program-only": "openid" in kinds and "phone" not in kinds,
            "champions": recency == 5 and frequency >= 3 and monetary >= 2,
            "tea-in-march": tea_units >= 3,
            "bean-spenders": bean_spend >= 10000,
            "points-earners": points_30 >= 100,
            "lapsed": days_since is None or days_since >= 10,
            "mug-regulars": mug_orders_21 >= 2,
            "last-bought-by-the-20th": last is not None and last.astimezone(UTC).date() <= date(2026, 3, 20),
        }
        for segment, inside in holds.items():
            answers.setdefault(segment, [])
            if inside:
                answers[segment].append(member_id)
    return {segment.id: sorted(answers.get(segment.id, [])) for segment in stack.manifest.segments}


def stored_answers(stack: Stack) -> dict[str, list[str]]:
    """What the listener wrote, read straight from the table."""
    with stack.engine.connect() as connection:
        rows = connection.execute(
            sa.select(segment_answers.c.segment, segment_answers.c.member_id).where(segment_answers.c.member)
        ).all()
    found: dict[str, list[str]] = {segment.id: [] for segment in stack.manifest.segments}
    for segment, member_id in rows:
        found[segment].append(member_id)
    return {segment: sorted(ids) for segment, ids in found.items()}


def test_every_kind_of_condition_matches_an_independent_count_as_events_arrive_as_time_passes_and_rebuilt(
    stack: Stack,
) -> None:
    sent = shop(stack)
    want = expected(stack, sent)
    # Every kind of segment has members and non-members here, or the comparison would prove little.
    members = len({o.member_id for o in stack.orders() if o.member_id})
    for segment, ids in want.items():
        assert 0 < len(ids) < members, (segment, ids)
    assert stack.segment_members() == want

    # Incrementally: the answers the listener stored as events arrived are the same, before any read.
    assert stored_answers(stack) == want

    # Ten days pass without an event: windows slide at read time, stored answers go stale on their own.
    stack.clock.advance(timedelta(days=10))  # type: ignore[attr-defined]
    later = expected(stack, sent)
    assert later != want
    assert stack.segment_members() == later
    assert stored_answers(stack) != later  # read-time evaluation, nothing written on the read path
    # Housekeeping (blocks recover, the dispatcher's maintenance) writes the answers time made stale.
    stack.recover()
    assert stored_answers(stack) == later

    # A rebuild from the raw orders and signals agrees with what was kept: nothing to report.
    report = stack.rebuild_segments()
    assert (report.facts_changed, report.memberships_changed) == ((), ())
    assert report.orders == len([o for o in stack.orders() if o.member_id])
    assert stack.segment_members() == later
    assert stored_answers(stack) == later


def test_an_order_moves_a_member_in_and_out_when_its_events_arrive(stack: Stack) -> None:
    shopper = identities_of(2)
    small = stack.checkout(cart(("TEA", 1), channel="store-a", identities=shopper), key="small")
    deliver(stack)
    member_id = str(small.member_id)
    assert member_id in stack.segment_members("store-never-online")["store-never-online"]
    assert member_id not in stored_answers(stack)["recent-big-spenders"]

    big = stack.checkout(cart(("BEANS", 4), channel="web", identities=shopper), key="big")
    # Not yet dispatched: the stored answer is still the old one.
    assert member_id in stored_answers(stack)["store-never-online"]
    deliver(stack)
    stored = stored_answers(stack)
    assert member_id in stored["recent-big-spenders"]
    assert member_id not in stored["store-never-online"]  # bought online now

    stack.refund(big.id, {0: 4}, key="all-back")
    deliver(stack)
    stored = stored_answers(stack)
    assert member_id not in stored["recent-big-spenders"]  # spend is net of the refund
    assert member_id not in stored["store-never-online"]  # a refunded order was still bought online


def test_signals_count_once_ingested_and_a_strangers_signals_join_when_the_identity_does(stack: Stack) -> None:
    now = stack.clock.now()
    likes = [
        {"identity": "phone:+8613800000250", "type": "social.like", "at": (now - timedelta(hours=h)).isoformat()}
        for h in (1, 5)
    ]
    stack.ingest_signals("\n".join(json.dumps(s) for s in likes), "jsonl")
    assert stack.segment_members("gold-or-fan")["gold-or-fan"] == []  # nobody has that phone yet
    order = stack.checkout(cart(("MUG", 1), identities=(Identity("phone", "+8613800000250"),)), key="fan")
    deliver(stack)
    assert stack.segment_members("gold-or-fan")["gold-or-fan"] == [order.member_id]
    assert order.member_id in stored_answers(stack)["gold-or-fan"]
    # A week and a day later the likes are out of the window, with no event in between.
    stack.clock.advance(timedelta(days=7, hours=6))  # type: ignore[attr-defined]
    assert stack.segment_members("gold-or-fan")["gold-or-fan"] == []


def test_ingesting_a_known_members_signals_updates_their_stored_answer_at_once(stack: Stack) -> None:
    """Signals are not outbox events: the ingest itself stores the new answer, before any read or dispatch."""
    phone = Identity("phone", "+8613800000251")
    order = stack.checkout(cart(("MUG", 1), channel="web", identities=(phone,)), key="known")
    deliver(stack)
    assert order.member_id not in stored_answers(stack)["gold-or-fan"]
    now = stack.clock.now()
    likes = [
        {"identity": "phone:+8613800000251", "type": "social.like", "at": (now - timedelta(hours=h)).isoformat()}
        for h in (2, 3)
    ]
    stack.ingest_signals("\n".join(json.dumps(s) for s in likes), "jsonl")
    assert order.member_id in stored_answers(stack)["gold-or-fan"]


def test_a_rebuild_reports_and_repairs_what_the_store_got_wrong(stack: Stack) -> None:
    sent = shop(stack, seed=3, days=12)
    want = expected(stack, sent)
    victim = want["recent-big-spenders"][0]
    with stack.engine.begin() as connection:
        # Lose one member's facts and flip another answer, as a bug or a restore from backup might.
        lost = (
            connection.execute(sa.select(order_facts.c.order_id).where(order_facts.c.member_id == victim))
            .scalars()
            .all()
        )
        connection.execute(order_facts.delete().where(order_facts.c.member_id == victim))
        connection.execute(
            segment_answers.update()
            .where(segment_answers.c.member_id == victim, segment_answers.c.segment == "recent-big-spenders")
            .values(member=False)
        )
    assert victim not in stack.segment_members()["recent-big-spenders"]

    report = stack.rebuild_segments()
    assert report.facts_changed == tuple(sorted(lost))
    assert ("recent-big-spenders", victim, False, True) in {
        (c.segment, c.member_id, c.was, c.now) for c in report.memberships_changed
    }
    assert stack.segment_members() == want
    again = stack.rebuild_segments()
    assert again.differences == 0


def test_a_store_that_was_never_built_reads_from_the_raw_data_until_rebuilt(stack: Stack) -> None:
    """What a database upgraded from before the store looks like: history, no facts, marked."""
    sent = shop(stack, seed=11, days=8)
    want = expected(stack, sent)
    with stack.engine.begin() as connection:
        connection.execute(order_facts.delete())
        connection.execute(segment_answers.delete())
        connection.execute(segment_store.update().values(needs_rebuild=True))
    assert stack.segment_members() == want
    report = stack.rebuild_segments()
    assert report.orders == len([o for o in stack.orders() if o.member_id])
    assert stored_answers(stack) == want
    assert stack.segment_members() == want


def test_explain_gives_each_condition_with_the_members_figure_and_the_threshold(stack: Stack) -> None:
    first = stack.checkout(cart(("BEANS", 2), channel="store-a", identities=identities_of(4)), key="a")
    order = stack.checkout(cart(("BEANS", 3), channel="web", identities=identities_of(4)), key="b")
    deliver(stack)
    explanation = stack.explain_segment("recent-big-spenders", identity_text(4))
    assert explanation.member_id == order.member_id
    assert explanation.member is True
    [spend] = explanation.check.checks
    assert (spend.condition, spend.figure, spend.threshold, spend.holds) == (
        "spend in the last 30 days",
        (first.total + order.total).format(),
        "at least 200.00 CNY",
        True,
    )
    out = stack.explain_segment("store-never-online", str(order.member_id))
    assert out.member is False
    [[bought_in_store, never_online]] = [out.check.checks]
    assert (bought_in_store.figure, bought_in_store.holds) == ("1", True)
    assert never_online.condition == "not" and never_online.holds is False
    assert never_online.checks[0].condition == "orders ever, channel market or web"
    assert never_online.checks[0].figure == "1"


def test_a_merge_moves_the_absorbed_members_history_to_the_survivor(stack: Stack) -> None:
    sent = shop(stack, seed=5, days=6)
    market = Identity("marketplace", "tm-lin")
    on_market = stack.checkout(cart(("BEANS", 5), channel="market", identities=(market,)), key="m-1")
    in_store = stack.checkout(cart(("TEA", 1), channel="store-a", identities=identities_of(2)), key="m-2")
    deliver(stack)
    assert on_market.member_id in stack.segment_members()["recent-big-spenders"]
    # At the till she shows her marketplace account too: the two members become one.
    stack.checkout(cart(("TEA", 1), channel="store-a", identities=(*identities_of(2), market)), key="m-3")
    deliver(stack)
    survivor = stack.member(str(in_store.member_id)).id
    assert stack.member(str(on_market.member_id)).id == survivor
    want = expected(stack, sent)
    assert stack.segment_members() == want
    assert survivor in want["recent-big-spenders"]
    stored = stored_answers(stack)
    assert stored == want
    absorbed = {str(on_market.member_id), str(in_store.member_id)} - {survivor}
    assert not absorbed & {m for ids in stored.values() for m in ids}
    assert stack.rebuild_segments().differences == 0


def test_a_changed_definition_is_not_answered_from_the_old_one(stack: Stack, tmp_path: Path, database_url: str) -> None:
    sent = shop(stack, seed=9, days=10)
    before = expected(stack, sent)
    now = stack.clock.now()
    stack.close()
    lowered = TEXT.replace(
        'spend: {at_least: "200.00", within_days: 30}', 'spend: {at_least: "100.00", within_days: 30}'
    )
    clock = ManualClock(now)
    reopened = assemble(
        write_manifest(tmp_path, database_url, lowered), clock=clock, ids=RandomIds(1), lease_clock=clock
    )
    try:
        spent = {
            member_id: sum(
                o.total.amount - (o.refunded.amount if o.refunded else 0)
                for o in reopened.orders(member_id=member_id)
                if o.status not in SALES_EXCLUDED and o.created_at >= now - timedelta(days=30)
            )
            for member_id in {str(o.member_id) for o in reopened.orders() if o.member_id}
        }
        assert reopened.segment_members("recent-big-spenders")["recent-big-spenders"] == sorted(
            m for m, amount in spent.items() if amount >= 10000
        )
        assert reopened.segment_members("recent-big-spenders") != {"recent-big-spenders": before["recent-big-spenders"]}
        assert reopened.rebuild_segments().differences == 0
    finally:
        reopened.close()


def test_a_tier_no_block_declares_is_refused_at_assembly_however_deep(tmp_path: Path, sqlite_url: str) -> None:
    text = TEXT.replace("      - tier: gold\n", "      - tier: glod\n")
    assert text != TEXT
    with pytest.raises(ManifestError, match="unknown membership tier 'glod'; did you mean 'gold'") as caught:
        make_stack(tmp_path, sqlite_url, text=text)
    assert caught.value.doc_path == "segments[5].any[0].tier"
