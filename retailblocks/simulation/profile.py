"""A simulation profile: what a simulated retail day is made of, beyond what the manifest says.

The profile lives beside the manifest as ``simulation.yaml`` (or is named with ``--profile``). It gives the
day's date, the opening stock, the shoppers, how they pay (each method with its details), which coupons
circulate and where parcels go. Without one, a day is drawn from the manifest alone: its catalog, its
channels and its payment methods.

A payment method's details come from the profile (``details:``, and ``card_number`` for cards); a block
that takes the method may fill in or draw the rest for each shopper (the ``simulation_payment_details``
hook), so a third party's method is simulated as its block knows how.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import attrs

from retailblocks.manifest import build_config
from retailblocks.manifest.errors import ManifestError, SourcePosition
from retailblocks.manifest.yamlsource import load_document, read_source


@attrs.frozen
class StockLine:
    sku: str
    location: str
    quantity: int


@attrs.frozen
class PaymentChoice:
    """One way shoppers pay, drawn with ``weight``. ``split_gift_card`` pays part with a gift card first."""

    weight: int
    method: str = "card"
    card_number: str = "4242424242424242"
    split_gift_card: bool = False
    points_share_percent: int = 0
    #: The details shoppers send with ``method`` (``{wallet_id: …}``, ``{phone: …}``), passed to the block
    #: that takes the method, which may complete them (see ``simulation_payment_details``).
    details: dict[str, str] = attrs.field(factory=dict)

    def payment_details(self) -> dict[str, str]:
        """What the profile says shoppers send with this method: a card's number, then ``details``."""
        # An empty card_number leaves the card to the block that takes it (see simulation_payment_details).
        found = {"card_number": self.card_number} if self.method == "card" and self.card_number else {}
        found.update(self.details)
        return found


@attrs.frozen
class Destination:
    country: str
    region: str
    city: str = ""
    latitude: float | None = None
    longitude: float | None = None


@attrs.frozen
class CouponUse:
    """A coupon circulating among shoppers; ``channels`` limits where they try it (empty: anywhere)."""

    code: str
    probability_percent: int = 10
    channels: list[str] = attrs.field(factory=list)


def _iso_date(_instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{attribute.name}' must be a date written YYYY-MM-DD (got {value!r})") from None


#: The day simulated when the profile names none (the day the demo has always run).
DEFAULT_DATE = "2026-06-18"


@attrs.frozen
class Profile:
    #: The simulated day (YYYY-MM-DD): orders, events and settlements are stamped with it.
    date: str = attrs.field(default=DEFAULT_DATE, validator=_iso_date)
    stock: list[StockLine] = attrs.field(factory=list)
    members: int = 60
    guest_percent: int = 30
    max_lines: int = 3
    max_quantity: int = 3
    payments: list[PaymentChoice] = attrs.field(factory=lambda: [PaymentChoice(weight=1)])
    gift_card_value: str = "100.00"
    coupons: list[CouponUse] = attrs.field(factory=list)
    destinations: list[Destination] = attrs.field(factory=list)
    pickup_percent: int = 15
    refund_percent: int = 5
    cancel_percent: int = 3
    replay_percent: int = 2
    identity_kinds: dict[str, Literal["phone", "openid", "marketplace", "store_card", "social"]] = attrs.field(
        factory=dict
    )
    #: How popular each SKU is, by SKU; unlisted SKUs weigh 1.
    sku_weights: dict[str, int] = attrs.field(factory=dict)
    #: How often each channel sees a shopper, by channel id; unlisted channels weigh 1.
    channel_weights: dict[str, int] = attrs.field(factory=dict)
    day_start_hour: int = 9
    day_hours: int = 12

    def opening(self) -> datetime:
        """When the simulated store opens: the profile's date at ``day_start_hour``, UTC."""
        return datetime.combine(date.fromisoformat(self.date), datetime.min.time(), UTC).replace(
            hour=self.day_start_hour
        )


def load_profile(path: Path | None, manifest_path: Path) -> Profile:
    """The profile at ``path``, or ``simulation.yaml`` beside the manifest, or the defaults."""
    candidate = path if path is not None else Path(manifest_path).parent / "simulation.yaml"
    if path is None and not candidate.exists():
        return Profile()
    file = str(candidate)
    data = read_source(candidate)
    node = load_document(data, file, {})
    if node is None:
        raise ManifestError.at(SourcePosition(file), "the simulation profile is empty")
    return build_config(Profile, node)
