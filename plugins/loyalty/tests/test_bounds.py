"""Points and text that enter loyalty stay within model.limits, alike on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from retailblocks.errors import InvalidValue
from retailblocks.model import Identity
from retailblocks.model.limits import MAX_POINTS

from .conftest import MakeHarness, check_ledger


def _member(harness) -> str:  # type: ignore[no-untyped-def]
    with harness.context() as ctx:
        return str(harness.block.membership_identify(ctx, [Identity("phone", "13800000000")], True).id)


def _points(harness, member: str) -> int:  # type: ignore[no-untyped-def]
    with harness.context() as ctx:
        found = harness.block.membership_member(ctx, member)
        check_ledger(ctx.db)
    return int(found.points)


@pytest.mark.parametrize("points", [MAX_POINTS + 1, 2**63, -(2**63)])
def test_an_adjustment_beyond_max_points_is_refused(make_harness: MakeHarness, points: int) -> None:
    harness = make_harness()
    member = _member(harness)
    with pytest.raises(InvalidValue, match=str(MAX_POINTS)), harness.context() as ctx:
        harness.block.membership_adjust(ctx, member, points, "typo", "adj")
    assert _points(harness, member) == 0


def test_a_balance_cannot_pass_max_points(make_harness: MakeHarness) -> None:
    harness = make_harness()
    member = _member(harness)
    with harness.context() as ctx:
        harness.block.membership_adjust(ctx, member, MAX_POINTS, "all of them", "adj-1")
    with pytest.raises(InvalidValue, match=str(MAX_POINTS)), harness.context() as ctx:
        harness.block.membership_adjust(ctx, member, 1, "one more", "adj-2")
    assert _points(harness, member) == MAX_POINTS


@pytest.mark.parametrize("text", ["x\x00y", "x\ud800y"])
def test_bad_text_is_refused_the_same_on_both_databases(make_harness: MakeHarness, text: str) -> None:
    harness = make_harness()
    member = _member(harness)
    attempts = [
        ("reason", lambda ctx: harness.block.membership_adjust(ctx, member, 5, text, "adj-1")),
        ("key", lambda ctx: harness.block.membership_adjust(ctx, member, 5, "gift", text)),
        ("member", lambda ctx: harness.block.membership_adjust(ctx, text, 5, "gift", "adj-2")),
        ("member", lambda ctx: harness.block.membership_member(ctx, text)),
    ]
    for what, attempt in attempts:
        with pytest.raises(InvalidValue, match=what), harness.context() as ctx:
            attempt(ctx)
    assert _points(harness, member) == 0
