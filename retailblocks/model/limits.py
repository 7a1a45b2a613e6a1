"""The documented bounds of the values that enter a stack, the same on every database.

Amounts and quantities are bounded well inside a 64-bit integer, so that a sum of many of them (an order's
total, a stock position after many receipts) is still exact in every column that stores it. Text is bounded
in length and may not hold NUL, which PostgreSQL refuses and SQLite silently keeps: checking here, where a
value enters, makes both databases behave alike.

The bounds, and what they keep inside their columns:

* MAX_AMOUNT: any one amount of money, including every sum and product Money arithmetic makes (amount
  columns are 64-bit, so even sums of thousands of such amounts stay exact).
* MAX_POINTS: one loyalty points movement and a member's points balance; as large as MAX_AMOUNT, since
  points are earned from money and spent as money.
* MAX_QUANTITY: a stock position (on hand), one stock movement, a cart's demand for one SKU and a
  refund's units of one line (quantity columns are 64-bit, so a position plus a movement never overflows).
* MAX_LINE_QUANTITY: the units of one cart line; a guard against typos, far below MAX_QUANTITY.
* MAX_CART_LINES: the distinct SKUs of one server-side cart, which is read and rewritten whole on every
  change, so its row stays small.
* MAX_KEY_LENGTH: an idempotency key a caller sends (key columns hold 200 characters, which leaves room
  for the prefixes blocks add to keys of their own).
* MAX_TEXT_LENGTH: free text (a reason, an attribution, a payment detail, an address line).
* MAX_ID_LENGTH: an identifier a caller names (a SKU, an order id); SKU columns hold 100 characters.
* MAX_SLUG_LENGTH: a channel, location, member id in a wallet, payment method or coupon code (those
  columns hold 64 characters).
* MAX_IDENTITY_LENGTH: the value of a member's identity (a phone number, an e-mail address, an openid),
  as long as the identity column.
"""

from __future__ import annotations

from retailblocks.errors import InvalidValue

#: The largest amount of money, in minor units, of one value (a price, a payment, an order's total):
#: ten trillion major units of a two-decimal currency.
MAX_AMOUNT = 10**15
#: The most loyalty points of one movement or one member's balance.
MAX_POINTS = MAX_AMOUNT
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
#: The most lines (distinct SKUs) of one server-side cart.
MAX_CART_LINES = 100


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
