"""For testing with the logistics block: a scriptable carrier and a ready example configuration.

Install the carrier with ``block.use_carrier_api("sf", carrier)``; it records every call it receives
and can refuse, fail, or have already collected the parcels.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from retailblocks.model import Money
from retailblocks_logistics.carriers import (
    Booking,
    BookingRequest,
    CarrierRefused,
    CarrierUnavailable,
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


class FakeCarrier:
    """A :class:`~retailblocks_logistics.carriers.CarrierApi` whose behaviour a test sets.

    ``fail_next`` makes that many calls raise :class:`CarrierUnavailable` (then it recovers);
    ``refuse`` makes bookings raise :class:`CarrierRefused`; tracking numbers listed in
    ``collected`` cannot be cancelled. Bookings are idempotent per key, as a real carrier's are.
    """

    def __init__(self, *, prefix: str = "FAKE", refuse: bool = False, fail_next: int = 0):
        self.prefix = prefix
        self.refuse = refuse
        self.fail_next = fail_next
        self.collected: set[str] = set()
        self.bookings: dict[str, Booking] = {}
        self.requests: list[BookingRequest] = []
        self.cancellations: list[tuple[str, str]] = []
        self.cancelled: set[str] = set()
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise CarrierUnavailable("the fake carrier is unavailable (scripted failure); retry later")

    def book(self, request: BookingRequest) -> Booking:
        with self._lock:
            self.requests.append(request)
            self._maybe_fail()
            if self.refuse:
                raise CarrierRefused(f"the fake carrier refuses order {request.order_id!r} (scripted)")
            booking = self.bookings.get(request.idempotency_key)
            if booking is None:
                booking = Booking(f"{self.prefix}{len(self.bookings) + 1:06d}")
                self.bookings[request.idempotency_key] = booking
            return booking

    def cancel(self, tracking_number: str, idempotency_key: str) -> bool:
        with self._lock:
            self.cancellations.append((tracking_number, idempotency_key))
            self._maybe_fail()
            if tracking_number in self.collected:
                return False
            self.cancelled.add(tracking_number)
            return True


def cny(text: str) -> Money:
    """``cny("12.50")`` is 12.50 CNY."""
    return Money.parse(f"{text} CNY")


#: Real coordinates: three Shanghai stores (one that cannot ship) and a Beijing warehouse.
XUHUI = ShipFrom("xuhui", 31.1885, 121.4365)
PUDONG = ShipFrom("pudong", 31.2215, 121.5447)
JINGAN = ShipFrom("jingan", 31.2286, 121.4476, ships=False)
BEIJING_DC = ShipFrom("beijing-dc", 39.9042, 116.4074)


def example_config(**overrides: object) -> LogisticsConfig:
    """A configuration for tests and examples: Shanghai zones, two carriers, Shanghai stores
    and a Beijing warehouse. ``overrides`` replace top-level fields."""
    values: dict[str, object] = {
        "zones": [
            Zone("shanghai", regions=["Shanghai"], countries=["CN"]),
            Zone("jjz", regions=["Jiangsu", "Zhejiang", "Anhui"]),
            Zone("china", countries=["CN"]),
        ],
        "carriers": [
            Carrier(
                "sf",
                "SF Express",
                [
                    ShippingOption(
                        "sf-standard",
                        "Standard",
                        zones=["shanghai", "jjz", "china"],
                        min_days=1,
                        max_days=3,
                        rates=[
                            WeightRate(cny("12.00"), up_to_grams=1000),
                            WeightRate(cny("18.00"), up_to_grams=5000),
                            WeightRate(cny("30.00")),
                        ],
                        free_over=cny("199.00"),
                        per_extra_parcel=cny("6.00"),
                    ),
                    ShippingOption(
                        "sf-same-day",
                        "Same day",
                        zones=["shanghai"],
                        min_days=0,
                        max_days=0,
                        rates=[WeightRate(cny("25.00"), up_to_grams=3000)],
                    ),
                ],
            ),
            Carrier(
                "zto",
                "ZTO",
                [
                    ShippingOption(
                        "zto-economy",
                        "Economy",
                        zones=["china", "jjz"],
                        min_days=3,
                        max_days=5,
                        value_rates=[
                            ValueRate(cny("0.00"), cny("10.00")),
                            ValueRate(cny("100.00"), cny("5.00")),
                            ValueRate(cny("300.00"), cny("0.00")),
                        ],
                    ),
                ],
            ),
        ],
        "locations": [XUHUI, PUDONG, JINGAN, BEIJING_DC],
        "pickup_locations": ["xuhui", "pudong"],
        "pickup_ready_in": timedelta(hours=2),
    }
    values.update(overrides)
    return LogisticsConfig(**values)  # type: ignore[arg-type]
