"""retailblocks-logistics: zones, rates, carriers, click-and-collect, ship-from-store, splits.

The block is :class:`Logistics` (entry point ``logistics``); :class:`CarrierApi` is what a real
carrier integration implements; :mod:`retailblocks_logistics.testing` ships a fake carrier.
"""

# The names are loaded when first asked for, not when the package is imported: `blocks --help` imports this
# package's command module, which must not pull in the block and its database layer.
from __future__ import annotations

from typing import TYPE_CHECKING

from retailblocks.lazy import lazy_exports

if TYPE_CHECKING:
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

_EXPORTS = {
    "Booking": "retailblocks_logistics.carriers",
    "BookingRequest": "retailblocks_logistics.carriers",
    "Carrier": "retailblocks_logistics.config",
    "CarrierApi": "retailblocks_logistics.carriers",
    "CarrierRefused": "retailblocks_logistics.carriers",
    "CarrierUnavailable": "retailblocks_logistics.carriers",
    "Logistics": "retailblocks_logistics.block",
    "LogisticsConfig": "retailblocks_logistics.config",
    "SandboxCarrier": "retailblocks_logistics.carriers",
    "ShipFrom": "retailblocks_logistics.config",
    "ShipmentRecord": "retailblocks_logistics.block",
    "ShippingOption": "retailblocks_logistics.config",
    "TrackingEntry": "retailblocks_logistics.block",
    "ValueRate": "retailblocks_logistics.config",
    "WeightRate": "retailblocks_logistics.config",
    "Zone": "retailblocks_logistics.config",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


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
