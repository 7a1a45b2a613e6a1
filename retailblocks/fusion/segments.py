"""Segments evaluated over a member's facts: every condition of the segment language checked against the
member's figures, with the figure, the threshold and whether it held, so the same evaluation answers
"is this member in?" and "why?".

Evaluation is a pure function of the facts and the moment: :mod:`retailblocks.fusion.memberships` keeps
the facts and the answers up to date as events arrive. Each check also says when time alone could change
it (``changes_at``): a window slides past a purchase, a day is added to the days since the last one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, time, timedelta

import attrs

from retailblocks.fusion.profile import MemberProfile
from retailblocks.manifest.conditions import (
    AllOf,
    AnyOf,
    Bounds,
    Condition,
    IdentityCondition,
    LastPurchaseCondition,
    Metric,
    MetricCondition,
    Not,
    RecencyCondition,
    RfmCondition,
    RfmScale,
    SignalCondition,
    TierCondition,
    Window,
)
from retailblocks.manifest.model import Segment
from retailblocks.model import Money


@attrs.frozen
class LineFact:
    """One line of an order as segments see it: units and spend net of what was refunded."""

    sku: str
    units: int
    spend: int
    points: int = 0


@attrs.frozen
class OrderFact:
    """One order of a member as segments see it (:func:`retailblocks.fusion.memberships.order_fact`)."""

    order_id: str
    member_id: str
    placed_by: str
    channel: str
    placed_at: datetime
    #: not pending, failed or cancelled: an order that became a sale (refunded ones included)
    sale: bool
    spend: int
    units: int
    points: int
    lines: tuple[LineFact, ...]


@attrs.frozen
class SignalFact:
    type: str
    channel: str | None
    at: datetime


@attrs.frozen
class MemberFacts:
    """Everything a segment may ask about one member."""

    member_id: str
    tier: str
    identity_kinds: frozenset[str]
    orders: tuple[OrderFact, ...]
    signals: tuple[SignalFact, ...]

    @property
    def sales(self) -> tuple[OrderFact, ...]:
        return tuple(order for order in self.orders if order.sale)

    @property
    def last_purchase(self) -> datetime | None:
        return max((order.placed_at for order in self.sales), default=None)


@attrs.frozen
class Check:
    """One condition checked: the member's ``figure``, the ``threshold`` asked, and whether it ``holds``.

    ``checks`` are the conditions inside (``all``, ``any``, ``not``, the scores of ``rfm``);
    ``quantity`` is the figure as a number where it is one (a count, whole days, an amount), which data
    gives instead of the text, so money there has its one shape; ``changes_at`` is the earliest moment at
    which time alone could change ``holds`` (None: only an event can), so a stored answer is known to stand
    until then.
    """

    condition: str
    holds: bool
    figure: str = ""
    threshold: str = ""
    checks: tuple[Check, ...] = ()
    quantity: int | Money | None = None
    changes_at: datetime | None = attrs.field(default=None, eq=False)

    def to_data(self) -> dict[str, object]:
        quantity = self.quantity
        return {
            "condition": self.condition,
            "holds": self.holds,
            "figure": (
                {"amount": quantity.amount, "currency": quantity.currency}
                if isinstance(quantity, Money)
                else self.figure
                if quantity is None
                else quantity
            ),
            "threshold": self.threshold,
            "checks": [check.to_data() for check in self.checks],
        }


@attrs.frozen
class Reading:
    """What an evaluation needs besides the facts: the moment, the currency and each SKU's category."""

    now: datetime
    currency: str
    categories: Mapping[str, str]


def evaluate(segment: Segment, facts: MemberFacts, reading: Reading) -> Check:
    """The segment's conditions checked against the member's facts at ``reading.now``."""
    return check(segment.condition, facts, reading)


def check(condition: Condition, facts: MemberFacts, reading: Reading) -> Check:
    if isinstance(condition, AllOf | AnyOf):
        checks = tuple(check(c, facts, reading) for c in condition.conditions)
        every = isinstance(condition, AllOf)
        holds = all(c.holds for c in checks) if every else any(c.holds for c in checks)
        label = "all of" if every else "any of"
        return Check(label, holds, checks=checks, changes_at=_earliest(c.changes_at for c in checks))
    if isinstance(condition, Not):
        inner = check(condition.condition, facts, reading)
        return Check("not", not inner.holds, checks=(inner,), changes_at=inner.changes_at)
    if isinstance(condition, MetricCondition):
        return _metric(condition, facts, reading)
    if isinstance(condition, RecencyCondition):
        return _recency(condition, facts, reading)
    if isinstance(condition, LastPurchaseCondition):
        return _last_purchase(condition, facts)
    if isinstance(condition, RfmCondition):
        return _rfm(condition, facts, reading)
    if isinstance(condition, TierCondition):
        return Check(
            "membership tier",
            facts.tier in condition.tiers,
            figure=facts.tier or "none",
            threshold="one of " + ", ".join(sorted(condition.tiers)),
        )
    if isinstance(condition, IdentityCondition):
        return Check(
            f"has a {condition.kind} identity",
            condition.kind in facts.identity_kinds,
            figure=", ".join(sorted(facts.identity_kinds)) or "none",
            threshold=condition.kind,
        )
    return _signal(condition, facts, reading)


def _metric(condition: MetricCondition, facts: MemberFacts, reading: Reading) -> Check:
    orders = [
        order
        for order in facts.sales
        if (not condition.channels or order.channel in condition.channels)
        and _in_window(order.placed_at, condition.window, reading.now)
    ]
    by_line = bool(condition.skus or condition.categories)
    if by_line:

        def wanted(line: LineFact) -> bool:
            return (not condition.skus or line.sku in condition.skus) and (
                not condition.categories or reading.categories.get(line.sku) in condition.categories
            )

        orders = [order for order in orders if any(wanted(line) for line in order.lines)]
        lines = [line for order in orders for line in order.lines if wanted(line)]
    figure = {
        Metric.ORDERS: lambda: len(orders),
        Metric.SPEND: lambda: sum(line.spend for line in lines) if by_line else sum(o.spend for o in orders),
        Metric.UNITS: lambda: sum(line.units for line in lines) if by_line else sum(o.units for o in orders),
        Metric.POINTS: lambda: sum(line.points for line in lines) if by_line else sum(o.points for o in orders),
    }[condition.metric]()
    filters = [
        ("channel", condition.channels),
        ("category", condition.categories),
        ("SKU", condition.skus),
    ]
    scope = "".join(f", {name} {' or '.join(sorted(values))}" for name, values in filters if values)
    show = _money(reading.currency) if condition.metric is Metric.SPEND else str
    return Check(
        f"{condition.metric.value} {window_text(condition.window)}{scope}",
        condition.bounds.holds(figure),
        figure=show(figure),
        threshold=bounds_text(condition.bounds, show),
        quantity=Money(figure, reading.currency) if condition.metric is Metric.SPEND else figure,
        changes_at=_window_changes(condition.window, (o.placed_at for o in orders), reading.now),
    )


def _recency(condition: RecencyCondition, facts: MemberFacts, reading: Reading) -> Check:
    last = facts.last_purchase
    label = "days since the last purchase"
    threshold = bounds_text(condition.bounds, str)
    if last is None:
        # Never bought: longer ago than any at_least, never within any at_most.
        return Check(label, condition.bounds.at_most is None, figure="never bought", threshold=threshold)
    days = (reading.now - last).days
    boundaries = [b for b in (condition.bounds.at_least, _after(condition.bounds.at_most)) if b is not None]
    return Check(
        label,
        condition.bounds.holds(days),
        figure=str(days),
        threshold=threshold,
        quantity=days,
        changes_at=_next_day_boundary(last, boundaries, reading.now),
    )


def _last_purchase(condition: LastPurchaseCondition, facts: MemberFacts) -> Check:
    last = facts.last_purchase
    threshold = " ".join(
        part
        for part in (
            f"from {condition.start}" if condition.start else "",
            f"to {condition.end}" if condition.end else "",
        )
        if part
    )
    if last is None:
        return Check("day of the last purchase (UTC)", False, figure="never bought", threshold=threshold)
    day = last.astimezone(UTC).date()
    holds = (condition.start is None or day >= condition.start) and (condition.end is None or day <= condition.end)
    return Check("day of the last purchase (UTC)", holds, figure=day.isoformat(), threshold=threshold)


@attrs.frozen
class RfmScores:
    recency: int
    frequency: int
    monetary: int
    days: int | None
    orders: int
    spend: int


def rfm_scores(facts: MemberFacts, scale: RfmScale, now: datetime, currency: str) -> RfmScores:
    """The member's recency, frequency and monetary scores (0 to 5) on ``scale``'s fixed thresholds."""
    last = facts.last_purchase
    days = (now - last).days if last is not None else None
    # 5 within the first threshold, 4 within the second, ... 1 beyond the last; 0 for never.
    recency = 0 if days is None else next((5 - i for i, limit in enumerate(scale.recency_days) if days <= limit), 1)
    period = Window(within_days=scale.period_days)
    recent = [order for order in facts.sales if _in_window(order.placed_at, period, now)]
    orders = len(recent)
    spend = sum(order.spend for order in recent)
    return RfmScores(
        recency=recency,
        frequency=_rising_score(orders, scale.frequency_orders),
        monetary=_rising_score(spend, scale.monetary_in(currency)),
        days=days,
        orders=orders,
        spend=spend,
    )


def _rising_score(figure: int, thresholds: tuple[int, int, int, int]) -> int:
    if figure <= 0:
        return 0
    return 1 + sum(figure >= limit for limit in thresholds)


def _rfm(condition: RfmCondition, facts: MemberFacts, reading: Reading) -> Check:
    scale = condition.scale
    scores = rfm_scores(facts, scale, reading.now, reading.currency)
    money = _money(reading.currency)
    recent = [
        o.placed_at for o in facts.sales if _in_window(o.placed_at, Window(within_days=scale.period_days), reading.now)
    ]
    sliding = _window_changes(Window(within_days=scale.period_days), recent, reading.now)
    last = facts.last_purchase
    recency_changes = (
        _next_day_boundary(last, [limit + 1 for limit in scale.recency_days], reading.now) if last else None
    )
    wanted = [
        (
            condition.recency,
            "recency score",
            scores.recency,
            f"{scores.days} days since the last purchase" if scores.days is not None else "never bought",
            recency_changes,
        ),
        (
            condition.frequency,
            "frequency score",
            scores.frequency,
            f"{scores.orders} sales in {scale.period_days} days",
            sliding,
        ),
        (
            condition.monetary,
            "monetary score",
            scores.monetary,
            f"{money(scores.spend)} in {scale.period_days} days",
            sliding,
        ),
    ]
    checks = tuple(
        Check(
            label,
            bounds.holds(score),
            figure=f"{score} ({because})",
            threshold=bounds_text(bounds, str),
            changes_at=changes,
        )
        for bounds, label, score, because, changes in wanted
        if bounds is not None
    )
    return Check(
        "RFM scores",
        all(c.holds for c in checks),
        checks=checks,
        changes_at=_earliest(c.changes_at for c in checks),
    )


def _signal(condition: SignalCondition, facts: MemberFacts, reading: Reading) -> Check:
    found = [
        signal
        for signal in facts.signals
        if condition.matches(signal.type)
        and (not condition.channels or signal.channel in condition.channels)
        and _in_window(signal.at, condition.window, reading.now)
    ]
    types = " or ".join(t + "*" if t.endswith(".") else t for t in sorted(condition.types))
    scope = f", channel {' or '.join(sorted(condition.channels))}" if condition.channels else ""
    return Check(
        f"signals {types} {window_text(condition.window)}{scope}",
        condition.bounds.holds(len(found)),
        figure=str(len(found)),
        threshold=bounds_text(condition.bounds, str),
        quantity=len(found),
        changes_at=_window_changes(condition.window, (s.at for s in found), reading.now),
    )


def window_start(window: Window, now: datetime) -> tuple[datetime | None, datetime | None]:
    """The moments the window runs from (included) and to (excluded); None where it is open."""
    if window.within_days is not None:
        return now - timedelta(days=window.within_days), None
    start = datetime.combine(window.start, time(), UTC) if window.start else None
    end = datetime.combine(window.end + timedelta(days=1), time(), UTC) if window.end else None
    return start, end


def _in_window(moment: datetime, window: Window, now: datetime) -> bool:
    if window.lifetime:
        return True
    start, end = window_start(window, now)
    if window.within_days is not None:
        return start is not None and start <= moment <= now
    return (start is None or moment >= start) and (end is None or moment < end)


def _window_changes(window: Window, moments: Iterable[datetime], now: datetime) -> datetime | None:
    """When the first of ``moments`` (all inside the window) leaves a sliding window; None for fixed ones."""
    if window.within_days is None:
        return None
    return _earliest(moment + timedelta(days=window.within_days) for moment in moments if moment <= now)


def _next_day_boundary(last: datetime, days: Iterable[int], now: datetime) -> datetime | None:
    """The first moment after ``now`` at which ``(moment - last).days`` reaches one of ``days``."""
    return _earliest(last + timedelta(days=d) for d in days if last + timedelta(days=d) > now)


def _after(at_most: int | None) -> int | None:
    # ``days <= at_most`` stops holding once a whole day more has passed.
    return None if at_most is None else at_most + 1


def _earliest(moments: Iterable[datetime | None]) -> datetime | None:
    return min((m for m in moments if m is not None), default=None)


def window_text(window: Window) -> str:
    if window.within_days is not None:
        return f"in the last {window.within_days} days" if window.within_days != 1 else "in the last day"
    if window.start and window.end:
        return f"from {window.start} to {window.end}"
    if window.start:
        return f"from {window.start}"
    if window.end:
        return f"up to {window.end}"
    return "ever"


def bounds_text(bounds: Bounds, show: Callable[[int], str]) -> str:
    low, high = bounds.at_least, bounds.at_most
    if low is not None and high is not None:
        return f"exactly {show(low)}" if low == high else f"from {show(low)} to {show(high)}"
    if low is not None:
        return f"at least {show(low)}"
    return f"at most {show(high)}" if high is not None else "any"


def _money(currency: str) -> Callable[[int], str]:
    return lambda amount: Money(amount, currency).format()


def members_of(segment: Segment, profiles: Mapping[str, MemberProfile]) -> list[str]:
    """The member ids in ``segment`` among ``profiles`` as :func:`retailblocks.fusion.views.profiles` returns
    them (each carrying its segments), sorted so a campaign issues in the same order every run."""
    return sorted(member_id for member_id, profile in profiles.items() if segment.id in profile.segments)
