"""Co-funded promotions: the discount split among the funders by share to the minor unit (largest
remainder, the same split every time), and shares refused unless they are shares summing to 100%."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from retailblocks_promotions import PromotionConfig
from retailblocks_promotions.config import FunderShare
from retailblocks_promotions.testing import cny, line, price, promo

from retailblocks.errors import InvalidValue


def shares_summing_to_100() -> st.SearchStrategy[list[int]]:
    """Two to five shares in basis points, each above 0, summing to exactly 10 000."""

    def cut(points: list[int]) -> list[int]:
        bounds = [0, *sorted(points), 10_000]
        return [b - a for a, b in itertools.pairwise(bounds)]

    return st.lists(st.integers(1, 9_999), min_size=1, max_size=4, unique=True).map(cut)


def funders_of(basis_points: list[int]) -> list[FunderShare]:
    *partners, merchant = basis_points
    return [
        *(FunderShare(partner=f"p{i}", share=f"{bp}bp") for i, bp in enumerate(partners)),
        # Percentages where they are whole, basis points otherwise: both spellings are read alike.
        FunderShare(merchant=f"{merchant // 100}%" if merchant % 100 == 0 else f"{merchant}bp"),
    ]


@settings(max_examples=300, deadline=None)
@given(shares_summing_to_100(), st.integers(1, 10**7), st.booleans())
def test_the_funders_parts_always_sum_to_the_discount_each_within_a_unit_of_its_share(
    basis_points: list[int], value: int, percentage: bool
) -> None:
    configured = promo(
        "co",
        (value % 10_000 + 1) / 100 if percentage else cny(value),
        target="order",
        allocation="across",
        funders=funders_of(basis_points),
    )
    cart = [line(0, "a", 3, 3 * 33_333), line(1, "b", 1, 999_999)]
    [adjustment] = price([configured], cart, shipping=500)
    parts = [part.amount for _, part in adjustment.funders]
    assert sum(parts) == adjustment.amount.amount
    assert [who for who, _ in adjustment.funders] == [*(f"p{i}" for i in range(len(basis_points) - 1)), "shop"]
    for part, bp in zip(parts, basis_points, strict=True):
        exact = Fraction(adjustment.amount.amount * bp, 10_000)
        assert exact - 1 < part < exact + 1
    lead = max(range(len(parts)), key=lambda i: (parts[i], -i))
    assert adjustment.funder == adjustment.funders[lead][0]
    assert price([configured], cart, shipping=500) == [adjustment]  # deterministic


def test_the_odd_units_go_to_the_largest_remainders_ties_to_the_first_listed() -> None:
    shares = [
        FunderShare(partner="a", share="33.33%"),
        FunderShare(partner="b", share="33.33%"),
        FunderShare(merchant="33.34%"),
    ]
    configured = promo("co", cny(701), target="order", allocation="across", funders=shares)
    [adjustment] = price([configured], [line(0, "x", 1, 10_000)])
    assert [(who, part.amount) for who, part in adjustment.funders] == [("a", 234), ("b", 233), ("shop", 234)]
    assert adjustment.funder == "a"


def test_a_single_funder_still_pays_it_all() -> None:
    [adjustment] = price([promo("one", cny(500), target="order", funder="metro")], [line(0, "x", 1, 10_000)])
    assert adjustment.funder == "metro" and adjustment.funders == ()


@pytest.mark.parametrize(
    ("shares", "says"),
    [
        ([FunderShare(partner="a", share="60%"), FunderShare(merchant="30%")], "add up to 90%"),
        ([FunderShare(partner="a", share="60%"), FunderShare(partner="a", share="40%")], "twice: a"),
    ],
)
def test_shares_that_are_not_100_percent_are_refused(shares: list[FunderShare], says: str) -> None:
    with pytest.raises(InvalidValue, match=says):
        PromotionConfig(id="co", value_type="percentage", value=10, funders=shares)


@pytest.mark.parametrize("bad", ["60", "sixty%", "0%", "100.001%", "10001bp", "12.5bp", 60])
def test_a_share_is_a_percentage_or_basis_points(bad: object) -> None:
    with pytest.raises(InvalidValue, match="'share' must be a share"):
        FunderShare(partner="a", share=bad)


def test_a_funder_is_a_partner_with_a_share_or_the_merchant() -> None:
    with pytest.raises(InvalidValue, match="either"):
        FunderShare(share="50%")
    with pytest.raises(InvalidValue, match="needs a share"):
        FunderShare(partner="a")
    with pytest.raises(InvalidValue, match="names 'funder' and 'funders'"):
        PromotionConfig(id="co", value_type="percentage", value=10, funder="a", funders=[FunderShare(merchant="100%")])
