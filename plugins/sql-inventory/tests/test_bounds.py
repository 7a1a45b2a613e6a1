"""Quantities and text that enter the block stay within model.limits, alike on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from retailblocks.errors import InvalidValue
from retailblocks.model import ReservedStock, StockDemand
from retailblocks.model.limits import MAX_QUANTITY


def test_receiving_past_max_quantity_is_refused_with_on_hand_unchanged(inventory: Any) -> None:
    assert inventory.receive("BEANS", "wh-east", MAX_QUANTITY - 5) == MAX_QUANTITY - 5
    with pytest.raises(InvalidValue, match=str(MAX_QUANTITY)):
        inventory.receive("BEANS", "wh-east", 6)
    with pytest.raises(InvalidValue, match=str(MAX_QUANTITY)):
        inventory.adjust("BEANS", "wh-east", 6, key="found-too-many")
    assert inventory.level("BEANS", "wh-east") == (MAX_QUANTITY - 5, 0, 0)
    assert inventory.ledger_sum("BEANS", "wh-east") == MAX_QUANTITY - 5
    assert inventory.receive("BEANS", "wh-east", 5) == MAX_QUANTITY


@pytest.mark.parametrize("quantity", [MAX_QUANTITY + 1, 2**31, 2**63 - 1, 2**63])
def test_one_movement_beyond_max_quantity_is_refused(inventory: Any, quantity: int) -> None:
    with pytest.raises(InvalidValue, match=str(MAX_QUANTITY)):
        inventory.receive("BEANS", "wh-east", quantity)
    with pytest.raises(InvalidValue, match=str(MAX_QUANTITY)):
        inventory.adjust("BEANS", "wh-east", -quantity, key=f"loss-{quantity}")
    with pytest.raises(InvalidValue, match=str(MAX_QUANTITY)), inventory.ctx(None) as ctx:
        inventory.block.count(ctx, "BEANS", "wh-east", quantity)
    assert inventory.level("BEANS", "wh-east") == (0, 0, 0)


def test_a_count_at_the_bound_is_accepted(inventory: Any) -> None:
    with inventory.ctx(None) as ctx:
        assert inventory.block.count(ctx, "BEANS", "wh-east", MAX_QUANTITY) == MAX_QUANTITY
    with pytest.raises(InvalidValue, match=str(MAX_QUANTITY)):
        inventory.receive("BEANS", "wh-east", 1)


def test_demands_and_returns_beyond_max_quantity_are_refused(inventory: Any) -> None:
    with pytest.raises(InvalidValue, match=str(MAX_QUANTITY)):
        StockDemand("BEANS", MAX_QUANTITY + 1)
    with pytest.raises(InvalidValue, match=str(MAX_QUANTITY)):
        inventory.return_("ord-1", [ReservedStock("BEANS", "wh-east", MAX_QUANTITY + 1)], key="r1")


BAD_TEXT = [("NUL", "x\x00y"), ("lone surrogate", "x\udcffy")]


@pytest.mark.parametrize(("why", "text"), BAD_TEXT)
def test_bad_text_is_refused_the_same_on_both_databases(inventory: Any, why: str, text: str) -> None:
    with pytest.raises(InvalidValue, match="SKU"):
        inventory.receive(text, "wh-east", 1)
    with pytest.raises(InvalidValue, match="reason"):
        inventory.adjust("BEANS", "wh-east", 1, key="k1", reason=text)
    with pytest.raises(InvalidValue, match="key"):
        inventory.adjust("BEANS", "wh-east", 1, key=text)
    with pytest.raises(InvalidValue, match="location"):
        inventory.receive("BEANS", text, 1)
    with pytest.raises(InvalidValue, match="SKU"):
        inventory.reserve({text: 1})
    assert inventory.level("BEANS", "wh-east") == (0, 0, 0)


def test_over_long_reasons_are_refused(inventory: Any) -> None:
    with pytest.raises(InvalidValue, match=r"reason.*at most 500"):
        inventory.adjust("BEANS", "wh-east", 1, key="k2", reason="r" * 501)
    assert inventory.adjust("BEANS", "wh-east", 1, key="k3", reason="r" * 500) == 1
