"""Points as a payment method: hold, capture, void, refund, status."""

from __future__ import annotations

import pytest

from retailblocks.errors import InvalidValue, PaymentDeclined
from retailblocks.model import Identity, PaymentStatus

from .conftest import MakeHarness, check_ledger, cny


def _member_with(harness, points: int) -> str:  # type: ignore[no-untyped-def]
    with harness.context() as ctx:
        member = harness.block.membership_identify(ctx, [Identity("phone", "13800000000")], True)
        harness.block.membership_adjust(ctx, member.id, points, "seed", "seed")
    return str(member.id)


def test_points_pay_for_an_order(make_harness: MakeHarness) -> None:
    harness = make_harness()  # 100 points = 1.00 CNY
    block = harness.block
    member = _member_with(harness, 5000)
    with harness.context() as ctx:
        auth = block.payment_authorize(ctx, "points", cny("30.00"), {}, member, "pay-1")
        assert block.payment_authorize(ctx, "points", cny("30.00"), {}, member, "pay-1") == auth
        assert block.membership_member(ctx, member).points == 2000  # type: ignore[union-attr]
        capture = block.payment_capture(ctx, auth, cny("20.00"), "cap-1")
        assert block.payment_capture(ctx, auth, cny("20.00"), "cap-1") == capture
        block.payment_void(ctx, auth, "void-1")
        block.payment_void(ctx, auth, "void-1")
        assert block.membership_member(ctx, member).points == 3000  # type: ignore[union-attr]
        status = block.payment_status(ctx, "points", "pay-1")
        assert status is not None
        assert status.status is PaymentStatus.CAPTURED
        refund = block.payment_refund(ctx, auth, cny("5.00"), "ref-1")
        assert block.payment_refund(ctx, auth, cny("5.00"), "ref-1") == refund
        with pytest.raises(InvalidValue, match="not yet refunded"):
            block.payment_refund(ctx, auth, cny("15.01"), "ref-2")
        assert block.membership_member(ctx, member).points == 3500  # type: ignore[union-attr]
        assert block.payment_status(ctx, "points", "pay-1").status is PaymentStatus.PARTIALLY_REFUNDED  # type: ignore[union-attr]
        assert block.payment_status(ctx, "points", "never") is None
        check_ledger(ctx.db)
    assert auth.method == "points"
    assert auth.block == "loyalty"
    assert [e.type for e in harness.events() if e.type.startswith("points.")] == [
        "points.adjusted",
        "points.held",
        "points.redeemed",
        "points.released",
        "points.refunded",
    ]


def test_not_enough_points_is_declined_and_leaves_nothing(make_harness: MakeHarness) -> None:
    harness = make_harness()
    member = _member_with(harness, 99)
    with pytest.raises(PaymentDeclined) as declined, harness.context() as ctx:
        harness.block.payment_authorize(ctx, "points", cny("1.00"), {}, member, "pay-1")
    assert declined.value.reason == "insufficient_points"
    with harness.context() as ctx:
        assert harness.block.payment_status(ctx, "points", "pay-1") is None
        assert harness.block.membership_member(ctx, member).points == 99  # type: ignore[union-attr]
    with pytest.raises(PaymentDeclined, match="needs a member"), harness.context() as ctx:
        harness.block.payment_authorize(ctx, "points", cny("1.00"), {}, None, "pay-2")


def test_a_full_capture_and_full_refund_round_trip_the_points(make_harness: MakeHarness) -> None:
    harness = make_harness()
    block = harness.block
    member = _member_with(harness, 1000)
    with harness.context() as ctx:
        auth = block.payment_authorize(ctx, "points", cny("3.33"), {}, member, "pay")
        block.payment_capture(ctx, auth, cny("1.11"), "cap-1")
        block.payment_capture(ctx, auth, cny("2.22"), "cap-2")
        block.payment_void(ctx, auth, "void")  # nothing left to release
        assert block.membership_member(ctx, member).points == 1000 - 333  # type: ignore[union-attr]
        block.payment_refund(ctx, auth, cny("3.33"), "refund")
        assert block.membership_member(ctx, member).points == 1000  # type: ignore[union-attr]
        assert block.payment_status(ctx, "points", "pay").status is PaymentStatus.REFUNDED  # type: ignore[union-attr]
        check_ledger(ctx.db)
