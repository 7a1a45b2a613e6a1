"""``segments:`` and ``campaigns:``: declarative reach over the fused profile, checked where written."""

from __future__ import annotations

from datetime import date

from retailblocks.model import Money

AUDIENCE = """\
segments:
  - id: lapsed-regulars
    description: came often, not lately
    min_orders: 3
    min_spend: "200.00 CNY"
    not_purchased_for_days: 45
    tiers: [gold]
    channels: [store-xuhui]
    last_purchase_after: "2026-01-01"
campaigns:
  - {id: win-back, segment: lapsed-regulars, promotion: comeback-12, channel: miniprogram}
"""


def test_segments_and_campaigns_load(valid, load):
    manifest = load(valid + AUDIENCE)
    [segment] = manifest.segments
    assert segment.min_orders == 3
    assert segment.min_spend == Money(20000, "CNY")
    assert segment.channels == frozenset({"store-xuhui"})
    assert segment.last_purchase_after == date(2026, 1, 1)
    assert manifest.campaigns[0].segment == "lapsed-regulars"
    assert manifest.campaigns[0].channel == "miniprogram"


def test_both_sections_are_optional(valid, load):
    manifest = load(valid)
    assert manifest.segments == ()
    assert manifest.campaigns == ()


def test_a_misspelled_rule_gets_a_suggestion(valid, fails):
    fails(
        valid + "segments:\n  - {id: s, min_order: 2}\n",
        at=(22, 13),
        path="segments[0].min_order",
        says="did you mean 'min_orders'?",
    )


def test_a_campaign_names_a_declared_segment(valid, fails):
    fails(
        valid + AUDIENCE.replace("segment: lapsed-regulars", "segment: lapsed-regular"),
        at=(31, 29),
        path="campaigns[0].segment",
        says="did you mean 'lapsed-regulars'?",
    )


def test_a_campaign_goes_through_a_declared_channel(valid, fails):
    fails(
        valid + AUDIENCE.replace("channel: miniprogram}", "channel: mini-program}"),
        at=(31, 79),
        path="campaigns[0].channel",
        says="unknown channel 'mini-program'",
    )


def test_a_bad_date_and_an_impossible_range_are_refused(valid, fails):
    fails(
        valid + AUDIENCE.replace('"2026-01-01"', "last-week"),
        at=(29, 26),
        path="segments[0].last_purchase_after",
        says="expected a date like '2026-06-01'",
    )
    fails(
        valid + "segments:\n  - {id: s, min_orders: 5, max_orders: 2}\n",
        at=(22, 40),
        path="segments[0].max_orders",
        says="max_orders is below min_orders",
    )


def test_a_money_rule_is_in_the_merchants_currency(valid, fails):
    fails(
        valid + "segments:\n  - {id: s, min_spend: '10.00 USD'}\n",
        at=(22, 24),
        path="segments[0].min_spend",
        says="the merchant's currency is CNY",
    )
