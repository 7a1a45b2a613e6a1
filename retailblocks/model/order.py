"""Orders: what was sold, for how much, and where the order stands."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from retailblocks.model.address import Fulfilment
from retailblocks.model.money import Money
from retailblocks.model.results import PaymentAuthorization, PriceAdjustment, Shipment


class OrderStatus(enum.StrEnum):
    """Where an order stands.

    ``pending`` while its checkout saga runs; ``failed`` if the saga compensated; ``placed`` once stock is
    allocated and payment authorized; ``paid`` once captured; ``fulfilled`` once delivery is arranged;
    ``cancelled`` and ``refunded`` after those flows; ``partially_refunded`` after a refund of some lines.
    """

    PENDING = "pending"
    FAILED = "failed"
    PLACED = "placed"
    PAID = "paid"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


@attrs.frozen
class OrderLine:
    index: int
    sku: str
    quantity: int
    unit_price: Money
    discount: Money
    refunded_quantity: int = 0

    @property
    def subtotal(self) -> Money:
        return self.unit_price * self.quantity

    @property
    def total(self) -> Money:
        return self.subtotal - self.discount


@attrs.frozen
class FulfilmentGroup:
    """The lines of an order that leave one way: the same fulfilment kind, store or shipping option, and
    address. ``lines`` are the order's line indexes; ``shipping`` is what this group's delivery costs the
    shopper, after the shipping promotions that target it (zero for a pick-up); ``option_id`` is the
    shipping option it goes by, None when nothing is shipped.

    .. versionadded:: 1.6
    """

    fulfilment: Fulfilment
    lines: tuple[int, ...]
    shipping: Money
    option_id: str | None = None


@attrs.frozen
class Order:
    id: str
    channel: str
    status: OrderStatus
    currency: str
    lines: tuple[OrderLine, ...]
    subtotal: Money
    discount: Money
    shipping: Money
    total: Money
    created_at: datetime
    member_id: str | None = None
    fulfilment: Fulfilment | None = None
    adjustments: tuple[PriceAdjustment, ...] = ()
    payments: tuple[PaymentAuthorization, ...] = ()
    shipments: tuple[Shipment, ...] = ()
    refunded: Money | None = None
    attribution: str | None = None
    failure: str | None = None
    #: How the order's lines leave when they leave in several ways (one group each, see FulfilmentGroup);
    #: empty when the whole order leaves one way, its ``fulfilment``.
    #:
    #: .. versionadded:: 1.6
    groups: tuple[FulfilmentGroup, ...] = ()
