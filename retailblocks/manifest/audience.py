"""The manifest's ``segments:`` and ``campaigns:``: who to reach over the fused member profile, and how.

::

    segments:
      - id: bean-lovers
        categories: [beans]
        min_orders: 2
        purchased_within_days: 60
    campaigns:
      - id: beans-back
        segment: bean-lovers
        promotion: beans-10
        channel: miniprogram
        message: {medium: mini_program, text: "Your beans are waiting: 10 off with {coupon}"}
        starts: 2026-06-01
        ends: 2026-06-30
        send_window: {from: "09:00", to: "21:00"}
        holdout: 20%
        frequency_cap: {messages: 2, days: 7}

Beside the flat rules a segment takes the conditions of the segment language
(:mod:`retailblocks.manifest.conditions`): windows, negation, ``any``, signals, RFM, tiers and identities.

Rules are checked here against what the manifest itself declares (channels, catalog); a campaign's
promotion belongs to a marketing block's configuration and is checked when the campaign runs.
"""

from __future__ import annotations

from datetime import date, time

from retailblocks.hookspecs.reach import MEDIUMS
from retailblocks.manifest import readers
from retailblocks.manifest.conditions import CONDITION_KEYS, Catalogue, parse_kind
from retailblocks.manifest.errors import ManifestError
from retailblocks.manifest.model import Campaign, CampaignMessage, FrequencyCap, Segment
from retailblocks.manifest.nodes import Node
from retailblocks.model import Product
from retailblocks.model.limits import MAX_QUANTITY

_COUNT_RULES = ("min_orders", "max_orders", "purchased_within_days", "not_purchased_for_days")
_MONEY_RULES = ("min_spend", "max_spend")
_DATE_RULES = ("last_purchase_before", "last_purchase_after")
_SEGMENT_KEYS = (
    "id",
    "description",
    *_COUNT_RULES,
    *_MONEY_RULES,
    "tiers",
    "channels",
    "skus",
    "categories",
    *_DATE_RULES,
    *CONDITION_KEYS,
)
_CAMPAIGN_KEYS = (
    "id",
    "segment",
    "promotion",
    "channel",
    "description",
    "message",
    "starts",
    "ends",
    "send_window",
    "holdout",
    "seed",
    "frequency_cap",
)
#: At most this share may be held out: a campaign that reaches no one measures nothing.
MAX_HOLDOUT_BP = 9_000


def parse_segments(
    node: Node, currency: str, channel_ids: list[str], catalog: tuple[Product, ...]
) -> tuple[Segment, ...]:
    seen: dict[str, Node] = {}
    segments: list[Segment] = []
    for item in readers.sequence(node):
        entries = readers.check_keys(item, _SEGMENT_KEYS, ("id",))
        segment_id = readers.slug(entries["id"])
        readers.unique(entries["id"], segment_id, seen, "segment id")
        counts = {key: _count(entries[key]) for key in _COUNT_RULES if key in entries}
        money = {key: readers.money(entries[key], currency) for key in _MONEY_RULES if key in entries}
        dates = {key: _date(entries[key]) for key in _DATE_RULES if key in entries}
        skus = _references(entries.get("skus"), [p.sku for p in catalog], "SKU")
        categories = _references(entries.get("categories"), sorted({p.category for p in catalog}), "category")
        channels = frozenset(readers.channel_ref(ref, channel_ids) for ref in _list(entries.get("channels")))
        tiers = frozenset(readers.string(ref) for ref in _list(entries.get("tiers")))
        _ordered(entries, counts, "min_orders", "max_orders")
        _ordered(entries, {k: v.amount for k, v in money.items()}, "min_spend", "max_spend")
        known = Catalogue(
            currency=currency,
            channels=tuple(channel_ids),
            skus=tuple(p.sku for p in catalog),
            categories=tuple(sorted({p.category for p in catalog})),
        )
        # In the order written: the keys beside the flat rules are conditions that must all hold too.
        conditions = tuple(parse_kind(key, value, known) for key, value in entries.items() if key in CONDITION_KEYS)
        segments.append(
            Segment(
                id=segment_id,
                description=readers.string(entries["description"]) if "description" in entries else "",
                min_orders=counts.get("min_orders"),
                max_orders=counts.get("max_orders"),
                min_spend=money.get("min_spend"),
                max_spend=money.get("max_spend"),
                purchased_within_days=counts.get("purchased_within_days"),
                not_purchased_for_days=counts.get("not_purchased_for_days"),
                tiers=tiers,
                channels=channels,
                skus=skus,
                categories=categories,
                last_purchase_before=dates.get("last_purchase_before"),
                last_purchase_after=dates.get("last_purchase_after"),
                conditions=conditions,
            )
        )
    return tuple(segments)


def parse_campaigns(node: Node, segment_ids: list[str], channel_ids: list[str]) -> tuple[Campaign, ...]:
    seen: dict[str, Node] = {}
    campaigns: list[Campaign] = []
    for item in readers.sequence(node):
        entries = readers.check_keys(item, _CAMPAIGN_KEYS, ("id", "segment", "promotion", "channel"))
        campaign_id = readers.slug(entries["id"])
        readers.unique(entries["id"], campaign_id, seen, "campaign id")
        segment_node = entries["segment"]
        segment = readers.string(segment_node)
        if segment not in segment_ids:
            declared = ", ".join(segment_ids) or "none; declare it under 'segments:'"
            raise ManifestError.at(
                segment_node,
                f"unknown segment {segment!r}{readers.suggestion(segment, segment_ids)} "
                f"(declared segments: {declared})",
            )
        starts = _date(entries["starts"]) if "starts" in entries else None
        ends = _date(entries["ends"]) if "ends" in entries else None
        if starts is not None and ends is not None and ends < starts:
            raise ManifestError.at(entries["ends"], f"the campaign ends ({ends}) before it starts ({starts})")
        campaigns.append(
            Campaign(
                id=campaign_id,
                segment=segment,
                promotion=readers.string(entries["promotion"]),
                channel=readers.channel_ref(entries["channel"], channel_ids),
                description=readers.string(entries["description"]) if "description" in entries else "",
                message=_message(entries["message"]) if "message" in entries else None,
                starts=starts,
                ends=ends,
                send_window=_window(entries["send_window"]) if "send_window" in entries else None,
                holdout_bp=_share(entries["holdout"]) if "holdout" in entries else 0,
                seed=readers.string(entries["seed"]) if "seed" in entries else campaign_id,
                frequency_cap=_cap(entries["frequency_cap"]) if "frequency_cap" in entries else None,
            )
        )
    return tuple(campaigns)


def _message(node: Node) -> CampaignMessage:
    entries = readers.check_keys(node, ("medium", "text"), ("medium", "text"))
    medium = readers.choice(entries["medium"], list(MEDIUMS))
    text = readers.string(entries["text"])
    if len(text) > 1000:
        raise ManifestError.at(entries["text"], f"a message is at most 1000 characters (got {len(text)})")
    return CampaignMessage(medium=medium, text=text)


def _window(node: Node) -> tuple[time, time]:
    entries = readers.check_keys(node, ("from", "to"), ("from", "to"))
    start, end = _time(entries["from"]), _time(entries["to"])
    if end <= start:
        raise ManifestError.at(entries["to"], f"the send window must end after it starts ({start:%H:%M})")
    return start, end


def _time(node: Node) -> time:
    text = readers.string(node)
    try:
        if len(text) != 5:
            raise ValueError
        return time.fromisoformat(text)
    except ValueError:
        raise ManifestError.at(node, f"expected a time of day like '09:00' (got {node.describe()})") from None


def _share(node: Node) -> int:
    """A share like ``20%`` or ``12.5%``, in basis points."""
    text = readers.string(node) if isinstance(node.value, str) else ""
    number = text[:-1].strip() if text.endswith("%") else ""
    whole, _, fraction = number.partition(".")
    if not whole.isdigit() or (fraction and (not fraction.isdigit() or len(fraction) > 2)):
        raise ManifestError.at(node, f"expected a share like '20%' or '12.5%' (got {node.describe()})")
    basis_points = int(whole) * 100 + int((fraction or "0").ljust(2, "0"))
    if basis_points > MAX_HOLDOUT_BP:
        raise ManifestError.at(node, f"at most {MAX_HOLDOUT_BP // 100}% of a segment may be held out")
    return basis_points


def _cap(node: Node) -> FrequencyCap:
    entries = readers.check_keys(node, ("messages", "days"), ("messages", "days"))
    messages, days = readers.integer(entries["messages"]), readers.integer(entries["days"])
    if not 1 <= messages <= 1000:
        raise ManifestError.at(entries["messages"], f"expected 1 to 1000 messages (got {messages})")
    if not 1 <= days <= 366:
        raise ManifestError.at(entries["days"], f"expected 1 to 366 days (got {days})")
    return FrequencyCap(messages=messages, days=days)


def _list(node: Node | None) -> tuple[Node, ...]:
    return () if node is None else readers.sequence(node)


def _count(node: Node) -> int:
    value = readers.integer(node)
    if not 0 <= value <= MAX_QUANTITY:
        raise ManifestError.at(node, f"expected a whole number from 0 to {MAX_QUANTITY} (got {node.describe()})")
    return value


def _date(node: Node) -> date:
    text = readers.string(node)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ManifestError.at(node, f"expected a date like '2026-06-01' (got {node.describe()})") from None


def _references(node: Node | None, known: list[str], what: str) -> frozenset[str]:
    values: list[str] = []
    for ref in _list(node):
        value = readers.string(ref)
        # Without a catalog the manifest cannot know what exists; the catalog, when given, is the truth.
        if known and value not in known:
            raise ManifestError.at(
                ref, f"unknown {what} {value!r}{readers.suggestion(value, known)} (the catalog has: {', '.join(known)})"
            )
        values.append(value)
    return frozenset(values)


def _ordered(entries: dict[str, Node], values: dict[str, int], low: str, high: str) -> None:
    if low in values and high in values and values[low] > values[high]:
        raise ManifestError.at(entries[high], f"{high} is below {low}; no member could match this segment")
