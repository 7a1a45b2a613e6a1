"""The domain model: frozen value types shared by the core and every block."""

from retailblocks.model.address import Address, Fulfilment, FulfilmentKind
from retailblocks.model.cart import Cart, CartLine, PaymentRequest, PricedLine
from retailblocks.model.catalog import Product
from retailblocks.model.channel import Channel, ChannelType, Merchant
from retailblocks.model.member import Identity, IdentityKind, Member
from retailblocks.model.money import Money, allocate_integer, currency_exponent
from retailblocks.model.order import FulfilmentGroup, Order, OrderLine, OrderStatus
from retailblocks.model.results import (
    AdjustmentTarget,
    Parcel,
    PaymentAuthorization,
    PaymentBalance,
    PaymentCapture,
    PaymentRefund,
    PaymentStatus,
    PointsKind,
    PointsMovement,
    PriceAdjustment,
    Reservation,
    ReservedStock,
    Shipment,
    ShipmentStatus,
    ShippingQuote,
    StockDemand,
    StockLevel,
)

__all__ = [
    "Address",
    "AdjustmentTarget",
    "Cart",
    "CartLine",
    "Channel",
    "ChannelType",
    "Fulfilment",
    "FulfilmentGroup",
    "FulfilmentKind",
    "Identity",
    "IdentityKind",
    "Member",
    "Merchant",
    "Money",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Parcel",
    "PaymentAuthorization",
    "PaymentBalance",
    "PaymentCapture",
    "PaymentRefund",
    "PaymentRequest",
    "PaymentStatus",
    "PointsKind",
    "PointsMovement",
    "PriceAdjustment",
    "PricedLine",
    "Product",
    "Reservation",
    "ReservedStock",
    "Shipment",
    "ShipmentStatus",
    "ShippingQuote",
    "StockDemand",
    "StockLevel",
    "allocate_integer",
    "currency_exponent",
]
