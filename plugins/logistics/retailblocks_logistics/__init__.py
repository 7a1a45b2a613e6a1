"""retailblocks-logistics: zones, rates, carriers, click-and-collect, ship-from-store, splits.

The block is :class:`Logistics` (entry point ``logistics``); :class:`CarrierApi` is what a real
carrier integration implements; :mod:`retailblocks_logistics.testing` ships a fake carrier.
"""

from retailblocks_logistics.block import Logistics, ShipmentRecord, TrackingEntry
from retailblocks_logistics.carriers import (
    Booking,
    BookingRequest,
    CarrierApi,
    CarrierRefused,
    CarrierUnavailable,
    SandboxCarrier,
)
from retailblocks_logistics.config import (
    Carrier,
    LogisticsConfig,
    ShipFrom,
    ShippingOption,
    ValueRate,
    WeightRate,
    Zone,
)

__all__ = [
    "Booking",
    "BookingRequest",
    "Carrier",
    "CarrierApi",
    "CarrierRefused",
    "CarrierUnavailable",
    "Logistics",
    "LogisticsConfig",
    "SandboxCarrier",
    "ShipFrom",
    "ShipmentRecord",
    "ShippingOption",
    "TrackingEntry",
    "ValueRate",
    "WeightRate",
    "Zone",
]
