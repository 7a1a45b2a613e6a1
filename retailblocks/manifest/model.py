"""What a loaded manifest is: frozen values built from ``blocks.yaml``, with positions kept for
later errors.

Assembly reports problems it finds after loading (an unknown block, a version no installed
distribution satisfies, a payment method routed to a block that cannot take it) at the place they
were written, so the entries keep their :class:`~retailblocks.manifest.errors.SourcePosition`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path

import attrs
from packaging.specifiers import SpecifierSet

from retailblocks.manifest.api import ApiConfig
from retailblocks.manifest.conditions import AllOf, Condition, flat_rules
from retailblocks.manifest.errors import SourcePosition
from retailblocks.manifest.nodes import Node
from retailblocks.manifest.stacking import MarketingStacking
from retailblocks.manifest.webhooks import Webhook
from retailblocks.model import Channel, Merchant, Money, Product

SUPPORTED_VERSION = 1


class PartnerType(enum.StrEnum):
    BRAND = "brand"
    PLATFORM = "platform"


class RefundPolicy(enum.StrEnum):
    """What a refund does to the discount a partner funded on the order."""

    #: The partner keeps paying for it (the shopper kept the price they were charged).
    KEEP = "keep"
    #: The partner is credited back in proportion to what was refunded.
    CLAWBACK = "clawback"


@attrs.frozen
class Partner:
    """Another party whose rights (points, coupons) this merchant honours or issues into."""

    id: str
    name: str
    type: PartnerType
    on_refund: RefundPolicy = RefundPolicy.KEEP


@attrs.frozen
class Segment:
    """Members picked by conditions over their fused history; every rule and condition given must hold.

    The flat rules are shorthand (see :func:`~retailblocks.manifest.conditions.flat_rules`): spend is net of
    refunds over orders that were not cancelled; ``channels`` is channel affinity (the member bought in at
    least one of them); ``skus`` and ``categories`` match anything ever bought; the ``last_purchase_*``
    dates are compared with the day of the last purchase (UTC), ``before`` exclusive and ``after``
    inclusive. ``conditions`` are the segment language's (windows, negation, signals, RFM, ...).
    """

    id: str
    description: str = ""
    min_orders: int | None = None
    max_orders: int | None = None
    min_spend: Money | None = None
    max_spend: Money | None = None
    purchased_within_days: int | None = None
    not_purchased_for_days: int | None = None
    tiers: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    last_purchase_before: date | None = None
    last_purchase_after: date | None = None
    conditions: tuple[Condition, ...] = ()

    @property
    def condition(self) -> AllOf:
        """Everything the segment asks, the flat rules as the conditions they stand for."""
        rules = flat_rules(
            min_orders=self.min_orders,
            max_orders=self.max_orders,
            min_spend=self.min_spend,
            max_spend=self.max_spend,
            purchased_within_days=self.purchased_within_days,
            not_purchased_for_days=self.not_purchased_for_days,
            tiers=self.tiers,
            channels=self.channels,
            skus=self.skus,
            categories=self.categories,
            last_purchase_before=self.last_purchase_before,
            last_purchase_after=self.last_purchase_after,
        )
        found = (*rules, *self.conditions)
        if len(found) == 1 and isinstance(found[0], AllOf):
            return found[0]  # a segment written as one `all:` reads as that, not as a list of one
        return AllOf(found)


@attrs.frozen
class CampaignMessage:
    """What a campaign sends each treated member, through a reach block serving ``medium``; ``{coupon}`` in
    ``text`` is replaced with the member's coupon code."""

    medium: str
    text: str


@attrs.frozen
class FrequencyCap:
    """At most ``messages`` messages to one member in any ``days`` days, counting every campaign's."""

    messages: int
    days: int


@attrs.frozen
class Campaign:
    """Coupons of one promotion issued to one segment's members through one channel, and optionally a
    message sent to them, within dates and hours, with a share of the segment held out to measure uplift."""

    id: str
    segment: str
    promotion: str
    channel: str
    description: str = ""
    message: CampaignMessage | None = None
    #: The first and last day the campaign runs (inclusive, the business clock's UTC dates); None: open.
    starts: date | None = None
    ends: date | None = None
    #: The hours (UTC, ``[start, end)``) in which messages go out; None: any time.
    send_window: tuple[time, time] | None = None
    #: The share of the segment kept from the campaign (no coupon, no message), in basis points.
    holdout_bp: int = 0
    #: What the holdout draw is seeded with: the same seed puts each member in the same group.
    seed: str = ""
    frequency_cap: FrequencyCap | None = None


@attrs.frozen
class BlockEntry:
    """One ``blocks:`` entry: which block, as which instance, at which version, configured how.

    ``config`` is the raw configuration node (an empty mapping when omitted), converted by assembly
    with :func:`retailblocks.manifest.build_config` once the block's config class is known.
    """

    use: str
    id: str
    version: SpecifierSet | None
    config: Node = attrs.field(eq=False)
    position: SourcePosition = attrs.field(eq=False)
    doc_path: str = attrs.field(eq=False)
    key_positions: Mapping[str, SourcePosition] = attrs.field(eq=False, factory=dict, repr=False)

    def position_of(self, key: str) -> SourcePosition:
        """Where ``use``, ``id``, ``version`` or ``config`` was written (the entry itself if it was
        not)."""
        found = self.key_positions.get(key)
        path = self.position.child(key).doc_path
        return found.with_path(path) if found is not None else self.position.with_path(path)


@attrs.frozen
class Routing:
    """Which block instance answers which payment method, and how the marketing blocks' adjustments
    combine, as the manifest's ``routing:`` says."""

    payment: Mapping[str, str] = attrs.field(factory=dict)
    marketing: MarketingStacking = attrs.field(factory=MarketingStacking)
    positions: Mapping[str, SourcePosition] = attrs.field(eq=False, factory=dict, repr=False)

    def position_of(self, method: str) -> SourcePosition | None:
        """Where the route of ``method`` was written (``routing.payment.card``), if it was."""
        return self.positions.get(method)


def mask_password(url: str) -> str:
    """``url`` with the password of its user part shown as ``***``.

    The user part is taken up to the last ``@``, so a password with an unescaped ``@`` or ``/`` is still
    hidden whole; a ``@`` later in the URL can only make more of it hidden, never less.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{colon and ':***'}@{host}"


def _masked_url(url: str) -> str:
    return repr(mask_password(url))


@attrs.frozen
class Manifest:
    """A valid manifest. ``database_url`` is absolute for SQLite and uses psycopg for PostgreSQL.

    Its repr, like the repr of everything it holds, shows no password and no value interpolated from
    the environment: manifests and plans end up in logs and tracebacks.
    """

    path: Path
    version: int
    merchant: Merchant
    database_url: str = attrs.field(repr=_masked_url)
    channels: tuple[Channel, ...]
    catalog: tuple[Product, ...]
    blocks: tuple[BlockEntry, ...]
    routing: Routing
    partners: tuple[Partner, ...]
    segments: tuple[Segment, ...] = ()
    campaigns: tuple[Campaign, ...] = ()
    #: Who may call the stack over HTTP (``blocks serve``); no keys unless the manifest declares them.
    api: ApiConfig = attrs.field(factory=ApiConfig, repr=False)
    #: Outside systems that receive the stack's events, signed (see retailblocks.events.webhooks).
    webhooks: tuple[Webhook, ...] = ()
    #: The document the manifest was read from, so that checks made after loading (references to what
    #: blocks declare) can point at the place a value was written.
    source: Node | None = attrs.field(default=None, eq=False, repr=False)

    def block(self, block_id: str) -> BlockEntry:
        """The entry with instance id ``block_id``; ``KeyError`` when there is none."""
        for entry in self.blocks:
            if entry.id == block_id:
                return entry
        raise KeyError(block_id)
