"""The model refuses amounts, quantities and text outside their documented bounds (issue 10, items 11 and 12)."""

from __future__ import annotations

import pytest

from retailblocks.errors import InvalidValue
from retailblocks.model import Cart, CartLine, Identity, Money, PaymentRequest
from retailblocks.model.limits import MAX_AMOUNT, MAX_ID_LENGTH, MAX_QUANTITY, MAX_TEXT_LENGTH


@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, -MAX_AMOUNT - 1, 2**63, -(2**63) - 1])
def test_money_out_of_bounds_is_refused(amount: int) -> None:
    with pytest.raises(InvalidValue, match="minor units"):
        Money(amount, "EUR")


def test_money_at_its_bounds_is_accepted() -> None:
    assert Money(MAX_AMOUNT, "EUR").amount == MAX_AMOUNT
    assert Money(-MAX_AMOUNT, "EUR").amount == -MAX_AMOUNT


def test_arithmetic_cannot_make_money_beyond_the_bound() -> None:
    top = Money(MAX_AMOUNT, "EUR")
    with pytest.raises(InvalidValue, match="minor units"):
        top + Money(1, "EUR")
    with pytest.raises(InvalidValue, match="minor units"):
        -top - Money(1, "EUR")
    with pytest.raises(InvalidValue, match="minor units"):
        Money(MAX_AMOUNT // 2 + 1, "EUR") * 2
    with pytest.raises(InvalidValue, match="minor units"):
        3 * Money(MAX_AMOUNT // 2, "EUR")
    assert (top - top + top).amount == MAX_AMOUNT


def test_parse_refuses_amounts_beyond_the_bound_and_absurdly_long_numbers() -> None:
    with pytest.raises(InvalidValue, match="minor units"):
        Money.parse("10000000000000.01 EUR")
    with pytest.raises(InvalidValue):
        Money.parse("9" * 5000 + " EUR")  # int() of so many digits raises a plain ValueError


def test_cart_demand_per_sku_is_bounded() -> None:
    line = CartLine("SKU", 1_000_000)
    with pytest.raises(InvalidValue, match="SKU"):
        Cart("web", [line] * (MAX_QUANTITY // 1_000_000 + 1))
    assert Cart("web", [line] * (MAX_QUANTITY // 1_000_000)).demand() == {"SKU": MAX_QUANTITY}


def test_payment_request_amount_must_be_money_within_bounds() -> None:
    with pytest.raises(InvalidValue, match="amount"):
        PaymentRequest("card", 10**20)  # type: ignore[arg-type]


BAD_TEXT = [
    ("NUL", "a\x00b"),
    ("lone surrogate", "a\ud800b"),
]


@pytest.mark.parametrize(("why", "text"), BAD_TEXT)
def test_text_that_enters_through_a_cart_is_checked(why: str, text: str) -> None:
    with pytest.raises(InvalidValue, match="SKU"):
        CartLine(text, 1)
    with pytest.raises(InvalidValue, match="channel"):
        Cart(text, [CartLine("A", 1)])
    with pytest.raises(InvalidValue, match="attribution"):
        Cart("web", [CartLine("A", 1)], attribution=text)
    with pytest.raises(InvalidValue, match="coupon"):
        Cart("web", [CartLine("A", 1)], coupons=[text])
    with pytest.raises(InvalidValue, match="identity"):
        Identity("phone", text)
    with pytest.raises(InvalidValue, match="method"):
        PaymentRequest(text)
    with pytest.raises(InvalidValue, match="detail"):
        PaymentRequest("gift_card", None, {"code": text})
    with pytest.raises(InvalidValue, match="detail"):
        PaymentRequest("gift_card", None, {text: "x"})


def test_text_longer_than_its_column_is_refused() -> None:
    with pytest.raises(InvalidValue, match=r"SKU.*at most 100"):
        CartLine("S" * (MAX_ID_LENGTH + 1), 1)
    with pytest.raises(InvalidValue, match=r"attribution.*at most"):
        Cart("web", [CartLine("A", 1)], attribution="x" * (MAX_TEXT_LENGTH + 1))
    with pytest.raises(InvalidValue, match="channel"):
        Cart("c" * 65, [CartLine("A", 1)])
    with pytest.raises(InvalidValue, match="identity"):
        Identity("email", "e" * 257)
    assert Cart("web", [CartLine("S" * MAX_ID_LENGTH, 1)], attribution="x" * MAX_TEXT_LENGTH)
