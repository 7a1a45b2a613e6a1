"""The documented bounds of the values that enter a stack, the same on every database.

Amounts and quantities are bounded well inside a 64-bit integer, so that a sum of many of them (an order's
total, a stock position after many receipts) is still exact in every column that stores it. Text is bounded
in length and may not hold NUL, which PostgreSQL refuses and SQLite silently keeps: checking here, where a
value enters, makes both databases behave alike.
"""

from __future__ import annotations

from retailblocks.errors import InvalidValue

#: The largest amount of money, in minor units, of one value (a price, a payment, an order's total):
#: ten trillion major units of a two-decimal currency.
MAX_AMOUNT = 10**15
#: The largest quantity of one stock position, one movement or one cart line.
MAX_QUANTITY = 10**9
#: The longest idempotency key a caller may send.
MAX_KEY_LENGTH = 150
#: The longest free text (a reason, an attribution) and the longest identifier (a SKU, an id).
MAX_TEXT_LENGTH = 500
MAX_ID_LENGTH = 100
#: The longest channel id, location id or coupon code.
MAX_SLUG_LENGTH = 64
#: The longest identity value (an e-mail address may have 254 characters).
MAX_IDENTITY_LENGTH = 256
#: The most units of one cart line.
MAX_LINE_QUANTITY = 1_000_000


def check_amount(value: int, what: str) -> int:
    """``value`` if it is an integer amount within ±MAX_AMOUNT, else InvalidValue naming ``what``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidValue(f"{what} must be an integer number of minor units (got {value!r})")
    if not -MAX_AMOUNT <= value <= MAX_AMOUNT:
        raise InvalidValue(f"{what} must be within ±{MAX_AMOUNT} minor units (got {value})")
    return value


def check_quantity(value: int, what: str, *, minimum: int = 0) -> int:
    """``value`` if it is an integer between ``minimum`` and MAX_QUANTITY, else InvalidValue naming ``what``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidValue(f"{what} must be an integer (got {value!r})")
    if not minimum <= value <= MAX_QUANTITY:
        raise InvalidValue(f"{what} must be between {minimum} and {MAX_QUANTITY} (got {value})")
    return value


def check_text(value: str, what: str, *, max_length: int = MAX_TEXT_LENGTH, allow_empty: bool = True) -> str:
    """``value`` if it is a string of at most ``max_length`` characters without NUL or lone surrogates."""
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be text (got {type(value).__name__})")
    if not allow_empty and not value.strip():
        raise InvalidValue(f"{what} must not be empty")
    if len(value) > max_length:
        raise InvalidValue(f"{what} must be at most {max_length} characters (got {len(value)})")
    if "\x00" in value:
        raise InvalidValue(f"{what} must not contain the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{what} is not valid Unicode text (it holds a lone surrogate)") from None
    return value


def check_key(value: str, what: str = "an idempotency key") -> str:
    """A caller's idempotency key: 1 to MAX_KEY_LENGTH characters of text."""
    return check_text(value, what, max_length=MAX_KEY_LENGTH, allow_empty=False)
