"""What a shopper asks to buy, before and after pricing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.model._validators import non_empty, positive
from retailblocks.model.address import Fulfilment, FulfilmentKind
from retailblocks.model.member import Identity
from retailblocks.model.money import Money

#: More units than any cart line can hold: a guard against typos and overflow, not a business rule.
MAX_LINE_QUANTITY = 1_000_000


def _line_quantity(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    positive(instance, attribute, value)
    if value > MAX_LINE_QUANTITY:
        raise InvalidValue(f"'quantity' must be at most {MAX_LINE_QUANTITY:,} (got {value})")


@attrs.frozen
class CartLine:
    sku: str = attrs.field(validator=non_empty)
    quantity: int = attrs.field(validator=_line_quantity)


@attrs.frozen
class PaymentRequest:
    """A share of the order paid by one method. ``amount`` None means "whatever is left"."""

    method: str = attrs.field(validator=non_empty)
    amount: Money | None = None
    # Method-specific details: a card token, a gift card number, a wallet id.
    details: Mapping[str, str] = attrs.field(factory=dict)


def _payments(value: Iterable[PaymentRequest]) -> tuple[PaymentRequest, ...]:
    return tuple(value)


def _identities(value: Iterable[Identity]) -> tuple[Identity, ...]:
    return tuple(value)


def _coupons(value: Iterable[str]) -> tuple[str, ...]:
    codes = tuple(value)
    for code in codes:
        if not isinstance(code, str) or not code.strip():
            raise InvalidValue(f"coupon codes must be non-empty strings (got {code!r})")
    return codes


def _lines(value: Iterable[CartLine]) -> tuple[CartLine, ...]:
    lines = tuple(value)
    if not lines:
        raise InvalidValue("a cart needs at least one line (got none)")
    return lines


@attrs.frozen
class Cart:
    """A checkout request: the lines, who buys, through which channel, how it is paid and delivered."""

    channel: str = attrs.field(validator=non_empty)
    lines: tuple[CartLine, ...] = attrs.field(converter=_lines)
    payments: tuple[PaymentRequest, ...] = attrs.field(default=(), converter=_payments)
    identities: tuple[Identity, ...] = attrs.field(default=(), converter=_identities)
    fulfilment: Fulfilment = attrs.field(factory=lambda: Fulfilment(FulfilmentKind.CARRY_OUT))
    coupons: tuple[str, ...] = attrs.field(default=(), converter=_coupons)
    # A campaign or partner the order came through; recorded for attribution.
    attribution: str | None = None

    def demand(self) -> dict[str, int]:
        """Quantity per SKU, with lines of the same SKU added together."""
        totals: dict[str, int] = {}
        for line in self.lines:
            totals[line.sku] = totals.get(line.sku, 0) + line.quantity
        return totals


@attrs.frozen
class PricedLine:
    """A cart line with its price: ``subtotal`` = unit price × quantity; ``discount`` from adjustments."""

    index: int
    sku: str
    quantity: int
    unit_price: Money
    category: str = "general"
    weight_grams: int = 0
    discount: Money | None = None

    @property
    def subtotal(self) -> Money:
        return self.unit_price * self.quantity

    @property
    def total(self) -> Money:
        return self.subtotal - self.discount if self.discount is not None else self.subtotal
