from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retailblocks.errors import CurrencyMismatch, InvalidValue
from retailblocks.model import Money, allocate_integer


def test_parse_and_format_round_trip() -> None:
    assert Money.parse("12.50 CNY") == Money(1250, "CNY")
    assert Money.parse("1000 JPY") == Money(1000, "JPY")
    assert Money.parse("0.125 KWD") == Money(125, "KWD")
    assert Money(-5, "EUR").format() == "-0.05 EUR"
    assert str(Money(1250, "CNY")) == "12.50 CNY"


@pytest.mark.parametrize("text", ["12.505 CNY", "12,50 CNY", "CNY 12.50", "12.50", "1.5 JPY", "", "12.50 cny"])
def test_parse_rejects_with_what_came(text: str) -> None:
    with pytest.raises(InvalidValue) as error:
        Money.parse(text)
    assert repr(text.strip()) in str(error.value) or repr(text) in str(error.value)


def test_no_floats_and_no_mixing_currencies() -> None:
    with pytest.raises(InvalidValue, match="integer number of minor units"):
        Money(12.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="ISO 4217"):
        Money(1, "yuan")
    with pytest.raises(CurrencyMismatch):
        Money(1, "CNY") + Money(1, "USD")
    with pytest.raises(TypeError):
        Money(1, "CNY") * 1.5  # type: ignore[operator]


def test_percent_rounds_half_away_from_zero() -> None:
    assert Money(1005, "CNY").percent(1000) == Money(101, "CNY")  # 100.5 → 101
    assert Money(-1005, "CNY").percent(1000) == Money(-101, "CNY")
    assert Money(999, "CNY").percent(3333) == Money(333, "CNY")


def test_allocate_splits_exactly_and_deterministically() -> None:
    assert Money(100, "CNY").allocate([1, 1, 1]) == [Money(34, "CNY"), Money(33, "CNY"), Money(33, "CNY")]
    assert allocate_integer(10, [0, 0]) == [5, 5]
    assert allocate_integer(-7, [1, 1]) == [-4, -3]


@given(
    total=st.integers(min_value=-(10**9), max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12),
)
def test_allocation_always_sums_to_the_total(total: int, weights: list[int]) -> None:
    parts = allocate_integer(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    if sum(weights) and 0 <= total <= sum(weights):
        # Never more than a part's own weight when the total fits: refunds never exceed what was paid.
        assert all(0 <= part <= weight for part, weight in zip(parts, weights, strict=True))


@given(st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12), st.integers(-1000, 1000))
def test_arithmetic_results_are_money_like_any_other(a: int, b: int, factor: int) -> None:
    # Results of arithmetic skip the validators (their parts are valid already): they must still be
    # indistinguishable from Money built the ordinary way.
    left, right = Money(a, "CNY"), Money(b, "CNY")
    for result, expected in [
        (left + right, Money(a + b, "CNY")),
        (left - right, Money(a - b, "CNY")),
        (-left, Money(-a, "CNY")),
        (left * factor, Money(a * factor, "CNY")),
        (factor * left, Money(a * factor, "CNY")),
    ]:
        assert result == expected and hash(result) == hash(expected) and repr(result) == repr(expected)
        assert type(result.amount) is int and result.currency == "CNY"
    with pytest.raises(AttributeError):
        (left + right).amount = 0  # type: ignore[misc]
