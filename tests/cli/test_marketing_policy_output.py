"""``blocks assemble`` shows the marketing stacking policy: every marketing block in the order it applies,
and how it combines."""

from __future__ import annotations

import pytest

from retailblocks.cli.assemble_commands import show_marketing_policy
from retailblocks.cli.support import console


def test_the_policy_is_printed_block_by_block(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 200)  # one row per line, whatever the terminal
    show_marketing_policy(
        {
            "order": ["flash-sale", "promotions", "member-prices", "bundles"],
            "order_from": "routing.marketing.order",
            "exclusive": {"flash-sale": "block, manifest"},
            "best_of": [["promotions", "member-prices"]],
        }
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "order: routing.marketing.order" in out
    assert "flash-sale │ exclusive (said by block, manifest)" in out
    assert "promotions │ best of promotions, member-prices" in out
    assert "bundles │ combines with the blocks before it" in out


def test_a_stack_without_marketing_prints_no_policy(capsys: pytest.CaptureFixture[str]) -> None:
    show_marketing_policy({"order": [], "order_from": "default (the order of blocks:)", "exclusive": {}, "best_of": []})
    show_marketing_policy(None)
    assert capsys.readouterr().out == ""
