"""Exchanging points with partner programmes, and what settlement reads."""

from __future__ import annotations

import pytest
from retailblocks_loyalty import InsufficientPoints, LoyaltyConfig, PartnerExchange

from retailblocks.errors import InvalidValue
from retailblocks.model import Identity, PointsKind

from .conftest import MakeHarness, check_ledger

CONFIG = LoyaltyConfig(
    partners={
        "airline": PartnerExchange(rate_percent=50, max_per_exchange=10_000),
        "bank": PartnerExchange(rate_percent=200),
    }
)


def test_exchange_in_and_out_moves_points_through_clearing_accounts(make_harness: MakeHarness) -> None:
    harness = make_harness(CONFIG)
    block = harness.block
    with harness.context() as ctx:
        member = block.membership_identify(ctx, [Identity("phone", "13800000000")], True).id
        moved_in = block.exchange_in(ctx, member, "airline", 1000, "x-in")
        assert block.exchange_in(ctx, member, "airline", 1000, "x-in") == moved_in
        moved_out = block.exchange_out(ctx, member, "bank", 200, "x-out")
        balances = block.partner_balances(ctx)
        kinds = [entry.kind for entry in block.journal(ctx, member)]
        check_ledger(ctx.db)
    assert moved_in.points == 500
    assert moved_in.kind is PointsKind.TRANSFER
    assert moved_out.points == -200
    assert moved_out.balance == 300
    # airline: we credited 500 points on its behalf (it owes us); bank: we owe it 200 of ours.
    assert balances == {"airline": -500, "bank": 200}
    assert kinds == ["exchange", "exchange"]
    events = harness.events("points.exchanged")
    assert [(e.payload["direction"], e.payload["partner_points"]) for e in events] == [
        ("in", 1000),
        ("out", 100),
    ]


def test_exchange_limits(make_harness: MakeHarness) -> None:
    harness = make_harness(CONFIG)
    block = harness.block
    with harness.context() as ctx:
        member = block.membership_identify(ctx, [Identity("phone", "13800000000")], True).id
        with pytest.raises(InvalidValue, match="unknown partner 'hotel'"):
            block.exchange_in(ctx, member, "hotel", 10, "a")
        with pytest.raises(InvalidValue, match="at most 10000"):
            block.exchange_in(ctx, member, "airline", 20_002, "b")
        with pytest.raises(InvalidValue, match="less than one"):
            block.exchange_in(ctx, member, "airline", 1, "c")
    with pytest.raises(InsufficientPoints), harness.context() as ctx:
        block.exchange_out(ctx, member, "bank", 10, "d")


def test_the_exchange_hook_brings_points_in_and_sends_them_out(make_harness: MakeHarness) -> None:
    harness = make_harness(CONFIG)
    block = harness.block
    with harness.context() as ctx:
        member = block.membership_identify(ctx, [Identity("phone", "13800000001")], True).id
        brought = block.membership_exchange(ctx, member, "airline", 600, "hook-in")
        sent = block.membership_exchange(ctx, member, "airline", -100, "hook-out")
        with pytest.raises(InvalidValue, match="non-zero"):
            block.membership_exchange(ctx, member, "airline", 0, "hook-zero")
        check_ledger(ctx.db)
    assert (brought.points, sent.points, sent.balance) == (300, -100, 200)
