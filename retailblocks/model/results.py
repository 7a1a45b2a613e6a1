"""What blocks return to the core: reservations, payments, quotes, shipments, adjustments, points."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.model._validators import positive, text
from retailblocks.model.limits import MAX_ID_LENGTH, MAX_QUANTITY
from retailblocks.model.money import Money


def _demand_quantity(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    positive(instance, attribute, value)
    if value > MAX_QUANTITY:
        raise InvalidValue(f"'quantity' must be at most {MAX_QUANTITY} (got {value})")


@attrs.frozen
class StockDemand:
    """How much of one SKU an order needs; the core sums cart lines per SKU before asking."""

    sku: str = attrs.field(validator=text("a demanded SKU", MAX_ID_LENGTH))
    quantity: int = attrs.field(validator=_demand_quantity)


@attrs.frozen
class ReservedStock:
    sku: str
    location: str
    quantity: int
    backordered: bool = False


@attrs.frozen
class StockLevel:
    """Stock of one SKU at one location. ``available`` is before any channel's safety stock."""

    sku: str
    location: str
    on_hand: int
    reserved: int
    allocated: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.allocated


@attrs.frozen
class Reservation:
    """Stock set aside for one checkout until ``expires_at``; stands in for a lock during payment."""

    id: str
    lines: tuple[ReservedStock, ...]
    expires_at: datetime


class PaymentStatus(enum.StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_CAPTURED = "partially_captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    DECLINED = "declined"
    UNKNOWN = "unknown"


@attrs.frozen
class PaymentAuthorization:
    """Money promised by a payer; ``block`` is the payment block that holds it."""

    id: str
    block: str
    method: str
    amount: Money
    status: PaymentStatus = PaymentStatus.AUTHORIZED
    reference: str = ""


@attrs.frozen
class PaymentCapture:
    id: str
    authorization_id: str
    amount: Money


@attrs.frozen
class PaymentRefund:
    id: str
    authorization_id: str
    amount: Money


@attrs.frozen
class PaymentBalance:
    """What a payment block holds of one authorization now: what was captured of it and refunded so far."""

    authorization_id: str
    status: PaymentStatus
    captured: Money
    refunded: Money


@attrs.frozen
class ShippingQuote:
    """One way to deliver an order, offered by a logistics block."""

    block: str
    option_id: str
    carrier: str
    amount: Money
    min_days: int = 0
    max_days: int = 0
    # Locations the parcels leave from, in the order logistics chose them.
    from_locations: tuple[str, ...] = ()
    description: str = ""


class ShipmentStatus(enum.StrEnum):
    PENDING = "pending"
    READY_FOR_PICKUP = "ready_for_pickup"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    COLLECTED = "collected"
    CANCELLED = "cancelled"


@attrs.frozen
class Parcel:
    location: str
    lines: tuple[tuple[str, int], ...]  # (sku, quantity)


@attrs.frozen
class Shipment:
    id: str
    block: str
    option_id: str
    carrier: str
    status: ShipmentStatus
    parcels: tuple[Parcel, ...] = ()
    tracking_number: str = ""


class AdjustmentTarget(enum.StrEnum):
    ITEM = "item"
    ORDER = "order"
    SHIPPING = "shipping"


@attrs.frozen
class PriceAdjustment:
    """A discount, explained. ``amount`` is positive money off; ``line_amounts`` split it over lines.

    ``funder`` is the party that pays for the discount (the merchant's id, or a partner's), which the
    settlement report reads. For item and order targets ``line_amounts`` sums exactly to ``amount``.
    A discount several parties share names each with its part in ``funders`` (the parts sum exactly
    to ``amount``; ``funder`` is then the one paying the largest part); empty, ``funder`` pays it all.
    """

    block: str
    promotion_id: str
    target: AdjustmentTarget
    amount: Money
    reason: str
    funder: str
    line_amounts: tuple[tuple[int, Money], ...] = ()  # (line index, share)
    coupon: str | None = None
    campaign: str | None = None
    funders: tuple[tuple[str, Money], ...] = ()  # (funder, part), versionadded 1.4

    @property
    def funded_by(self) -> tuple[tuple[str, Money], ...]:
        """Who pays what of ``amount``: ``funders``, or ``funder`` for all of it."""
        return self.funders or ((self.funder, self.amount),)

    def funded_by_party(self, party: str) -> Money:
        """What ``party`` pays of this discount (zero when it funds none of it)."""
        return Money(sum(part.amount for who, part in self.funded_by if who == party), self.amount.currency)


class PointsKind(enum.StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    REVERSE = "reverse"
    EXPIRE = "expire"
    ADJUST = "adjust"
    TRANSFER = "transfer"


@attrs.frozen
class PointsMovement:
    """A posting on a member's points account; ``points`` is signed, ``balance`` is after it."""

    id: str
    member_id: str
    points: int
    kind: PointsKind
    balance: int
    order_id: str | None = None
    reason: str = ""
