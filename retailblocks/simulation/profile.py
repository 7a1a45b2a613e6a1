"""A simulation profile: what a simulated retail day is made of, beyond what the manifest says.

The profile lives beside the manifest as ``simulation.yaml`` (or is named with ``--profile``). It gives the
opening stock, the shoppers, how they pay, which coupons circulate and where parcels go. Without one, a
day is drawn from the manifest alone: its catalog, its channels and its payment methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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


@attrs.frozen
class Profile:
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
