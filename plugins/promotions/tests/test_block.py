"""The block on SQLite and PostgreSQL: hooks, limits under concurrency, budgets, release, issued coupons."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
from retailblocks_promotions import PromotionConfig, Promotions
from retailblocks_promotions.testing import cny

from retailblocks.errors import InvalidValue, MemberLimitReached, PromotionRejected
from retailblocks.model import AdjustmentTarget, Member, PriceAdjustment, PricedLine
from retailblocks.testing import BlockHarness

Build = Callable[..., BlockHarness]
LINES = [PricedLine(0, "latte", 2, cny(3000), "coffee"), PricedLine(1, "mug", 1, cny(8000), "merch")]
ALICE = Member("m-alice", tier="gold", segments=frozenset({"student"}))
BOB = Member("m-bob")


def block_of(harness: BlockHarness) -> Promotions:
    assert isinstance(harness.block, Promotions)
    return harness.block


def adjust(
    harness: BlockHarness,
    coupons: Sequence[str] = (),
    member: Member | None = ALICE,
    existing: Sequence[PriceAdjustment] = (),
) -> list[PriceAdjustment]:
    with harness.context("web") as ctx:
        return list(block_of(harness).marketing_adjustments(ctx, LINES, cny(1000), member, coupons, existing))


def redeem(
    harness: BlockHarness, order_id: str, adjustments: Sequence[PriceAdjustment], member_id: str | None = "m-alice"
) -> None:
    with harness.context("web", flow_id=order_id) as ctx:
        block_of(harness).redeem(ctx, order_id, member_id, adjustments)


def release(harness: BlockHarness, order_id: str) -> None:
    with harness.context("web", flow_id=order_id) as ctx:
        block_of(harness).marketing_release(ctx, order_id)


def coupon_promo(**fields: object) -> PromotionConfig:
    fields.setdefault("code", "SAVE10")
    return PromotionConfig(id="save10", value_type="percentage", value=10, **fields)  # type: ignore[arg-type]


def test_adjustments_through_the_hook(make_harness: Build) -> None:
    harness = make_harness(
        PromotionConfig(id="gold", value_type="percentage", value=10, tiers=["gold"], campaign="vip"),
        PromotionConfig(id="ship", value_type="fixed", value=cny(500), target="shipping", funder="courier"),
    )
    result = adjust(harness)
    assert [(a.promotion_id, a.amount, a.target) for a in result] == [
        ("gold", cny(1400), AdjustmentTarget.ITEM),
        ("ship", cny(500), AdjustmentTarget.SHIPPING),
    ]
    assert result[0].block == "promotions"
    assert result[0].campaign == "vip"
    assert result[0].funder == "test-shop"
    assert result[1].funder == "courier"
    assert adjust(harness, member=BOB)[0].promotion_id == "ship"


def test_existing_adjustments_of_other_blocks_are_stacked_on(make_harness: Build) -> None:
    harness = make_harness(PromotionConfig(id="half", value_type="percentage", value=50, target="order"))
    earlier = PriceAdjustment(
        block="other",
        promotion_id="x",
        target=AdjustmentTarget.ITEM,
        amount=cny(6000),
        reason="free lattes",
        funder="test-shop",
        line_amounts=((0, cny(6000)),),
    )
    result = adjust(harness, existing=[earlier])
    assert result[0].line_amounts == ((1, cny(4000)),)


def test_usage_limit_holds_under_concurrency(make_harness: Build) -> None:
    harness = make_harness(coupon_promo(usage_limit=3))
    adjustments = adjust(harness, coupons=["save10"])
    assert adjustments
    assert adjustments[0].coupon == "save10"
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(number: int) -> None:
        try:
            redeem(harness, f"order-{number}", adjustments, member_id=None)
            result = "ok"
        except PromotionRejected:
            result = "rejected"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("ok") == 3
    assert len(harness.events("promotion.redeemed")) == 3
    assert adjust(harness, coupons=["SAVE10"]) == []  # used up: the code is left out


def test_redeem_is_idempotent_per_order_and_release_gives_back(make_harness: Build) -> None:
    harness = make_harness(coupon_promo(usage_limit=1))
    adjustments = adjust(harness, coupons=["SAVE10"])
    redeem(harness, "o1", adjustments)
    redeem(harness, "o1", adjustments)  # a replay changes nothing
    assert len(harness.events("promotion.redeemed")) == 1
    with pytest.raises(PromotionRejected, match="usage limit"):
        redeem(harness, "o2", adjustments)
    release(harness, "o1")
    release(harness, "o1")
    assert len(harness.events("promotion.released")) == 1
    redeem(harness, "o2", adjustments)
    with harness.context() as ctx:
        rows = block_of(harness).redemptions(ctx, include_released=True)
    assert [(r.order_id, r.released) for r in rows] == [("o1", True), ("o2", False)]


def test_per_member_limit(make_harness: Build) -> None:
    harness = make_harness(coupon_promo(per_member_limit=1))
    adjustments = adjust(harness, coupons=["SAVE10"])
    redeem(harness, "o1", adjustments, member_id="m-alice")
    # The member hears that their own limit is reached, not that the coupon does not apply.
    with pytest.raises(MemberLimitReached, match="already used promotion 'save10' 1 time"):
        adjust(harness, coupons=["SAVE10"])
    assert adjust(harness, coupons=["SAVE10"], member=BOB) != []
    with pytest.raises(MemberLimitReached, match="already used"):
        redeem(harness, "o2", adjustments, member_id="m-alice")
    redeem(harness, "o3", adjustments, member_id="m-bob")
    with pytest.raises(PromotionRejected, match="no member"):
        redeem(harness, "o4", adjustments, member_id=None)


def test_budget_is_spent_and_exhausted(make_harness: Build) -> None:
    harness = make_harness(
        PromotionConfig(
            id="launch", value_type="fixed", value=cny(1000), target="order", budget=cny(2500), campaign="launch"
        )
    )
    first = adjust(harness)
    redeem(harness, "o1", first)
    redeem(harness, "o2", adjust(harness))
    third = adjust(harness)
    assert third == []  # 500 left cannot cover 1000
    with pytest.raises(PromotionRejected, match="budget"):
        redeem(harness, "o3", first)
    release(harness, "o1")
    redeem(harness, "o3", first)
    with harness.context() as ctx:
        rows = block_of(harness).redemptions(ctx, campaign="launch")
    assert sum(r.amount.amount for r in rows) == 2000
    assert {r.funder for r in rows} == {"test-shop"}

    harness2 = make_harness(
        PromotionConfig(id="launch-2", value_type="fixed", value=cny(1000), target="order", budget=cny(2000))
    )
    redeem(harness2, "o1", adjust(harness2))
    redeem(harness2, "o2", adjust(harness2))
    assert [e.payload["promotion_id"] for e in harness2.events("promotion.budget_exhausted")] == ["launch-2"]


def test_budget_holds_under_concurrency(make_harness: Build) -> None:
    harness = make_harness(
        PromotionConfig(id="b", value_type="fixed", value=cny(1000), target="order", budget=cny(3000))
    )
    adjustments = adjust(harness)
    ok = []

    def attempt(number: int) -> None:
        try:
            redeem(harness, f"order-{number}", adjustments, member_id=None)
            ok.append(number)
        except PromotionRejected:
            pass

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ok) == 3


def test_issued_coupons(make_harness: Build) -> None:
    harness = make_harness(
        PromotionConfig(id="gift", value_type="fixed", value=cny(2000), target="order", automatic=False)
    )
    block = block_of(harness)
    with harness.context() as ctx:
        codes = block.issue_coupons(ctx, "gift", ["m-alice", "m-bob"], "batch-1")
    with harness.context() as ctx:
        again = block.issue_coupons(ctx, "gift", ["m-alice", "m-bob"], "batch-1")
    assert codes == again
    assert len(set(codes.values())) == 2
    assert len(harness.events("coupon.issued")) == 2
    assert adjust(harness) == []
    assert adjust(harness, coupons=[codes["m-bob"]]) == []  # Bob's code is not Alice's
    mine = adjust(harness, coupons=[codes["m-alice"].lower()])
    assert mine[0].amount == cny(2000)
    assert mine[0].coupon == codes["m-alice"].lower()
    redeem(harness, "o1", mine)
    assert adjust(harness, coupons=[codes["m-alice"]]) == []  # used once, its limit
    with pytest.raises(PromotionRejected, match="used up"):
        redeem(harness, "o2", mine)
    release(harness, "o1")
    assert adjust(harness, coupons=[codes["m-alice"]]) != []
    with harness.context() as ctx, pytest.raises(InvalidValue, match="unknown promotion"):
        block.issue_coupons(ctx, "nope", ["m-alice"], "batch-2")


def test_migrations_and_adjustments_of_other_blocks_are_ignored_at_redeem(make_harness: Build) -> None:
    harness = make_harness(coupon_promo(usage_limit=1))
    foreign = PriceAdjustment(
        block="other",
        promotion_id="save10",
        target=AdjustmentTarget.ORDER,
        amount=cny(100),
        reason="theirs",
        funder="x",
    )
    redeem(harness, "o1", [foreign])
    assert harness.events("promotion.redeemed") == []
