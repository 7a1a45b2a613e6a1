"""Test cards: number checks (length, Luhn), what each sandbox test number does, and test tokens.

Pure functions shared by every gateway implementation, so the sandbox and the in-memory fake
answer a given card the same way.
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections.abc import Mapping

from retailblocks.errors import InvalidValue


class CardOutcome(enum.Enum):
    """What the sandbox gateway does when asked to authorize a card."""

    APPROVE = "approve"
    DECLINE = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    # The gateway authorizes, but the answer never reaches the caller.
    TIMEOUT_AUTHORIZED = "timeout_authorized"
    # The request times out and the gateway never authorizes.
    TIMEOUT_NOT_AUTHORIZED = "timeout_not_authorized"
    INVALID = "invalid_card"


#: The sandbox's test card numbers. Any other number, even a valid one, is declined as
#: ``invalid_card``: a sandbox must never be fed a real card.
TEST_CARDS: dict[str, CardOutcome] = {
    "4242424242424242": CardOutcome.APPROVE,  # Visa
    "5555555555554444": CardOutcome.APPROVE,  # Mastercard
    "6200000000000005": CardOutcome.APPROVE,  # UnionPay
    "378282246310005": CardOutcome.APPROVE,  # American Express
    "4000000000000002": CardOutcome.DECLINE,
    "4000000000009995": CardOutcome.INSUFFICIENT_FUNDS,
    "4000000000000119": CardOutcome.TIMEOUT_AUTHORIZED,
    "4000000000000127": CardOutcome.TIMEOUT_NOT_AUTHORIZED,
}

#: Tokens a client-side form would hand over instead of a number (``details["token"]``).
TEST_TOKENS: dict[str, str] = {
    "tok_visa": "4242424242424242",
    "tok_mastercard": "5555555555554444",
    "tok_unionpay": "6200000000000005",
    "tok_amex": "378282246310005",
    "tok_declined": "4000000000000002",
    "tok_insufficient_funds": "4000000000009995",
    "tok_timeout_authorized": "4000000000000119",
    "tok_timeout": "4000000000000127",
}

_BRANDS = (("4", "visa"), ("34", "amex"), ("37", "amex"), ("62", "unionpay"), ("5", "mastercard"))


def normalize(number: str) -> str:
    """The number without the spaces and dashes people type between digit groups."""
    return number.replace(" ", "").replace("-", "")


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` passes the Luhn (mod 10) check that every card number carries."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def well_formed(number: str) -> bool:
    """12 to 19 digits that pass the Luhn check."""
    digits = normalize(number)
    return digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19 and luhn_valid(digits)


def outcome_of(number: str) -> CardOutcome:
    """What the sandbox does with ``number``."""
    digits = normalize(number)
    if not well_formed(digits):
        return CardOutcome.INVALID
    return TEST_CARDS.get(digits, CardOutcome.INVALID)


#: How often a simulated shopper hands over each test token when the simulation profile names no card:
#: mostly cards that pay, some declined, short of funds, or lost in a time-out, as a real day brings them.
SIMULATED_TOKENS: tuple[tuple[str, int], ...] = (
    ("tok_visa", 40),
    ("tok_unionpay", 25),
    ("tok_mastercard", 15),
    ("tok_amex", 5),
    ("tok_declined", 7),
    ("tok_insufficient_funds", 5),
    ("tok_timeout_authorized", 3),
)


def simulated_card(details: Mapping[str, str], rng: random.Random) -> dict[str, str] | None:
    """The details a simulated shopper pays by card with: None (the profile's, as they are) when they name
    a card or a token already, else a test token drawn from ``rng`` (see SIMULATED_TOKENS)."""
    if details.get("card_number") or details.get("token"):
        return None
    tokens, weights = zip(*SIMULATED_TOKENS, strict=True)
    return {**details, "token": rng.choices(tokens, weights=weights)[0]}


def card_from_details(details: dict[str, str]) -> str:
    """The card number a payment's ``details`` carry, as ``card_number`` or as a test ``token``.

    An unknown token yields an empty number, which the gateway declines as ``invalid_card``.
    """
    if details.get("card_number"):
        return normalize(details["card_number"])
    if details.get("token"):
        return TEST_TOKENS.get(details["token"], "")
    raise InvalidValue(
        "sandbox-card needs the card in details['card_number'] or a test token in details['token'] "
        f"(got keys {sorted(details)})"
    )


def last4(number: str) -> str:
    digits = normalize(number)
    return digits[-4:] if len(digits) >= 4 else ""


def brand_of(number: str) -> str:
    digits = normalize(number)
    for prefix, brand in _BRANDS:
        if digits.startswith(prefix):
            return brand
    return "unknown"


def fingerprint(number: str, amount: int, currency: str) -> str:
    """A digest of an authorization request: tells a replay from a reused key, keeps no number."""
    return hashlib.sha256(f"{normalize(number)}|{amount}|{currency}".encode()).hexdigest()
