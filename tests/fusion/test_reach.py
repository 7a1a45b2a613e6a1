"""Reach made precise: a segment over the fused profile, a campaign that issues coupons to it, and a
report that counts exactly the orders that used them."""

from __future__ import annotations

import pytest

from retailblocks.errors import InvalidValue
from retailblocks.fusion import campaign_report, catch_up, profiles, run_campaign
from retailblocks.fusion.segments import members_of
from retailblocks.fusion.tables import campaign_coupons
from retailblocks.model import Identity
from retailblocks.stack import Stack
from tests.helpers import cart


def phone(n: int) -> tuple[Identity, ...]:
    return (Identity("phone", f"+861380000010{n}"),)


def test_a_campaigns_report_counts_exactly_the_orders_that_used_its_coupons(stack: Stack) -> None:
    # Three store regulars and one online-only shopper.
    visits = [
        stack.checkout(cart(("TEA", 1), channel="store-a", identities=phone(n)), key=f"visit-{n}") for n in range(3)
    ]
    stack.checkout(cart(("BEANS", 1), identities=phone(9)), key="online-only")
    catch_up(stack)
    with stack.context(flow="test", read_only=True) as ctx:
        segment = stack.manifest.segments[0]
        regulars = members_of(segment, profiles(stack, ctx))
    assert regulars == sorted(str(v.member_id) for v in visits)

    run = run_campaign(stack, "comeback")
    assert (run.segment_size, run.issued, run.reach) == (3, 3, 3)
    assert run_campaign(stack, "comeback").issued == 0  # running again reaches nobody twice
    with stack.engine.connect() as connection:
        rows = connection.execute(campaign_coupons.select()).mappings().all()
    code_of = {row["member_id"]: row["code"] for row in rows}
    codes = [code_of[str(v.member_id)] for v in visits]

    used = stack.checkout(cart(("BEANS", 1), identities=phone(0), coupons=(codes[0],)), key="back-0")
    used_then_cancelled = stack.checkout(cart(("BEANS", 1), identities=phone(1), coupons=(codes[1],)), key="back-1")
    stack.cancel(used_then_cancelled.id)
    stack.checkout(cart(("BEANS", 1), identities=phone(2)), key="back-2-without-coupon")

    report = campaign_report(stack, "comeback")
    assert report.reach == 3
    assert [o.order_id for o in report.orders] == [used.id]
    assert report.revenue == used.total
    coupon_discount = sum(a.amount.amount for a in used.adjustments if a.coupon)
    assert (
        {f: m.amount for f, m in report.discount_by_funder.items()}
        == {"test-shop": coupon_discount}
        == {"test-shop": 1200}
    )


def test_segments_follow_the_rules_of_the_manifest(stack: Stack) -> None:
    stack.checkout(cart(("BEANS", 4), identities=phone(5)), key="big")
    stack.checkout(cart(("TEA", 1), channel="store-a", identities=phone(6)), key="small")
    catch_up(stack)
    with stack.context(flow="test", read_only=True) as ctx:
        found = profiles(stack, ctx)
    by_segments = sorted(profile.segments for profile in found.values())
    assert by_segments == [("big-spenders",), ("store-regulars", "tea-drinkers")]


def test_an_unknown_campaign_is_refused_with_a_suggestion(stack: Stack) -> None:
    with pytest.raises(InvalidValue, match="did you mean 'comeback'"):
        run_campaign(stack, "comebak")
