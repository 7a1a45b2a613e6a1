"""Builders for tests of the promotions engine: carts and promotions written tersely, in CNY minor units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from retailblocks.model import Money
from retailblocks_promotions.config import PromotionConfig, TaxConfig
from retailblocks_promotions.engine import Adjustment, Line, Shopper, Usage, compute

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def cny(amount: int) -> Money:
    return Money(amount, "CNY")


def line(index: int, sku: str, quantity: int, subtotal: int, category: str = "general") -> Line:
    """A line given, like the peer's fixtures, by quantity and subtotal (which must divide evenly)."""
    assert subtotal % quantity == 0, "the engine takes unit prices in minor units"
    return Line(index, sku, quantity, cny(subtotal // quantity), category)


def promo(id: str, value: Any, **fields: Any) -> PromotionConfig:
    """A percentage promotion for a number, a fixed one for an int of minor units wrapped in cny()."""
    value_type: Literal["percentage", "fixed"] = "fixed" if isinstance(value, Money) else "percentage"
    fields.setdefault("automatic", True)
    return PromotionConfig(id=id, value_type=value_type, value=value, **fields)


def price(
    promotions: Sequence[PromotionConfig],
    lines: Sequence[Line],
    *,
    shipping: int = 0,
    shopper: Shopper | None = None,
    coupons: Sequence[str] = (),
    usage: Mapping[str, Usage] | None = None,
    now: datetime = NOW,
    taxes: TaxConfig | None = None,
) -> list[Adjustment]:
    return compute(
        lines,
        cny(shipping),
        shopper or Shopper(),
        coupons,
        promotions,
        now=now,
        merchant_id="shop",
        usage=usage,
        taxes=taxes,
    )


def shares(adjustments: Sequence[Adjustment]) -> list[tuple[str, int, int]]:
    """(promotion id, line index, minor units) for every line share, in order."""
    return [
        (adjustment.promotion_id, index, money.amount)
        for adjustment in adjustments
        for index, money in adjustment.line_amounts
    ]


def totals(adjustments: Sequence[Adjustment]) -> dict[str, int]:
    return {adjustment.promotion_id: adjustment.amount.amount for adjustment in adjustments}
