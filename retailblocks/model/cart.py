"""What a shopper asks to buy, before and after pricing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.model._validators import positive, text
from retailblocks.model.address import Fulfilment, FulfilmentKind
from retailblocks.model.limits import (
    MAX_ID_LENGTH,
    MAX_LINE_QUANTITY,
    MAX_QUANTITY,
    MAX_SLUG_LENGTH,
    MAX_TEXT_LENGTH,
    check_text,
)
from retailblocks.model.member import Identity
from retailblocks.model.money import Money

__all__ = ["MAX_LINE_QUANTITY", "Cart", "CartLine", "PaymentRequest", "PricedLine"]


def _line_quantity(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    positive(instance, attribute, value)
    if value > MAX_LINE_QUANTITY:
        raise InvalidValue(f"'quantity' must be at most {MAX_LINE_QUANTITY:,} (got {value})")


def _optional_fulfilment(_instance: object, _attribute: object, value: Fulfilment | None) -> None:
    if value is not None and not isinstance(value, Fulfilment):
        raise InvalidValue(f"a cart line's fulfilment must be a Fulfilment or None (got {type(value).__name__})")


@attrs.frozen
class CartLine:
    """One SKU and how many. ``fulfilment`` is the line's own when it leaves differently from the rest of
    the cart (picked up in a store while the rest is delivered); None means the cart's.

    .. versionadded:: 1.5
       ``fulfilment``. Marketing reads it (through :attr:`PricedLine.fulfilment`); the core still quotes,
       reserves and ships the whole cart by the cart's own fulfilment, so checkout refuses a cart whose
       lines leave differently (a quote prices it line by line).
    """

    sku: str = attrs.field(validator=text("a cart line's SKU", MAX_ID_LENGTH))
    quantity: int = attrs.field(validator=_line_quantity)
    fulfilment: Fulfilment | None = attrs.field(default=None, validator=_optional_fulfilment)


def _payment_amount(_instance: object, _attribute: object, value: Money | None) -> None:
    if value is not None and not isinstance(value, Money):
        raise InvalidValue(f"a payment's amount must be Money or None (got {value!r})")


def _details(value: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"payment details must be a mapping of text to text (got {type(value).__name__})")
    for name, detail in value.items():
        check_text(name, "a payment detail's name", max_length=MAX_SLUG_LENGTH, allow_empty=False)
        check_text(detail, f"the payment detail {name!r}", max_length=MAX_TEXT_LENGTH)
    return dict(value)


@attrs.frozen
class PaymentRequest:
    """A share of the order paid by one method. ``amount`` None means "whatever is left"."""

    method: str = attrs.field(validator=text("a payment method", MAX_SLUG_LENGTH))
    amount: Money | None = attrs.field(default=None, validator=_payment_amount)
    # Method-specific details: a card token, a gift card number, a wallet id.
    details: Mapping[str, str] = attrs.field(factory=dict, converter=_details)


def _payments(value: Iterable[PaymentRequest]) -> tuple[PaymentRequest, ...]:
    return tuple(value)


def _identities(value: Iterable[Identity]) -> tuple[Identity, ...]:
    return tuple(value)


def _coupons(value: Iterable[str]) -> tuple[str, ...]:
    codes = tuple(value)
    for code in codes:
        check_text(code, "a coupon code", max_length=MAX_SLUG_LENGTH, allow_empty=False)
    return codes


def _lines(value: Iterable[CartLine]) -> tuple[CartLine, ...]:
    lines = tuple(value)
    if not lines:
        raise InvalidValue("a cart needs at least one line (got none)")
    if len(lines) > 1:
        # Lines of one SKU add up to one demand, which becomes one stock movement.
        demand: dict[str, int] = {}
        for line in lines:
            units = demand[line.sku] = demand.get(line.sku, 0) + line.quantity
            if units > MAX_QUANTITY:
                raise InvalidValue(f"the cart's lines of SKU {line.sku!r} add up to more than {MAX_QUANTITY} units")
    return lines


@attrs.frozen
class Cart:
    """A checkout request: the lines, who buys, through which channel, how it is paid and delivered."""

    channel: str = attrs.field(validator=text("a cart's channel", MAX_SLUG_LENGTH))
    lines: tuple[CartLine, ...] = attrs.field(converter=_lines)
    payments: tuple[PaymentRequest, ...] = attrs.field(default=(), converter=_payments)
    identities: tuple[Identity, ...] = attrs.field(default=(), converter=_identities)
    fulfilment: Fulfilment = attrs.field(factory=lambda: Fulfilment(FulfilmentKind.CARRY_OUT))
    coupons: tuple[str, ...] = attrs.field(default=(), converter=_coupons)
    # A campaign or partner the order came through; recorded for attribution.
    attribution: str | None = attrs.field(
        default=None, validator=text("a cart's attribution", MAX_TEXT_LENGTH, optional=True, allow_empty=True)
    )

    def demand(self) -> dict[str, int]:
        """Quantity per SKU, with lines of the same SKU added together."""
        totals: dict[str, int] = {}
        for line in self.lines:
            totals[line.sku] = totals.get(line.sku, 0) + line.quantity
        return totals


@attrs.frozen
class PricedLine:
    """A cart line with its price: ``subtotal`` = unit price × quantity; ``discount`` from adjustments.

    ``fulfilment`` is how this line reaches the shopper: its cart line's own, else the cart's (None only
    for lines built without a cart).

    .. versionadded:: 1.5
       ``fulfilment``.
    """

    index: int
    sku: str
    quantity: int
    unit_price: Money
    category: str = "general"
    weight_grams: int = 0
    discount: Money | None = None
    fulfilment: Fulfilment | None = None

    @property
    def subtotal(self) -> Money:
        return self.unit_price * self.quantity

    @property
    def total(self) -> Money:
        return self.subtotal - self.discount if self.discount is not None else self.subtotal
