"""The segment language in the manifest: what it reads as, and one positioned error for each way to get it
wrong. The JSON Schema editors use accepts and refuses the same."""

from __future__ import annotations

from datetime import date

import jsonschema
import pytest
import yaml

from retailblocks.manifest import manifest_json_schema
from retailblocks.manifest.conditions import (
    AllOf,
    AnyOf,
    Bounds,
    IdentityCondition,
    LastPurchaseCondition,
    Metric,
    MetricCondition,
    Not,
    RecencyCondition,
    RfmCondition,
    SignalCondition,
    TierCondition,
    Window,
)
from tests.manifest.test_jsonschema import BLOCKS

LANGUAGE = """\
segments:
  - id: recent-big-spenders
    all:
      - spend: {at_least: 200.00, within_days: 30}
      - not: {orders: {at_least: 1, channel: miniprogram}}
      - any: [{tier: gold}, {signal: {type: social.live_like, at_least: 1, within_days: 7}}]
  - id: march-tea
    units: {at_least: 3, category: tea, from: "2026-03-01", to: "2026-03-31"}
    has_identity: openid
  - id: champions
    min_orders: 2
    rfm: {recency: 5, frequency: {at_least: 3}, scale: {monetary: ["100.00 CNY", "300", 600, "1000.00"]}}
"""

CATALOG = """\
catalog:
  - {sku: TEA-1, title: Tea, price: "20.00 CNY", category: tea}
"""


def test_the_language_reads_as_conditions(valid, load):
    manifest = load(valid + CATALOG + LANGUAGE)
    spenders, tea, champions = manifest.segments
    assert spenders.condition == AllOf(
        (
            MetricCondition(Metric.SPEND, Bounds(at_least=20000), Window(within_days=30)),
            Not(MetricCondition(Metric.ORDERS, Bounds(at_least=1), channels=frozenset({"miniprogram"}))),
            AnyOf(
                (
                    TierCondition(frozenset({"gold"})),
                    SignalCondition(frozenset({"social.live_like"}), Bounds(at_least=1), Window(within_days=7)),
                )
            ),
        )
    )
    assert tea.condition == AllOf(
        (
            MetricCondition(
                Metric.UNITS,
                Bounds(at_least=3),
                Window(start=date(2026, 3, 1), end=date(2026, 3, 31)),
                categories=frozenset({"tea"}),
            ),
            IdentityCondition("openid"),
        )
    )
    orders, rfm = champions.condition.conditions
    assert orders == MetricCondition(Metric.ORDERS, Bounds(at_least=2))
    assert isinstance(rfm, RfmCondition)
    assert (rfm.recency, rfm.frequency, rfm.monetary) == (Bounds(5, 5), Bounds(at_least=3), None)
    assert rfm.scale.monetary == (10000, 30000, 60000, 100000)


def test_flat_rules_are_shorthand_for_conditions(valid, load):
    manifest = load(
        valid
        + """\
segments:
  - id: lapsed
    min_orders: 3
    max_spend: "500.00 CNY"
    purchased_within_days: 90
    not_purchased_for_days: 45
    tiers: [gold]
    channels: [store-xuhui]
    last_purchase_before: "2026-06-01"
    last_purchase_after: "2026-01-01"
"""
    )
    [segment] = manifest.segments
    assert segment.condition.conditions == (
        MetricCondition(Metric.ORDERS, Bounds(at_least=3)),
        MetricCondition(Metric.SPEND, Bounds(at_most=50000)),
        RecencyCondition(Bounds(at_most=90)),
        RecencyCondition(Bounds(at_least=45)),
        TierCondition(frozenset({"gold"})),
        MetricCondition(Metric.ORDERS, Bounds(at_least=1), channels=frozenset({"store-xuhui"})),
        LastPurchaseCondition(date(2026, 1, 1), date(2026, 5, 31)),
    )


@pytest.mark.parametrize(
    ("body", "culprit", "path", "says"),
    [
        ("any: [{spend: {at_least: 1}, tier: gold}]", "{spend", "any[0]", "a condition has one key"),
        ("all: [{spend: {at_leest: 1}}]", "at_leest", "all[0].spend.at_leest", "did you mean 'at_least'"),
        ("all: [{spemd: {at_least: 1}}]", "spemd", "all[0].spemd", "unknown condition 'spemd'; did you mean 'spend'"),
        ("nott: {tier: gold}", "nott", "nott", "did you mean 'not'"),
        ("all: []", "[]", "all", "non-empty list"),
        ("spend: {within_days: 30}", "{", "spend", "give at_least, at_most or both"),
        ("orders: {at_least: 5, at_most: 2}", "2}", "orders.at_most", "at_most is below at_least"),
        ("spend: {at_least: 1.001}", "1.001", "spend.at_least", "CNY has 2 decimal places"),
        ("spend: {at_least: '10.00 USD'}", "'10", "spend.at_least", "the merchant's currency is CNY"),
        ("spend: {at_least: -1}", "-1", "spend.at_least", "at least 0"),
        ("orders: {at_least: 1, within_days: 7, from: '2026-01-01'}", "7,", "orders.within_days", "not both"),
        ("orders: {at_least: 1, within_days: 0}", "0}", "orders.within_days", "within_days is at least 1"),
        ("orders: {at_least: 1, from: '2026-03-01', to: '2026-02-01'}", "'2026-02", "orders.to", "before 'from'"),
        ("orders: {at_least: 1, from: yesterday}", "yesterday", "orders.from", "a date like"),
        ("orders: {at_least: 1, channel: webb}", "webb", "orders.channel", "unknown channel 'webb'"),
        ("orders: {at_least: 1, category: cofee}", "cofee", "orders.category", "did you mean 'coffee'"),
        ("has_identity: fax", "fax", "has_identity", "expected one of 'phone'"),
        ("signal: {type: Live, at_least: 1}", "Live", "signal.type", "dotted lower-case words"),
        ("signal: {at_least: 1}", "{", "signal", "missing required key 'type'"),
        ("rfm: {recency: 6}", "6", "rfm.recency", "a whole number from 0 to 5"),
        ("rfm: {scale: {}}", "{scale", "rfm", "give at least one score"),
        ("rfm: {recency: 5, scale: {recency_days: [30, 20, 90, 100]}}", "20", "rfm.scale.recency_days[1]", "must rise"),
        ("last_purchase: {}", "{}", "last_purchase", "give 'from', 'to' or both"),
        ("recency: {at_most: many}", "many", "recency.at_most", "expected an integer"),
    ],
)
def test_a_bad_segment_gets_one_error_where_it_was_written(valid, fails, body, culprit, path, says):
    head = valid + CATALOG.replace("tea}", "coffee}") + "segments:\n  - id: s\n"
    line = head.count("\n") + 1
    fails(head + f"    {body}\n", at=(line, 4 + body.index(culprit) + 1), path=f"segments[0].{path}", says=says)


def test_nesting_is_bounded(valid, fails):
    body = "all: [" + "{not: " * 17 + "{tier: gold}" + "}" * 17 + "]"
    head = valid + "segments:\n  - id: s\n"
    fails(
        head + f"    {body}\n",
        at=(head.count("\n") + 1, 4 + len("all: [") + 16 * len("{not: ") + 1),
        path="segments[0].all[0]" + ".not" * 16,
        says="nest deeper than 16 levels",
    )


@pytest.fixture
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(manifest_json_schema(BLOCKS))


def test_the_schema_accepts_the_language(validator, valid):
    document = yaml.safe_load(valid + CATALOG + LANGUAGE)
    assert list(validator.iter_errors(document)) == []


@pytest.mark.parametrize(
    "segment",
    [
        {"id": "s", "any": [{"spend": {"at_least": 1}, "tier": "gold"}]},
        {"id": "s", "all": []},
        {"id": "s", "nott": {"tier": "gold"}},
        {"id": "s", "spend": {"within_days": 30}},
        {"id": "s", "orders": {"at_least": 1, "chanel": "web"}},
        {"id": "s", "has_identity": "fax"},
        {"id": "s", "rfm": {"recency": 6}},
        {"id": "s", "signal": {"at_least": 1}},
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(validator, valid, segment):
    document = yaml.safe_load(valid)
    document["segments"] = [segment]
    assert list(validator.iter_errors(document)) != []
