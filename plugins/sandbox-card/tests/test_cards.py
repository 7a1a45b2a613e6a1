"""Card numbers: Luhn, lengths, test cards, tokens, brands."""

from __future__ import annotations

import pytest
from retailblocks_sandbox_card import TEST_CARDS, TEST_TOKENS, CardOutcome, luhn_valid
from retailblocks_sandbox_card.cards import brand_of, card_from_details, outcome_of, well_formed

from retailblocks.errors import InvalidValue


@pytest.mark.parametrize("number", list(TEST_CARDS))
def test_every_test_card_passes_luhn(number: str) -> None:
    assert luhn_valid(number)
    assert well_formed(number)


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("79927398713", True),  # the textbook example
        ("79927398710", False),
        ("4242424242424241", False),
        ("0", True),
        ("", False),
        ("42a2", False),
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424241",  # fails Luhn
        "79927398713",  # passes Luhn but has 11 digits
        "4" * 20,  # too long
        "4242 4242 4242 424x",
        "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",  # Arabic-Indic digits are digits to Python, not to a card network
        "4111111111111111",  # a valid number that is not a sandbox test card
    ],
)
def test_invalid_or_unknown_numbers_are_invalid_cards(number: str) -> None:
    assert outcome_of(number) is CardOutcome.INVALID


def test_spaces_and_dashes_are_ignored() -> None:
    assert outcome_of("4242 4242 4242 4242") is CardOutcome.APPROVE
    assert outcome_of("4000-0000-0000-0002") is CardOutcome.DECLINE


@pytest.mark.parametrize(("token", "number"), list(TEST_TOKENS.items()))
def test_tokens_map_to_test_cards(token: str, number: str) -> None:
    assert card_from_details({"token": token}) == number
    assert number in TEST_CARDS


def test_details_without_a_card_are_invalid() -> None:
    with pytest.raises(InvalidValue, match="details\\['card_number'\\]"):
        card_from_details({"cvc": "123"})


def test_unknown_token_yields_no_number() -> None:
    assert card_from_details({"token": "tok_nope"}) == ""


def test_brands() -> None:
    assert brand_of("4242424242424242") == "visa"
    assert brand_of("5555555555554444") == "mastercard"
    assert brand_of("6200000000000005") == "unionpay"
    assert brand_of("378282246310005") == "amex"
