"""The carrier API the block books through, and the sandbox carrier that stands in for a real one.

A real integration implements :class:`CarrierApi` and is installed with
:meth:`retailblocks_logistics.Logistics.use_carrier_api`. Both calls carry an idempotency key
derived by the core, so a retried booking never books twice and a retried cancellation is harmless.
"""

from __future__ import annotations

import threading
from typing import Protocol

import attrs

from retailblocks.clock import IdFactory
from retailblocks.errors import EnvironmentFailure, NotDeliverable
from retailblocks.model import Address, Parcel


class CarrierRefused(NotDeliverable):
    """The carrier will not take the booking (address not served, parcel too big)."""

    cause = "carrier_refused"


class CarrierUnavailable(EnvironmentFailure):
    """The carrier could not be reached or failed; retrying with the same key is safe."""


@attrs.frozen
class BookingRequest:
    """What a carrier needs to collect parcels: from where, to where, which service."""

    idempotency_key: str
    carrier: str
    option: str
    order_id: str
    parcels: tuple[Parcel, ...]
    address: Address | None = None


@attrs.frozen
class Booking:
    """The carrier's answer: the tracking number the shopper follows."""

    tracking_number: str


class CarrierApi(Protocol):
    """A carrier's booking API."""

    def book(self, request: BookingRequest) -> Booking:
        """Book a collection. The same ``request.idempotency_key`` returns the same booking.

        Raises :class:`CarrierRefused` or :class:`CarrierUnavailable`.
        """
        ...

    def cancel(self, tracking_number: str, idempotency_key: str) -> bool:
        """Cancel a booking not yet collected; False if the carrier already has the parcels."""
        ...


class SandboxCarrier:
    """A carrier that books locally: tracking numbers come from the stack's id factory (reproducible
    under a seed) and each key is booked once per process."""

    def __init__(self, ids: IdFactory):
        self._ids = ids
        self._lock = threading.Lock()
        self._bookings: dict[str, Booking] = {}
        self._cancelled: set[str] = set()

    def book(self, request: BookingRequest) -> Booking:
        with self._lock:
            booking = self._bookings.get(request.idempotency_key)
            if booking is None:
                tracking = self._ids.new_id(f"SBX-{request.carrier}").upper()
                booking = Booking(tracking_number=tracking)
                self._bookings[request.idempotency_key] = booking
            return booking

    def cancel(self, tracking_number: str, idempotency_key: str) -> bool:
        with self._lock:
            self._cancelled.add(tracking_number)
        return True
