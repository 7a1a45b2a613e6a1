"""Earning, reversing, adjusting and expiring points."""

from __future__ import annotations

from datetime import timedelta

import pytest
from retailblocks_loyalty import EarningRules, InsufficientPoints, LoyaltyConfig, Tier

from retailblocks.errors import IdempotencyConflict, InvalidValue, UnknownMember
from retailblocks.model import Identity, PointsKind

from .conftest import MakeHarness, check_ledger, cny, order

RULES = LoyaltyConfig(
    tiers=[
        Tier("silver", cny("0.00")),
        Tier("gold", cny("1000.00"), earn_multiplier_percent=150, benefits=["free shipping"]),
    ],
    earning=EarningRules(
        points_per_unit=1,
        channel_multipliers_percent={"store": 200},
        sku_multipliers_percent={"GIFT-CARD": 0, "TEA-*": 150},
    ),
)


def _member(harness, phone: str = "13800000000") -> str:  # type: ignore[no-untyped-def]
    with harness.context() as ctx:
        return str(harness.block.membership_identify(ctx, [Identity("phone", phone)], True).id)


def test_one_point_per_whole_yuan_paid_without_shipping(make_harness: MakeHarness) -> None:
    harness = make_harness()
    member = _member(harness)
    with harness.context() as ctx:
        moved = harness.block.membership_earn(
            ctx, member, order("o1", ("CUP", 3, "33.30"), shipping="12.00"), "earn-o1"
        )
        again = harness.block.membership_earn(
            ctx, member, order("o1", ("CUP", 3, "33.30"), shipping="12.00"), "earn-o1"
        )
        check_ledger(ctx.db)
    assert moved is not None
    assert moved.points == 99
    assert moved.balance == 99
    assert moved.kind is PointsKind.EARN
    assert again == moved
    assert len(harness.events("points.earned")) == 1


def test_multipliers_for_channel_sku_and_tier_and_tier_upgrade(make_harness: MakeHarness) -> None:
    harness = make_harness(RULES)
    member = _member(harness)
    with harness.context("store-1") as ctx:
        first = harness.block.membership_earn(
            ctx,
            member,
            order(
                "o1", ("TEA-GREEN", 1, "100.00"), ("GIFT-CARD", 1, "500.00"), ("CUP", 1, "400.00"), channel="store-1"
            ),
            "earn-o1",
        )
        tier_after_first = harness.block.membership_member(ctx, member)
    # store x2; tea x1.5 -> 300, gift card 0, cup 800; silver tier 100%.
    assert first is not None
    assert first.points == 300 + 0 + 800
    assert tier_after_first is not None
    assert tier_after_first.tier == "gold"
    [changed] = harness.events("member.tier_changed")
    assert changed.payload == {"member_id": member, "from": "silver", "to": "gold", "lifetime_spend": 100000}
    with harness.context("web") as ctx:
        second = harness.block.membership_earn(ctx, member, order("o2", ("CUP", 1, "10.00")), "earn-o2")
    assert second is not None
    assert second.points == 15
    assert harness.block.tier_benefits("gold") == ["free shipping"]


def test_order_level_discount_is_shared_over_lines(make_harness: MakeHarness) -> None:
    harness = make_harness()
    member = _member(harness)
    with harness.context() as ctx:
        moved = harness.block.membership_earn(
            ctx, member, order("o1", ("A", 1, "60.00"), ("B", 1, "40.00"), discount="50.00"), "k"
        )
    assert moved is not None
    assert moved.points == 50


def test_partial_refunds_reverse_their_share_and_never_more_than_earned(make_harness: MakeHarness) -> None:
    harness = make_harness()
    member = _member(harness)
    block = harness.block
    with harness.context() as ctx:
        block.membership_earn(ctx, member, order("o1", ("A", 1, "100.00")), "earn")
        block.membership_adjust(ctx, member, 1000, "goodwill", "goodwill")
        one = block.membership_reverse(ctx, member, "o1", cny("33.33"), cny("100.00"), "refund-1")
        replay = block.membership_reverse(ctx, member, "o1", cny("33.33"), cny("100.00"), "refund-1")
        two = block.membership_reverse(ctx, member, "o1", cny("33.33"), cny("100.00"), "refund-2")
        rest = block.membership_reverse(ctx, member, "o1", cny("33.34"), cny("100.00"), "refund-3")
        beyond = block.membership_reverse(ctx, member, "o1", cny("100.00"), cny("100.00"), "refund-4")
        check_ledger(ctx.db)
    assert one is not None
    assert one.points == -33
    assert one.kind is PointsKind.REVERSE
    assert replay == one
    assert two is not None
    assert two.points == -33
    assert rest is not None
    assert rest.points == -34
    assert beyond is None
    assert rest.balance == 1000


def test_reversal_of_spent_points_takes_what_is_there_and_records_the_shortfall(
    make_harness: MakeHarness,
) -> None:
    harness = make_harness()
    member = _member(harness)
    block = harness.block
    with harness.context() as ctx:
        block.membership_earn(ctx, member, order("o1", ("A", 1, "100.00")), "earn")
        block.membership_adjust(ctx, member, -70, "spent in store", "spend")
        moved = block.membership_reverse(ctx, member, "o1", cny("100.00"), cny("100.00"), "cancel")
        check_ledger(ctx.db)
    assert moved is not None
    assert moved.points == -30
    assert moved.balance == 0
    assert "shortfall 70" in moved.reason
    assert harness.events("points.reversed")[0].payload["shortfall"] == 70


def test_adjust_never_overdraws_and_keys_are_checked(make_harness: MakeHarness) -> None:
    harness = make_harness()
    member = _member(harness)
    block = harness.block
    with harness.context() as ctx:
        block.membership_adjust(ctx, member, 10, "gift", "adj-1")
    with pytest.raises(InsufficientPoints), harness.context() as ctx:
        block.membership_adjust(ctx, member, -11, "oops", "adj-2")
    with pytest.raises(IdempotencyConflict), harness.context() as ctx:
        block.membership_reverse(ctx, member, "o1", cny("1.00"), cny("1.00"), "adj-1")
    with pytest.raises(InvalidValue), harness.context() as ctx:
        block.membership_adjust(ctx, member, 0, "nothing", "adj-3")
    with pytest.raises(UnknownMember), harness.context() as ctx:
        block.membership_adjust(ctx, "mem_nobody", 5, "gift", "adj-4")
    with harness.context() as ctx:
        assert block.membership_member(ctx, member).points == 10  # type: ignore[union-attr]
        check_ledger(ctx.db)
    assert [e.payload["points"] for e in harness.events("points.adjusted")] == [10]


def test_points_expire_after_the_configured_period(make_harness: MakeHarness) -> None:
    harness = make_harness(LoyaltyConfig(points_expire_after=timedelta(days=30)))
    member = _member(harness)
    block = harness.block
    with harness.context() as ctx:
        block.membership_earn(ctx, member, order("o1", ("A", 1, "100.00")), "earn-1")
    harness.clock.advance(timedelta(days=20))
    with harness.context() as ctx:
        block.membership_earn(ctx, member, order("o2", ("A", 1, "50.00")), "earn-2")
        # Redemption draws on the oldest lot first.
        block.membership_adjust(ctx, member, -40, "spent", "spend")
    harness.clock.advance(timedelta(days=11))
    with harness.context() as ctx:
        block.stack_maintain(ctx)
        block.stack_maintain(ctx)  # idempotent
        assert block.membership_member(ctx, member).points == 50  # type: ignore[union-attr]
    harness.clock.advance(timedelta(days=30))
    with harness.context() as ctx:
        block.stack_maintain(ctx)
        assert block.membership_member(ctx, member).points == 0  # type: ignore[union-attr]
        check_ledger(ctx.db)
    assert [e.payload["points"] for e in harness.events("points.expired")] == [-60, -50]


def test_bad_configuration_is_explained() -> None:
    from retailblocks_loyalty import PartnerExchange

    with pytest.raises(InvalidValue, match="threshold must be money >= 0"):
        Tier("gold", cny("-1.00"))
    with pytest.raises(InvalidValue, match="rate_percent"):
        PartnerExchange(rate_percent=0)
    with pytest.raises(InvalidValue, match="tier names must be unique"):
        LoyaltyConfig(tiers=[Tier("a", cny("0.00")), Tier("a", cny("1.00"))])
    with pytest.raises(InvalidValue, match="channel_multipliers_percent"):
        EarningRules(channel_multipliers_percent={"web": -5})
    with pytest.raises(InvalidValue, match="points_expire_after"):
        LoyaltyConfig(points_expire_after=timedelta(0))
