"""The promotion engine: pure functions from a priced cart and the configured promotions to
adjustments.

No database and no clock of its own: the block reads usage and issued coupons, then calls
:func:`compute`
with plain values. Amounts are worked out exactly (as fractions of a minor unit) the way the peer
platforms do, and rounded once per adjustment; see SEMANTICS.md for every rule and its reason.

Data in:

* :class:`Line` — a cart line: index, sku, category, quantity, unit price, and what earlier
adjustments
  already took off it;
* ``shipping`` and ``shipping_discount`` — the shipping price and what earlier adjustments took
  off
it;
* :class:`Shopper` — member id, tier, segments and the channel;
* the presented coupon codes, plus the issued single-member codes the block resolved;
* :class:`~retailblocks_promotions.config.PromotionConfig` — the promotions, in config order;
* :class:`Usage` per promotion id — uses so far, budget spent, and this member's uses.

Data out: :class:`Adjustment` values, each with its target, amount, per-line split (summing exactly
to
the amount, never taking a line below zero), an explanation, the funder and the campaign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from fractions import Fraction

import attrs

from retailblocks.errors import CurrencyMismatch
from retailblocks.model import AdjustmentTarget, Money, allocate_integer
from retailblocks_promotions.config import PromotionConfig, TaxConfig, parse_moment

#: Items are priced first, then the order, then shipping (so order-wide percentages see item
#: discounts).
_PHASES = {"items": 0, "order": 1, "shipping": 2}


@attrs.frozen
class Line:
    """A cart line as the engine sees it. ``discount`` is what earlier adjustments already took off;
    ``fulfilment`` (delivery, pickup, carry_out), ``option_id`` (the shipping option) and ``region`` (of
    the address it goes to) say how it reaches the shopper, None when unknown."""

    index: int
    sku: str
    quantity: int
    unit_price: Money
    category: str = "general"
    discount: Money | None = None
    fulfilment: str | None = None
    option_id: str | None = None
    region: str | None = None

    @property
    def subtotal(self) -> int:
        return self.unit_price.amount * self.quantity

    @property
    def taken(self) -> int:
        return self.discount.amount if self.discount is not None else 0


def _frozen(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


@attrs.frozen
class Shopper:
    """Who buys and where: the facts promotion conditions look at."""

    member_id: str | None = None
    tier: str | None = None
    segments: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    channel_id: str | None = None
    channel_type: str | None = None


@attrs.frozen
class Usage:
    """How much of a promotion's limits is used: orders, budget spent (minor units), this member's
    orders.
    """

    uses: int = 0
    budget_spent: int = 0
    member_uses: int = 0


@attrs.frozen
class Adjustment:
    """One promotion's discount on this cart, explained. ``line_amounts`` is empty for shipping."""

    promotion_id: str
    target: AdjustmentTarget
    amount: Money
    reason: str
    funder: str
    line_amounts: tuple[tuple[int, Money], ...] = ()
    coupon: str | None = None
    campaign: str | None = None
    funders: tuple[tuple[str, Money], ...] = ()  # the parts of a co-funded promotion


def _funding(promotion: PromotionConfig, total: Money, merchant_id: str) -> tuple[str, tuple[tuple[str, Money], ...]]:
    """The lead funder (the largest part, the first listed on a tie) and, when several share it, each part.

    The parts are split by largest remainder (each gets the floor of its exact share, the units left go to
    the largest remainders, ties to the funder listed first): no unit lost, and the same every time.
    """
    if not promotion.funders:
        return promotion.funder or merchant_id, ()
    parts = allocate_integer(total.amount, [share.basis_points for share in promotion.funders])
    funders = tuple(
        (share.party(merchant_id), Money(part, total.currency))
        for share, part in zip(promotion.funders, parts, strict=True)
    )
    lead = max(range(len(funders)), key=lambda i: (funders[i][1].amount, -i))
    return funders[lead][0], funders


def normalize_code(code: str) -> str:
    """Coupon codes compare case-insensitively and without surrounding spaces."""
    return code.strip().upper()


def compute(
    lines: Sequence[Line],
    shipping: Money,
    shopper: Shopper,
    coupons: Sequence[str],
    promotions: Sequence[PromotionConfig],
    *,
    now: datetime,
    merchant_id: str,
    usage: Mapping[str, Usage] | None = None,
    issued_codes: Mapping[str, str] | None = None,
    shipping_discount: Money | None = None,
    taxes: TaxConfig | None = None,
) -> list[Adjustment]:
    """The adjustments the promotions give this cart, in evaluation order.

    ``coupons`` are the codes the shopper presented; ``issued_codes`` maps the normalized issued
    codes
    that are valid for this shopper to their promotion id. A promotion whose limits are used up,
    whose
    conditions fail or which gives nothing is left out. ``merchant_id`` funds promotions without a
    ``funder``. ``taxes`` says whether prices include tax, for promotions written on the other side of it.
    """
    currency = shipping.currency
    for line in lines:
        line.unit_price.check_same_currency(shipping)
    for promotion in promotions:
        for name, money in promotion.money_fields():
            if money.currency != currency:
                raise CurrencyMismatch(
                    f"promotion {promotion.id!r}: {name} is in {money.currency}, the cart in {currency}"
                )
    usage = usage or {}
    unlocked = _unlocked_by(coupons, promotions, issued_codes or {})
    candidates = [
        (position, promotion)
        for position, promotion in enumerate(promotions)
        if _eligible(promotion, shopper, now, usage.get(promotion.id, Usage()), unlocked, lines, taxes)
    ]
    if not candidates:
        return []
    cart = _Cart(lines, shipping, shipping_discount, taxes)

    def standalone(promotion: PromotionConfig) -> int:
        return sum(a.amount.amount for a in _run(cart, [promotion], unlocked, usage, merchant_id))

    # An exclusive promotion that gives something is the only one: the first by priority, then
    # config.
    for _position, promotion in sorted((c for c in candidates if c[1].exclusive), key=lambda c: (-c[1].priority, c[0])):
        alone = _run(cart, [promotion], unlocked, usage, merchant_id)
        if alone:
            return alone
    kept = [c for c in candidates if not c[1].exclusive]
    # One promotion per stacking group: the highest priority, then the larger discount, then config
    # order.
    winners: dict[str, tuple[int, int, int]] = {}
    for position, promotion in kept:
        if promotion.stacking_group is None:
            continue
        rank = (promotion.priority, standalone(promotion), -position)
        best = winners.get(promotion.stacking_group)
        if best is None or rank > best:
            winners[promotion.stacking_group] = rank
    kept = [
        (position, promotion)
        for position, promotion in kept
        if promotion.stacking_group is None or winners[promotion.stacking_group][2] == -position
    ]
    ordered = [
        promotion for _position, promotion in sorted(kept, key=lambda c: (_PHASES[c[1].target], -c[1].priority, c[0]))
    ]
    return _run(cart, ordered, unlocked, usage, merchant_id)


# --- eligibility ----------------------------------------------------------------------------------


def member_limits_reached(
    coupons: Sequence[str],
    promotions: Sequence[PromotionConfig],
    issued: Mapping[str, str],
    usage: Mapping[str, Usage],
) -> list[tuple[str, PromotionConfig]]:
    """(code as presented, promotion) for each presented code whose promotion this member has used as
    often as its ``per_member_limit`` allows: a refusal the shopper must hear as such, not as a coupon
    that does not apply."""
    known = {promotion.id: promotion for promotion in promotions}
    return [
        (code, known[promotion_id])
        for promotion_id, code in _unlocked_by(coupons, promotions, issued).items()
        if known[promotion_id].per_member_limit is not None
        and usage.get(promotion_id, Usage()).member_uses >= (known[promotion_id].per_member_limit or 0)
    ]


def _unlocked_by(
    coupons: Sequence[str], promotions: Sequence[PromotionConfig], issued: Mapping[str, str]
) -> dict[str, str]:
    """promotion id -> the code (as presented) that unlocks it; the first presented code wins."""
    by_code = {normalize_code(p.code): p.id for p in promotions if p.code is not None}
    unlocked: dict[str, str] = {}
    for code in coupons:
        key = normalize_code(code)
        promotion_id = by_code.get(key) or issued.get(key)
        if promotion_id is not None and promotion_id not in unlocked:
            unlocked[promotion_id] = code
    return unlocked


def _eligible(
    promotion: PromotionConfig,
    shopper: Shopper,
    now: datetime,
    usage: Usage,
    unlocked: Mapping[str, str],
    lines: Sequence[Line],
    taxes: TaxConfig | None = None,
) -> bool:
    if not promotion.is_automatic and promotion.id not in unlocked:
        return False
    if promotion.starts_at is not None and now < parse_moment(promotion.starts_at):
        return False
    if promotion.ends_at is not None and now >= parse_moment(promotion.ends_at):
        return False
    if promotion.channels and not ({shopper.channel_id, shopper.channel_type} & set(promotion.channels)):
        return False
    if promotion.tiers and shopper.tier not in promotion.tiers:
        return False
    if promotion.segments and not (shopper.segments & set(promotion.segments)):
        return False
    if promotion.usage_limit is not None and usage.uses >= promotion.usage_limit:
        return False
    if promotion.per_member_limit is not None and (
        shopper.member_id is None or usage.member_uses >= promotion.per_member_limit
    ):
        # A per-member limit can only be kept for a member we know.
        return False
    if promotion.budget is not None and usage.budget_spent >= promotion.budget.amount:
        return False
    if _has_reach(promotion) and not any(_reaches(promotion, line) for line in lines):
        return False  # covers shipping promotions: some line must go the way the promotion names
    if promotion.min_subtotal is not None:
        spend = sum(
            (line.subtotal / line_scale(promotion, line, taxes) for line in lines if _qualifies(promotion, line)),
            Fraction(0),
        )
        if spend < promotion.min_subtotal.amount:
            return False
    if promotion.min_cart_subtotal is not None:
        # What the shopper pays for the goods so far: list prices less what earlier blocks took.
        spend = sum(
            ((line.subtotal - min(line.taken, line.subtotal)) / line_scale(promotion, line, taxes) for line in lines),
            Fraction(0),
        )
        if spend < promotion.min_cart_subtotal.amount:
            return False
    return True


def _scale(promotion: PromotionConfig, rate: int, taxes: TaxConfig | None) -> Fraction:
    """Minor units of price per minor unit of the promotion's amounts, at a tax rate in basis points.

    A promotion written net ("20.00 off before tax") on gross prices takes 20.00 plus its tax off the
    price; one written gross on net prices takes 20.00 less the tax it includes. Percentages are the same
    on either side of tax, so only fixed values, caps and thresholds are converted.
    """
    if taxes is None or promotion.amounts == "as_priced":
        return Fraction(1)
    gross = 1 + Fraction(rate, 10_000)
    if promotion.amounts == "tax_exclusive" and taxes.prices_include_tax:
        return gross
    if promotion.amounts == "tax_inclusive" and not taxes.prices_include_tax:
        return 1 / gross
    return Fraction(1)


def line_scale(promotion: PromotionConfig, line: Line, taxes: TaxConfig | None) -> Fraction:
    return _scale(promotion, taxes.rate_of(line.category) if taxes is not None else 0, taxes)


def _has_reach(promotion: PromotionConfig) -> bool:
    return bool(promotion.fulfilments or promotion.delivery_options or promotion.regions)


def _reaches(promotion: PromotionConfig, line: Line) -> bool:
    """Whether the line leaves the way the promotion names: fulfilment kind, shipping option, region."""
    if promotion.fulfilments and line.fulfilment not in promotion.fulfilments:
        return False
    if promotion.delivery_options and line.option_id not in promotion.delivery_options:
        return False
    return not promotion.regions or line.region in promotion.regions


def _matches(skus: Iterable[str], categories: Iterable[str], line: Line) -> bool:
    sku_set, category_set = set(skus), set(categories)
    return (not sku_set or line.sku in sku_set) and (not category_set or line.category in category_set)


def _targets(promotion: PromotionConfig, line: Line) -> bool:
    return _matches(promotion.skus, promotion.categories, line) and _reaches(promotion, line)


def _qualifies(promotion: PromotionConfig, line: Line) -> bool:
    """Lines whose list price counts toward ``min_subtotal``."""
    if promotion.type == "buyget":
        return _matches(promotion.buy_skus, promotion.buy_categories, line) and _reaches(promotion, line)
    return _targets(promotion, line)


# --- evaluation -----------------------------------------------------------------------------------


def _line_key(line: Line) -> tuple[str, int, str, int, int, str, str, str, int]:
    # Everything the engine reads of a line, then the index: lines equal in all but their index are
    # interchangeable, so only their labels can differ between two orders of the same cart.
    return (
        line.sku,
        line.unit_price.amount,
        line.category,
        line.quantity,
        min(line.taken, line.subtotal),
        line.fulfilment or "",
        line.option_id or "",
        line.region or "",
        line.index,
    )


class _Cart:
    """What is left to discount while promotions are applied one after another.

    ``lines`` is in one order that does not depend on the cart's: every tie (rounding remainders, the
    cap's line by line, equally dear buy-get units) is broken by it, so shuffling the cart's lines
    cannot change what any line gets. ``position`` is the cart's own order, for reporting.
    """

    def __init__(
        self, lines: Sequence[Line], shipping: Money, shipping_discount: Money | None, taxes: TaxConfig | None = None
    ):
        self.lines = sorted(lines, key=_line_key)
        self.taxes = taxes
        self.position = {line.index: place for place, line in enumerate(lines)}
        self.shipping = shipping
        self.shipping_taken = min(shipping_discount.amount if shipping_discount else 0, shipping.amount)

    def scales(self, promotion: PromotionConfig) -> dict[int, Fraction]:
        """Price per promotion unit, by line index (-1: shipping); see _scale."""
        scales = {line.index: line_scale(promotion, line, self.taxes) for line in self.lines}
        scales[-1] = _scale(promotion, self.taxes.shipping_basis_points if self.taxes else 0, self.taxes)
        return scales

    def fresh(self) -> _State:
        return _State(
            taken={line.index: min(line.taken, line.subtotal) for line in self.lines},
            shipping_taken=self.shipping_taken,
            consumed={line.index: 0 for line in self.lines},
        )


@attrs.define
class _State:
    taken: dict[int, int]  # minor units already off each line
    shipping_taken: int
    consumed: dict[int, int]  # units used by buy-get promotions (as buy or get units)


def _run(
    cart: _Cart,
    promotions: Sequence[PromotionConfig],
    unlocked: Mapping[str, str],
    usage: Mapping[str, Usage],
    merchant_id: str,
) -> list[Adjustment]:
    state = cart.fresh()
    currency = cart.shipping.currency
    adjustments: list[Adjustment] = []
    for promotion in promotions:
        used: Mapping[int, int] = {}
        scales = cart.scales(promotion)
        if promotion.target == "shipping":
            exact = {-1: _shipping_amount(promotion, cart.shipping.amount - state.shipping_taken, scales[-1])}
        elif promotion.type == "buyget":
            exact, used = _buyget_amounts(promotion, cart.lines, state, scales)
        elif promotion.allocation == "once":
            exact = _once_amounts(promotion, cart.lines, state, scales)
        elif promotion.target == "order" or promotion.allocation == "across":
            exact = _across_amounts(promotion, cart.lines, state, scales)
        else:
            exact = _each_amounts(promotion, cart.lines, state, scales)
        exact = _limit(promotion, exact, usage.get(promotion.id, Usage()), scales)
        split = _round(exact)
        total = sum(split.values())
        if total <= 0:
            continue
        # Units are used up only now: a promotion left out (budget, cap, rounding, nothing left on its
        # lines) must leave them to the buy-get promotions after it.
        for index, units in used.items():
            state.consumed[index] += units
        if promotion.target == "shipping":
            state.shipping_taken += total
            target = AdjustmentTarget.SHIPPING
            line_amounts: tuple[tuple[int, Money], ...] = ()
        else:
            for index, amount in split.items():
                state.taken[index] += amount
            target = AdjustmentTarget.ORDER if promotion.target == "order" else AdjustmentTarget.ITEM
            line_amounts = tuple(
                (index, Money(split[index], currency))
                for index in sorted(split, key=cart.position.__getitem__)
                if split[index] > 0
            )
        funder, funders = _funding(promotion, Money(total, currency), merchant_id)
        adjustments.append(
            Adjustment(
                promotion_id=promotion.id,
                target=target,
                amount=Money(total, currency),
                reason=explain(promotion),
                funder=funder,
                line_amounts=line_amounts,
                coupon=unlocked.get(promotion.id),
                campaign=promotion.campaign,
                funders=funders,
            )
        )
    return adjustments


def _value_on(promotion: PromotionConfig, applicable: Fraction) -> Fraction:
    """A percentage of ``applicable``; callers handle fixed values themselves."""
    return applicable * promotion.basis_points / 10_000


def _each_amounts(
    promotion: PromotionConfig, lines: Sequence[Line], state: _State, scales: Mapping[int, Fraction]
) -> dict[int, Fraction]:
    """Per line: at most ``max_quantity`` units' worth, and never more than what is left on the
    line.
    """
    amounts: dict[int, Fraction] = {}
    for line in lines:
        if not _targets(promotion, line):
            continue
        remaining = line.subtotal - state.taken[line.index]
        if remaining <= 0:
            continue
        units = line.quantity if promotion.max_quantity is None else min(line.quantity, promotion.max_quantity)
        applicable = Fraction(min(remaining, line.unit_price.amount * units))
        if promotion.value_type == "percentage":
            amount = _value_on(promotion, applicable)
        else:
            amount = min(promotion.fixed.amount * units * scales[line.index], applicable)
        if amount > 0:
            amounts[line.index] = amount
    return amounts


def _once_amounts(
    promotion: PromotionConfig, lines: Sequence[Line], state: _State, scales: Mapping[int, Fraction]
) -> dict[int, Fraction]:
    """``max_quantity`` units in all across the matching lines, the cheapest units first.

    Ties between equally cheap lines go by the engine's line order (see _Cart), never the cart's. A line
    with nothing left to discount gives no units, so the units go on to the next cheapest.
    """
    assert promotion.max_quantity is not None
    units_left = promotion.max_quantity
    amounts: dict[int, Fraction] = {}
    # sorted() is stable: lines equally cheap keep the engine's order.
    for line in sorted((line for line in lines if _targets(promotion, line)), key=lambda line: line.unit_price.amount):
        if units_left == 0:
            break
        remaining = line.subtotal - state.taken[line.index]
        if remaining <= 0:
            continue
        units = min(line.quantity, units_left)
        units_left -= units
        applicable = Fraction(min(remaining, line.unit_price.amount * units))
        if promotion.value_type == "percentage":
            amount = _value_on(promotion, applicable)
        else:
            amount = min(promotion.fixed.amount * units * scales[line.index], applicable)
        if amount > 0:
            amounts[line.index] = amount
    return amounts


def _across_amounts(
    promotion: PromotionConfig, lines: Sequence[Line], state: _State, scales: Mapping[int, Fraction]
) -> dict[int, Fraction]:
    """Spread over the matching lines in proportion to what is left on each (after earlier
    discounts).
    """
    left: dict[int, int] = {}
    for line in lines:
        if not _targets(promotion, line):
            continue
        units = line.quantity if promotion.max_quantity is None else min(line.quantity, promotion.max_quantity)
        amount = line.unit_price.amount * units - state.taken[line.index]
        if amount > 0:
            left[line.index] = amount
    base = sum(left.values())
    if base <= 0:
        return {}
    if promotion.value_type == "percentage":
        return {index: _value_on(promotion, Fraction(amount)) for index, amount in left.items()}
    # The value is spread in the promotion's own terms (net or gross), in proportion to what is left on
    # each line in those terms, and each share is turned back into the line's price terms.
    value = promotion.fixed.amount
    base_own = sum((Fraction(amount) / scales[index] for index, amount in left.items()), Fraction(0))
    return {index: min(value * Fraction(amount) / base_own, Fraction(amount)) for index, amount in left.items()}


def _shipping_amount(promotion: PromotionConfig, remaining: int, scale: Fraction) -> Fraction:
    if remaining <= 0:
        return Fraction(0)
    if promotion.value_type == "percentage":
        return _value_on(promotion, Fraction(remaining))
    return min(promotion.fixed.amount * scale, Fraction(remaining))


def _dearest_first(line: Line) -> int:
    return -line.unit_price.amount


def _buyget_amounts(
    promotion: PromotionConfig, lines: Sequence[Line], state: _State, scales: Mapping[int, Fraction]
) -> tuple[dict[int, Fraction], dict[int, int]]:
    """Buy X get Y: the exact discount per get line, and the units the sets would use per line.

    As many whole sets as the units left allow (up to ``max_quantity`` discounted units), counted
    before any unit is chosen, so which lines come first cannot decide whether a set is made. The
    bought units are the dearest buy units, except those the get side needs; the discounted units are
    the dearest get units left. Reads ``state`` only: the caller uses the units up if it keeps the
    promotion.
    """
    assert promotion.buy_quantity is not None
    assert promotion.get_quantity is not None
    buy_quantity, get_quantity = promotion.buy_quantity, promotion.get_quantity
    buy_skus, buy_categories = promotion.buy_skus, promotion.buy_categories
    get_skus, get_categories = promotion.get_skus, promotion.get_categories
    buyable: list[Line] = []
    gettable: list[Line] = []
    shared: set[int] = set()
    left: dict[int, int] = {}
    buy_only = get_only = both = 0
    for line in lines:
        units = line.quantity - state.consumed[line.index]
        if units <= 0:
            continue
        reaches = _reaches(promotion, line)
        buys = reaches and _matches(buy_skus, buy_categories, line)
        gets = reaches and _matches(get_skus, get_categories, line)
        if buys:
            buyable.append(line)
        if gets:
            gettable.append(line)
        if buys and gets:
            shared.add(line.index)
            both += units
        elif buys:
            buy_only += units
        elif gets:
            get_only += units
        else:
            continue
        left[line.index] = units
    max_units = promotion.max_quantity if promotion.max_quantity is not None else get_quantity
    # A unit serves one side only, and a unit both sides match can go to either: k sets fit when each
    # side has enough units and both together do.
    sets = min(
        max_units // get_quantity,
        (buy_only + both) // buy_quantity,
        (get_only + both) // get_quantity,
        (buy_only + both + get_only) // (buy_quantity + get_quantity),
    )
    if sets <= 0:
        return {}, {}
    used: dict[int, int] = {}
    # Units both sides match go to the buy side only as far as the get side can spare them.
    spare = both - max(0, sets * get_quantity - get_only)
    wanted = sets * buy_quantity
    for line in sorted(buyable, key=_dearest_first):
        take = min(left[line.index], wanted)
        if line.index in shared:
            take = min(take, spare)
            spare -= take
        if take > 0:
            left[line.index] -= take
            used[line.index] = take
            wanted -= take
            if wanted == 0:
                break
    discounted: dict[int, int] = {}
    wanted = sets * get_quantity
    for line in sorted(gettable, key=_dearest_first):
        take = min(left[line.index], wanted)
        if take > 0:
            discounted[line.index] = take
            used[line.index] = used.get(line.index, 0) + take
            wanted -= take
            if wanted == 0:
                break
    amounts: dict[int, Fraction] = {}
    for line in lines:
        units = discounted.get(line.index, 0)
        if units == 0:
            continue
        worth = Fraction(line.unit_price.amount * units)
        if promotion.value_type == "percentage":
            amount = _value_on(promotion, worth)
        else:
            amount = min(promotion.fixed.amount * units * scales[line.index], worth)
        # Never below zero, whatever earlier adjustments took.
        amount = min(amount, Fraction(max(line.subtotal - state.taken[line.index], 0)))
        if amount > 0:
            amounts[line.index] = amount
    return amounts, used


def _limit(
    promotion: PromotionConfig, exact: dict[int, Fraction], usage: Usage, scales: Mapping[int, Fraction]
) -> dict[int, Fraction]:
    """Apply the per-order cap (line by line in the cart's line order, see _Cart; in the promotion's own
    terms, net or gross), then the campaign budget (money actually given)."""
    if promotion.cap is not None:
        cap_left = Fraction(promotion.cap.amount)
        capped: dict[int, Fraction] = {}
        for index, amount in exact.items():
            capped[index] = min(amount, cap_left * scales[index])
            cap_left -= capped[index] / scales[index]
        exact = capped
    if promotion.budget is not None:
        # All or nothing: a budget that cannot cover the whole discount gives none of it (the peer's
        # "campaign budget exceeded"), so a redemption never fails on a budget the cart fit in.
        budget_left = promotion.budget.amount - usage.budget_spent
        if _round_half_up(sum(exact.values(), Fraction(0))) > budget_left:
            return {}
    return {index: amount for index, amount in exact.items() if amount > 0}


def _round_half_up(value: Fraction) -> int:
    # In integers: value - floor = (n - floor * d) / d, and that is at least a half when twice its
    # numerator reaches d (d > 0). Fraction arithmetic here cost more than the rest of the rounding.
    numerator, denominator = value.numerator, value.denominator
    floor = numerator // denominator
    return floor + 1 if 2 * (numerator - floor * denominator) >= denominator else floor


def _round(exact: Mapping[int, Fraction]) -> dict[int, int]:
    """Round the promotion's exact total once (half up), then split it by largest remainder.

    Each line gets the floor of its exact share, and the minor units left go one each to the lines
    with the largest fractions (ties in the order of ``exact``, which is the engine's line order, not
    the cart's), so no line gets more than the ceiling of its share: which never exceeds what was
    left on it.
    """
    if len(exact) == 1:  # one line takes the whole rounded total (most promotions touch one line)
        ((index, amount),) = exact.items()
        return {index: _round_half_up(amount)}
    total = _round_half_up(sum(exact.values(), Fraction(0)))
    floors = {index: amount.numerator // amount.denominator for index, amount in exact.items()}
    left = total - sum(floors.values())
    position = {index: place for place, index in enumerate(exact)}
    order = sorted(exact, key=lambda index: (-(exact[index] - floors[index]), position[index]))
    for index in order[: max(left, 0)]:
        floors[index] += 1
    return floors


# --- explanations ---------------------------------------------------------------------------------


def explain(promotion: PromotionConfig) -> str:
    """A sentence a shopper can read: ``"10% off coffee, per item, max 2 units"``."""
    value = f"{promotion.basis_points / 100:g}%" if promotion.value_type == "percentage" else promotion.fixed.format()
    if promotion.type == "buyget":
        buy = _scope(promotion.buy_skus, promotion.buy_categories, "items")
        get = _scope(promotion.get_skus, promotion.get_categories, "items")
        text = f"buy {promotion.buy_quantity} {buy}, get {promotion.get_quantity} {get} {value} off"
        if promotion.value_type == "percentage" and promotion.basis_points == 10_000:
            text = f"buy {promotion.buy_quantity} {buy}, get {promotion.get_quantity} {get} free"
        text += _reach_text(promotion)
        if promotion.max_quantity is not None:
            text += f", max {promotion.max_quantity} units"
    elif promotion.target == "shipping":
        text = f"{value} off shipping{_reach_text(promotion)}"
    elif promotion.target == "order":
        text = f"{value} off the order{_reach_text(promotion)}"
    else:
        text = f"{value} off {_scope(promotion.skus, promotion.categories, 'items')}{_reach_text(promotion)}"
        if promotion.allocation == "once":
            plural = "s" if promotion.max_quantity != 1 else ""
            text += f", on {promotion.max_quantity} unit{plural} in all, cheapest first"
        elif promotion.allocation == "each":
            text += ", per item"
            if promotion.max_quantity is not None:
                plural = "s" if promotion.max_quantity > 1 else ""
                text += f", max {promotion.max_quantity} unit{plural}"
        else:
            text += ", spread across items"
    if promotion.min_subtotal is not None:
        text += f", when spending {promotion.min_subtotal.format()}"
    if promotion.min_cart_subtotal is not None:
        text += f", on orders of {promotion.min_cart_subtotal.format()} or more"
    if promotion.amounts != "as_priced":
        text += f" ({promotion.amounts.replace('_', '-')})"
    if promotion.cap is not None:
        text += f", up to {promotion.cap.format()}"
    return f"{promotion.description}: {text}" if promotion.description else text


def _reach_text(promotion: PromotionConfig) -> str:
    text = ""
    if promotion.fulfilments:
        text += f" for {' or '.join(kind.replace('_', ' ') for kind in promotion.fulfilments)}"
    if promotion.delivery_options:
        text += f" sent by {' or '.join(promotion.delivery_options)}"
    if promotion.regions:
        text += f" to {' or '.join(promotion.regions)}"
    return text


def _scope(skus: Sequence[str], categories: Sequence[str], default: str) -> str:
    names = [*categories, *skus]
    return " and ".join(names) if names else default
