"""The segment language: conditions over a member's fused history, composed with ``all``, ``any`` and
``not``, and read from the manifest with a positioned error for anything wrong.

::

    segments:
      - id: recent-big-spenders
        all:
          - spend: {at_least: "200.00", within_days: 30}
          - not: {orders: {at_least: 1, channel: web}}
          - any: [{tier: gold}, {signal: {type: social.live_like, at_least: 1, within_days: 7}}]

A condition is a mapping with one key, its kind:

* ``orders``, ``spend``, ``units``, ``points`` — a metric over the member's sales (orders not pending, failed
  or cancelled), bounded by ``at_least`` and/or ``at_most``, over a window (``within_days: N``, the N×24
  hours up to now; or ``from``/``to``, days in UTC, both included; lifetime when neither is given), and
  filtered by ``channel``, ``category`` and ``sku`` (a name or a list, any of which matches). Spend is net of
  refunds in the merchant's currency (``"200.00"``, ``"200.00 CNY"`` or ``200``); with a category or SKU it
  is the matching lines' totals less their refunded units' share. Points are those earned by the orders.
  The window is the order's placing: a refund later takes its amount off the order's own day.
* ``recency`` — whole days since the last purchase, ``at_least``/``at_most``; a member who never bought has
  not bought for as long as anyone could ask (``at_least`` holds, ``at_most`` does not).
* ``last_purchase`` — the day (UTC) of the last purchase, ``from``/``to``, both included.
* ``rfm`` — recency, frequency and monetary scores from 0 to 5 on fixed thresholds (:class:`RfmScale`),
  each an exact score or ``at_least``/``at_most``.
* ``tier`` — the membership tier, a name or a list of names.
* ``has_identity`` — an identity kind the member has (``phone``, ``openid`` for a mini-program, ...).
* ``signal`` — ingested signals (``blocks ingest``) of a ``type`` (a name, a list, or a prefix ending in
  ``.``), counted with ``at_least``/``at_most`` over a window, optionally in a ``channel``.
* ``all`` and ``any`` — a non-empty list of conditions; ``not`` — one condition.

The keys of a segment entry beside ``id`` and ``description`` are conditions that must all hold; the
flat rules segments had before (``min_orders``, ``tiers``, ...) are shorthand for the conditions
:func:`flat_rules` builds from them, meaning exactly what they meant.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.manifest import readers
from retailblocks.manifest.errors import ManifestError
from retailblocks.manifest.nodes import Node
from retailblocks.model import Money
from retailblocks.model.limits import MAX_AMOUNT, MAX_QUANTITY, check_amount
from retailblocks.model.member import IdentityKind
from retailblocks.model.money import currency_exponent

#: The type of an ingested signal, as ``blocks ingest`` accepts it: dotted lower-case words.
SIGNAL_TYPE = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+")
#: A prefix of signal types: the leading words of a type, ending in ``.``.
_SIGNAL_PREFIX = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*\.")
#: How deeply ``all``/``any``/``not`` may nest: far beyond a readable segment, far below Python's stack.
MAX_NESTING = 16
#: The longest window, in days: a century.
MAX_WINDOW_DAYS = 36_500
RFM_SCORES = range(0, 6)


class Metric(enum.StrEnum):
    ORDERS = "orders"
    SPEND = "spend"
    UNITS = "units"
    POINTS = "points"


@attrs.frozen
class Bounds:
    """``at_least <= figure <= at_most``; a bound not given does not limit."""

    at_least: int | None = None
    at_most: int | None = None

    def holds(self, figure: int) -> bool:
        return (self.at_least is None or figure >= self.at_least) and (self.at_most is None or figure <= self.at_most)


@attrs.frozen
class Window:
    """When: the last ``within_days`` days up to now, or the days ``start`` … ``end`` (UTC, both included),
    or (neither given) the member's whole history."""

    within_days: int | None = None
    start: date | None = None
    end: date | None = None

    @property
    def lifetime(self) -> bool:
        return self.within_days is None and self.start is None and self.end is None


@attrs.frozen
class MetricCondition:
    metric: Metric
    bounds: Bounds
    window: Window = Window()
    channels: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()


@attrs.frozen
class RecencyCondition:
    """Whole days since the last purchase (``(now - last).days``)."""

    bounds: Bounds


@attrs.frozen
class LastPurchaseCondition:
    """The UTC day of the last purchase lies from ``start`` to ``end`` (both included, either open)."""

    start: date | None = None
    end: date | None = None


@attrs.frozen
class RfmScale:
    """Fixed thresholds that turn a member's figures into scores from 0 to 5.

    * recency: 5 when the last purchase was at most ``recency_days[0]`` whole days ago, 4 within
      ``recency_days[1]``, 3 within ``[2]``, 2 within ``[3]``, else 1; 0 for a member who never bought;
    * frequency: sales in the last ``period_days`` days; 1 for at least one, 2 for at least
      ``frequency_orders[0]``, ... 5 for at least ``frequency_orders[3]``; 0 for none;
    * monetary: spend (net of refunds) in the last ``period_days`` days, minor units; 1 for anything above
      zero, 2 for at least ``monetary[0]``, ... 5 for at least ``monetary[3]``; 0 for nothing.

    Fixed rather than quintiles so a member's scores depend on their own history only: they are updated
    when that member's events arrive, never because another member bought.
    """

    recency_days: tuple[int, int, int, int] = (30, 90, 180, 365)
    frequency_orders: tuple[int, int, int, int] = (2, 3, 5, 10)
    #: None: 200, 500, 1000 and 2000 in the merchant's currency's major unit.
    monetary: tuple[int, int, int, int] | None = None
    period_days: int = 365

    def monetary_in(self, currency: str) -> tuple[int, int, int, int]:
        if self.monetary is not None:
            return self.monetary
        unit = 10 ** currency_exponent(currency)
        return (200 * unit, 500 * unit, 1000 * unit, 2000 * unit)


@attrs.frozen
class RfmCondition:
    recency: Bounds | None = None
    frequency: Bounds | None = None
    monetary: Bounds | None = None
    scale: RfmScale = RfmScale()


@attrs.frozen
class TierCondition:
    tiers: frozenset[str]


@attrs.frozen
class IdentityCondition:
    kind: str


@attrs.frozen
class SignalCondition:
    #: exact types, and prefixes ending in ``.`` that match every type they begin
    types: frozenset[str]
    bounds: Bounds
    window: Window = Window()
    channels: frozenset[str] = frozenset()

    def matches(self, signal_type: str) -> bool:
        return any(signal_type == t or (t.endswith(".") and signal_type.startswith(t)) for t in self.types)


@attrs.frozen
class AllOf:
    conditions: tuple[Condition, ...]


@attrs.frozen
class AnyOf:
    conditions: tuple[Condition, ...]


@attrs.frozen
class Not:
    condition: Condition


Condition: TypeAlias = (
    MetricCondition
    | RecencyCondition
    | LastPurchaseCondition
    | RfmCondition
    | TierCondition
    | IdentityCondition
    | SignalCondition
    | AllOf
    | AnyOf
    | Not
)

CONDITION_KEYS = (
    "all",
    "any",
    "not",
    *(m.value for m in Metric),
    "recency",
    "last_purchase",
    "rfm",
    "tier",
    "has_identity",
    "signal",
)
_WINDOW_KEYS = ("within_days", "from", "to")
_BOUND_KEYS = ("at_least", "at_most")
_FILTER_KEYS = ("channel", "category", "sku")
_RFM_SCORES = ("recency", "frequency", "monetary")


@attrs.frozen
class Catalogue:
    """What conditions may name, as the manifest declares it; an empty catalog cannot check SKUs."""

    currency: str
    channels: tuple[str, ...]
    skus: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


def parse_condition(node: Node, known: Catalogue, depth: int = 0) -> Condition:
    """One condition: a mapping with exactly one key, the condition's kind."""
    entries = readers.mapping(node)
    if len(entries) != 1:
        if not entries:
            raise ManifestError.at(node, f"expected a condition, one of {_listed(CONDITION_KEYS)} (got an empty one)")
        keys = " and ".join(repr(key) for key in entries)
        raise ManifestError.at(
            node, f"a condition has one key (got {keys}); write all: [...] or any: [...] to combine them"
        )
    [(kind, value)] = entries.items()
    if kind not in CONDITION_KEYS:
        hint = readers.suggestion(kind, CONDITION_KEYS) or f" (conditions: {_listed(CONDITION_KEYS)})"
        raise ManifestError.at(node.key_position(kind), f"unknown condition {kind!r}{hint}")
    return parse_kind(kind, value, known, depth)


def parse_kind(kind: str, node: Node, known: Catalogue, depth: int = 0) -> Condition:
    """The condition of ``kind`` whose body is ``node``."""
    if kind in ("all", "any"):
        if depth >= MAX_NESTING:
            raise ManifestError.at(node, f"conditions nest deeper than {MAX_NESTING} levels")
        items = tuple(parse_condition(item, known, depth + 1) for item in readers.sequence(node, non_empty=True))
        return AllOf(items) if kind == "all" else AnyOf(items)
    if kind == "not":
        if depth >= MAX_NESTING:
            raise ManifestError.at(node, f"conditions nest deeper than {MAX_NESTING} levels")
        return Not(parse_condition(node, known, depth + 1))
    if kind in Metric.__members__.values():
        return _metric(Metric(kind), node, known)
    if kind == "recency":
        entries = readers.check_keys(node, _BOUND_KEYS)
        return RecencyCondition(_bounds(node, entries, _count))
    if kind == "last_purchase":
        entries = readers.check_keys(node, ("from", "to"))
        if not entries:
            raise ManifestError.at(node, "give 'from', 'to' or both (days like '2026-06-01')")
        window = _window(node, entries)
        return LastPurchaseCondition(window.start, window.end)
    if kind == "rfm":
        return _rfm(node, known)
    if kind == "tier":
        return TierCondition(frozenset(readers.string(item) for item in _one_or_more(node)))
    if kind == "has_identity":
        kinds = [k.value for k in IdentityKind]
        return IdentityCondition(readers.choice(node, kinds))
    return _signal(node, known)


def _metric(metric: Metric, node: Node, known: Catalogue) -> MetricCondition:
    entries = readers.check_keys(node, (*_BOUND_KEYS, *_WINDOW_KEYS, *_FILTER_KEYS))
    read = (lambda item: money_amount(item, known.currency)) if metric is Metric.SPEND else _count
    return MetricCondition(
        metric=metric,
        bounds=_bounds(node, entries, read),
        window=_window(node, entries),
        channels=_names(entries.get("channel"), known.channels, "channel", declared=True),
        categories=_names(entries.get("category"), known.categories, "category"),
        skus=_names(entries.get("sku"), known.skus, "SKU"),
    )


def _signal(node: Node, known: Catalogue) -> SignalCondition:
    entries = readers.check_keys(node, ("type", *_BOUND_KEYS, *_WINDOW_KEYS, "channel"), ("type",))
    types: set[str] = set()
    for item in _one_or_more(entries["type"]):
        text = readers.string(item)
        if not (SIGNAL_TYPE.fullmatch(text) or _SIGNAL_PREFIX.fullmatch(text)):
            raise ManifestError.at(
                item,
                "expected a signal type of dotted lower-case words like 'social.like', or a prefix ending "
                f"in '.' like 'social.' (got {item.describe()})",
            )
        types.add(text)
    return SignalCondition(
        types=frozenset(types),
        bounds=_bounds(node, entries, _count),
        window=_window(node, entries),
        channels=_names(entries.get("channel"), known.channels, "channel", declared=True),
    )


def _rfm(node: Node, known: Catalogue) -> RfmCondition:
    entries = readers.check_keys(node, (*_RFM_SCORES, "scale"))
    scores: dict[str, Bounds] = {}
    for name in _RFM_SCORES:
        if name in entries:
            scores[name] = _score(entries[name])
    if not scores:
        raise ManifestError.at(node, "give at least one score: recency, frequency or monetary (each 0 to 5)")
    scale = _scale(entries["scale"], known) if "scale" in entries else RfmScale()
    return RfmCondition(scale=scale, **scores)


def _score(node: Node) -> Bounds:
    def score(item: Node) -> int:
        value = readers.integer(item)
        if value not in RFM_SCORES:
            raise ManifestError.at(item, f"an RFM score is a whole number from 0 to 5 (got {item.describe()})")
        return value

    if node.is_scalar:
        exact = score(node)
        return Bounds(exact, exact)
    return _bounds(node, readers.check_keys(node, _BOUND_KEYS), score)


def _scale(node: Node, known: Catalogue) -> RfmScale:
    entries = readers.check_keys(node, ("recency_days", "frequency_orders", "monetary", "period_days"))
    default = RfmScale()
    recency = _four(entries["recency_days"], _days) if "recency_days" in entries else default.recency_days
    frequency = (
        _four(entries["frequency_orders"], _count) if "frequency_orders" in entries else default.frequency_orders
    )
    monetary = (
        _four(entries["monetary"], lambda item: money_amount(item, known.currency)) if "monetary" in entries else None
    )
    period = _days(entries["period_days"]) if "period_days" in entries else default.period_days
    return RfmScale(recency, frequency, monetary, period)


def _four(node: Node, read: Any) -> tuple[int, int, int, int]:
    items = readers.sequence(node)
    if len(items) != 4:
        raise ManifestError.at(node, f"expected 4 thresholds, for scores 5 to 2 or 2 to 5 (got {len(items)})")
    values = [read(item) for item in items]
    for before, after, item in zip(values, values[1:], items[1:], strict=False):
        if after <= before:
            raise ManifestError.at(item, "thresholds must rise from one to the next")
    return values[0], values[1], values[2], values[3]


def _bounds(node: Node, entries: Mapping[str, Node], read: Any) -> Bounds:
    values = {key: read(entries[key]) for key in _BOUND_KEYS if key in entries}
    if not values:
        raise ManifestError.at(node, "give at_least, at_most or both")
    if len(values) == 2 and values["at_least"] > values["at_most"]:
        raise ManifestError.at(entries["at_most"], "at_most is below at_least; no member could match this")
    return Bounds(values.get("at_least"), values.get("at_most"))


def _window(node: Node, entries: Mapping[str, Node]) -> Window:
    if "within_days" in entries and ("from" in entries or "to" in entries):
        raise ManifestError.at(
            entries["within_days"], "give within_days or from/to, not both: a window is either the last N days or dates"
        )
    if "within_days" in entries:
        days = _days(entries["within_days"])
        if days == 0:
            raise ManifestError.at(entries["within_days"], "within_days is at least 1 (got the integer 0)")
        return Window(within_days=days)
    start = parse_day(entries["from"]) if "from" in entries else None
    end = parse_day(entries["to"]) if "to" in entries else None
    if start is not None and end is not None and end < start:
        raise ManifestError.at(entries["to"], f"'to' ({end}) is before 'from' ({start}); no day lies between them")
    return Window(start=start, end=end)


def _names(node: Node | None, known: tuple[str, ...], what: str, *, declared: bool = False) -> frozenset[str]:
    if node is None:
        return frozenset()
    values: set[str] = set()
    for item in _one_or_more(node):
        value = readers.string(item)
        # Channels are always declared; SKUs and categories only when the manifest has a catalog.
        if (declared or known) and value not in known:
            listed = ", ".join(known) or "none"
            raise ManifestError.at(
                item, f"unknown {what} {value!r}{readers.suggestion(value, known)} (declared: {listed})"
            )
        values.add(value)
    return frozenset(values)


def _one_or_more(node: Node) -> tuple[Node, ...]:
    return readers.sequence(node, non_empty=True) if node.is_sequence else (node,)


def _count(node: Node) -> int:
    value = readers.integer(node)
    if not 0 <= value <= MAX_QUANTITY:
        raise ManifestError.at(node, f"expected a whole number from 0 to {MAX_QUANTITY} (got {node.describe()})")
    return value


def _days(node: Node) -> int:
    value = readers.integer(node)
    if not 0 <= value <= MAX_WINDOW_DAYS:
        raise ManifestError.at(node, f"expected a number of days from 0 to {MAX_WINDOW_DAYS} (got {node.describe()})")
    return value


def parse_day(node: Node) -> date:
    text = readers.string(node)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ManifestError.at(node, f"expected a date like '2026-06-01' (got {node.describe()})") from None


def money_amount(node: Node, currency: str) -> int:
    """An amount of the merchant's currency in minor units: ``"200.00 CNY"``, ``"200.00"`` or ``200``."""
    value = node.value
    if isinstance(value, str) and value.strip()[-1:].isalpha():
        return readers.money(node, currency).amount  # with its currency, which must be the merchant's
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise readers.mismatch(node, f"an amount like '200.00' or '200.00 {currency}'")
    exponent = currency_exponent(currency)
    try:
        exact = Decimal(str(value))
    except InvalidOperation:
        raise ManifestError.at(
            node, f"expected an amount like '200.00' or '200.00 {currency}' (got {node.describe()})"
        ) from None
    if not exact.is_finite() or exact < 0:
        raise ManifestError.at(node, f"an amount here is a number of at least 0 (got {node.describe()})")
    minor = exact.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ManifestError.at(node, f"{currency} has {exponent} decimal places (got {node.describe()})")
    amount = int(minor)
    try:
        check_amount(amount, "an amount")
    except InvalidValue:
        raise ManifestError.at(node, f"an amount here is at most {MAX_AMOUNT} minor units") from None
    return amount


def flat_rules(
    *,
    min_orders: int | None = None,
    max_orders: int | None = None,
    min_spend: Money | None = None,
    max_spend: Money | None = None,
    purchased_within_days: int | None = None,
    not_purchased_for_days: int | None = None,
    tiers: frozenset[str] = frozenset(),
    channels: frozenset[str] = frozenset(),
    skus: frozenset[str] = frozenset(),
    categories: frozenset[str] = frozenset(),
    last_purchase_before: date | None = None,
    last_purchase_after: date | None = None,
) -> tuple[Condition, ...]:
    """The conditions the flat rules of a segment stand for, in the order they were always checked."""
    found: list[Condition] = []
    if min_orders is not None or max_orders is not None:
        found.append(MetricCondition(Metric.ORDERS, Bounds(min_orders, max_orders)))
    if min_spend is not None or max_spend is not None:
        found.append(
            MetricCondition(
                Metric.SPEND,
                Bounds(min_spend.amount if min_spend else None, max_spend.amount if max_spend else None),
            )
        )
    if purchased_within_days is not None:
        found.append(RecencyCondition(Bounds(at_most=purchased_within_days)))
    if not_purchased_for_days is not None:
        found.append(RecencyCondition(Bounds(at_least=not_purchased_for_days)))
    if tiers:
        found.append(TierCondition(tiers))
    # Affinity: bought at least once in one of the channels, one of the SKUs, one of the categories.
    if channels:
        found.append(MetricCondition(Metric.ORDERS, Bounds(at_least=1), channels=channels))
    if skus:
        found.append(MetricCondition(Metric.ORDERS, Bounds(at_least=1), skus=skus))
    if categories:
        found.append(MetricCondition(Metric.ORDERS, Bounds(at_least=1), categories=categories))
    if last_purchase_before is not None or last_purchase_after is not None:
        end = last_purchase_before - timedelta(days=1) if last_purchase_before is not None else None
        found.append(LastPurchaseCondition(last_purchase_after, end))
    return tuple(found)


def condition_data(condition: Condition) -> Any:
    """Plain, ordered data for ``condition``: the same text for the same meaning in every process (sets
    sorted), so a stored membership can tell whether the segment it was computed for has changed."""
    if isinstance(condition, AllOf | AnyOf):
        return {"all" if isinstance(condition, AllOf) else "any": [condition_data(c) for c in condition.conditions]}
    if isinstance(condition, Not):
        return {"not": condition_data(condition.condition)}
    name = type(condition).__name__
    return {name: _plain(attrs.asdict(condition, recurse=False))}


def _plain(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if attrs.has(type(value)):
        return _plain(attrs.asdict(value, recurse=False))
    if isinstance(value, date | enum.Enum):
        return str(value)
    return value


def _listed(names: tuple[str, ...]) -> str:
    return ", ".join(names)
