"""Money as integer minor units with an ISO 4217 currency, and exact splitting of amounts."""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from retailblocks.errors import CurrencyMismatch, InvalidValue
from retailblocks.model.limits import MAX_AMOUNT, check_amount

# Minor-unit exponents of the currencies whose exponent is not 2. Everything else is 2.
_EXPONENTS: dict[str, int] = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "XAF": 0,
    "XOF": 0,
    "UGX": 0,
    "PYG": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
    "IQD": 3,
    "LYD": 3,
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Digit runs are capped (well past MAX_AMOUNT's 16 digits) so that int() never meets a number so long it
# refuses it with a plain ValueError; \d would also let in digits of other scripts.
_MONEY_TEXT = re.compile(
    r"^\s*(?P<sign>-)?(?P<units>[0-9]{1,30})(?:\.(?P<fraction>[0-9]{1,30}))?\s+(?P<currency>[A-Z]{3})\s*$"
)


def currency_exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (2 for CNY, 0 for JPY)."""
    return _EXPONENTS.get(currency, 2)


# Codes already found well-formed: a checkout makes hundreds of Money values in a handful of currencies.
_WELL_FORMED: set[str] = set()


def _check_currency(_instance: object, _attribute: object, value: str) -> None:
    if type(value) is str and value in _WELL_FORMED:
        return
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise InvalidValue(f"currency must be an ISO 4217 code of three capital letters (got {value!r})")
    if type(value) is str and len(_WELL_FORMED) < 1024:
        _WELL_FORMED.add(value)


def _check_amount(_instance: object, _attribute: object, value: int) -> None:
    check_amount(value, "amount")


@attrs.frozen(order=False)
class Money:
    """An amount in minor units (fen, cents) of one currency. Never a float."""

    amount: int = attrs.field(validator=_check_amount)
    currency: str = attrs.field(validator=_check_currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str) -> Money:
        """Parse ``"12.50 CNY"`` into ``Money(1250, "CNY")``; more decimals than the currency has are an error."""
        match = _MONEY_TEXT.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidValue(f"expected money as '<amount> <CURRENCY>', e.g. '12.50 CNY' (got {text!r})")
        currency = match["currency"]
        exponent = currency_exponent(currency)
        fraction = match["fraction"] or ""
        if len(fraction) > exponent:
            raise InvalidValue(f"{currency} has {exponent} decimal places, {text.strip()!r} has {len(fraction)}")
        amount = int(match["units"]) * 10**exponent + int((fraction or "0").ljust(exponent, "0") or "0")
        return cls(-amount if match["sign"] else amount, currency)

    def format(self) -> str:
        """The amount as a decimal string with its currency: ``"12.50 CNY"``."""
        exponent = currency_exponent(self.currency)
        sign = "-" if self.amount < 0 else ""
        units, minor = divmod(abs(self.amount), 10**exponent)
        if exponent == 0:
            return f"{sign}{units} {self.currency}"
        return f"{sign}{units}.{minor:0{exponent}d} {self.currency}"

    def __str__(self) -> str:
        return self.format()

    def check_same_currency(self, other: Money) -> None:
        """Raise :class:`~retailblocks.errors.CurrencyMismatch` unless ``other`` is money in this currency
        (``TypeError`` if it is not money at all): the check every arithmetic and comparison makes."""
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self.check_same_currency(other)
        return _derived(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self.check_same_currency(other)
        return _derived(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return _derived(-self.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if not isinstance(factor, int) or isinstance(factor, bool):
            raise TypeError("money can only be multiplied by an integer; use allocate() for shares")
        return _derived(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self.check_same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self.check_same_currency(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self.check_same_currency(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self.check_same_currency(other)
        return self.amount >= other.amount

    def __bool__(self) -> bool:
        return self.amount != 0

    def percent(self, basis_points: int) -> Money:
        """This amount times ``basis_points / 10000``, rounded half away from zero to the minor unit."""
        numerator = self.amount * basis_points
        quotient, remainder = divmod(abs(numerator), 10_000)
        if remainder * 2 >= 10_000:
            quotient += 1
        return Money(quotient if numerator >= 0 else -quotient, self.currency)

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        """Split this amount in proportion to ``weights`` so that the parts sum exactly to it.

        Uses the largest-remainder method: each part gets the floor of its exact share and the minor
        units left over go, one each, to the parts with the largest remainders (earlier parts first on
        ties), so the split is deterministic.
        """
        return [Money(part, self.currency) for part in allocate_integer(self.amount, weights)]


def allocate_integer(total: int, weights: Sequence[int]) -> list[int]:
    """Split the integer ``total`` in proportion to non-negative integer ``weights``, summing exactly."""
    if not weights:
        raise InvalidValue("cannot allocate over no weights")
    if any(w < 0 for w in weights):
        raise InvalidValue(f"allocation weights must be >= 0 (got {list(weights)})")
    weight_sum = sum(weights)
    if weight_sum == 0:
        # Nothing to be proportional to: spread evenly.
        weights = [1] * len(weights)
        weight_sum = len(weights)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    floors: list[int] = []
    remainders: list[tuple[int, int]] = []
    for index, weight in enumerate(weights):
        share, remainder = divmod(magnitude * weight, weight_sum)
        floors.append(share)
        remainders.append((-remainder, index))
    left = magnitude - sum(floors)
    for _, index in sorted(remainders)[:left]:
        floors[index] += 1
    return [sign * part for part in floors]


_new = object.__new__
_set = object.__setattr__


def _derived(amount: int, currency: str) -> Money:
    """The result of arithmetic on valid Money: an int of the same, valid currency, so the validators
    are not run again (prices, discounts and totals are added up dozens of times per checkout).

    Only the bound can break, so only it is checked: a sum or product past MAX_AMOUNT would otherwise
    reach a 64-bit column and fail there, differently on each database.
    """
    if not -MAX_AMOUNT <= amount <= MAX_AMOUNT:
        raise InvalidValue(f"amount must be within ±{MAX_AMOUNT} minor units (got {amount} {currency})")
    money = _new(Money)
    _set(money, "amount", amount)
    _set(money, "currency", currency)
    return money
