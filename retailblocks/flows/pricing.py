"""Pricing a cart: list prices from the catalog, promotions from marketing, shipping from logistics.

The evaluation order is fixed and documented so every adjustment can be explained: item and order
promotions first (on list prices), then shipping is quoted on the value after those discounts (so a
free-shipping threshold sees what the shopper pays), then shipping promotions on the chosen quote.

A cart whose lines leave in several ways (a pick-up line beside delivered ones, two shipping options) is
priced in groups, one per way: item and order promotions see every line (each with its own fulfilment);
each delivery group is quoted on its own lines and their value after those discounts; a shipping
promotion is asked of each group alone — its lines and its quote — so it takes off the shipping of the
group it targets. The order's shipping is the sum of the groups'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from retailblocks.assembly.hooks import Hooks
from retailblocks.context import FlowContext
from retailblocks.errors import InvalidValue, NotDeliverable, PromotionRejected, UnknownSku
from retailblocks.flows.capabilities import StackedAdjustments, price_adjustments, shipping_quotes
from retailblocks.model import (
    AdjustmentTarget,
    Cart,
    Fulfilment,
    FulfilmentKind,
    Member,
    Money,
    PriceAdjustment,
    PricedLine,
    Product,
    ShippingQuote,
)


@attrs.frozen
class PricedGroup:
    """The lines of a cart that leave one way, with the quote that delivers them (None for a pick-up or
    a carry-out no logistics block quotes) and what their shipping costs after shipping promotions."""

    fulfilment: Fulfilment
    #: The cart's line indexes.
    lines: tuple[int, ...]
    quote: ShippingQuote | None
    shipping: Money
    shipping_discount: Money


@attrs.frozen
class PricedCart:
    lines: tuple[PricedLine, ...]
    adjustments: tuple[PriceAdjustment, ...]
    quote: ShippingQuote | None
    subtotal: Money
    discount: Money
    shipping: Money
    total: Money
    #: One group per way the lines leave, for a cart whose lines leave in several ways (``quote`` is then
    #: None: each group has its own); empty for a cart that leaves one way.
    groups: tuple[PricedGroup, ...] = ()


def fulfilment_groups(cart: Cart) -> list[tuple[Fulfilment, tuple[int, ...]]]:
    """The ways ``cart``'s lines leave, each with its line indexes, in the order of their first line: lines
    with the same fulfilment (kind, store or shipping option, address) leave together, and a line without
    its own leaves the cart's way."""
    ways: dict[Fulfilment, list[int]] = {}
    for index, line in enumerate(cart.lines):
        ways.setdefault(line.fulfilment or cart.fulfilment, []).append(index)
    return [(fulfilment, tuple(indexes)) for fulfilment, indexes in ways.items()]


def one_way(cart: Cart) -> Cart:
    """``cart`` itself when its lines all leave its way; when they all leave one other way (every line
    names the same store, say), the cart leaving that way. A cart whose lines leave in several ways is
    returned as it is."""
    if all(line.fulfilment is None or line.fulfilment == cart.fulfilment for line in cart.lines):
        return cart
    ways = fulfilment_groups(cart)
    if len(ways) > 1:
        return cart
    return attrs.evolve(
        cart, fulfilment=ways[0][0], lines=tuple(attrs.evolve(line, fulfilment=None) for line in cart.lines)
    )


def price_lines(cart: Cart, catalog: Mapping[str, Product], currency: str) -> list[PricedLine]:
    lines: list[PricedLine] = []
    for index, line in enumerate(cart.lines):
        product = catalog.get(line.sku)
        if product is None:
            raise UnknownSku(f"cart line {index}: unknown SKU {line.sku!r} (not in the manifest's catalog)")
        if not product.sold_in(cart.channel):
            raise InvalidValue(f"cart line {index}: SKU {line.sku!r} is not sold in channel {cart.channel!r}")
        price = product.price_in(cart.channel)
        if price.currency != currency:
            raise InvalidValue(f"SKU {line.sku!r} is priced in {price.currency}, the merchant sells in {currency}")
        lines.append(
            PricedLine(
                index,
                line.sku,
                line.quantity,
                price,
                product.category,
                product.weight_grams,
                fulfilment=line.fulfilment or cart.fulfilment,
            )
        )
    return lines


def price_cart(
    ctx: FlowContext,
    hooks: Hooks,
    cart: Cart,
    lines: Sequence[PricedLine],
    member: Member | None,
    currency: str,
) -> PricedCart:
    zero = Money.zero(currency)
    if any(line.fulfilment is not None for line in cart.lines):
        ways = fulfilment_groups(cart)
        if len(ways) > 1:
            return _price_groups(ctx, hooks, cart, lines, member, ways, zero)
        cart = one_way(cart)
    subtotal = sum((line.subtotal for line in lines), zero)
    # The quote depends on the order's value after item and order discounts (free shipping over an
    # amount), and shipping promotions depend on the quoted amount; item and order discounts do not
    # depend on shipping. So: quote the undiscounted value first and price with that shipping. Only
    # when the discounts change the quote is the cart priced again, with the quote's new amount.
    try:
        quote, quoted = choose_quote(ctx, hooks, cart, lines, subtotal), True
    except (NotDeliverable, InvalidValue):
        quote, quoted = None, False  # perhaps offered once discounted: quoted again below
    priced_with = _shipping_of(quote, zero)
    stacked = price_adjustments(hooks, ctx, lines, priced_with, member, cart.coupons)
    goods_discount = _discount(stacked.kept, (AdjustmentTarget.ITEM, AdjustmentTarget.ORDER), zero)
    if goods_discount or not quoted:
        quote = choose_quote(ctx, hooks, cart, lines, subtotal - goods_discount)
        if _shipping_of(quote, zero) != priced_with:
            stacked = price_adjustments(hooks, ctx, lines, _shipping_of(quote, zero), member, cart.coupons)
            goods_discount = _discount(stacked.kept, (AdjustmentTarget.ITEM, AdjustmentTarget.ORDER), zero)
    adjustments = stacked.kept
    _check_coupons(cart.coupons, stacked)
    shipping_list = quote.amount if quote is not None else zero
    shipping_discount = min(_discount(adjustments, (AdjustmentTarget.SHIPPING,), zero), shipping_list)
    priced, discount = _discounted(lines, adjustments, goods_discount, zero)
    shipping = shipping_list - shipping_discount
    return PricedCart(priced, tuple(adjustments), quote, subtotal, discount, shipping, subtotal - discount + shipping)


def _price_groups(
    ctx: FlowContext,
    hooks: Hooks,
    cart: Cart,
    lines: Sequence[PricedLine],
    member: Member | None,
    ways: Sequence[tuple[Fulfilment, tuple[int, ...]]],
    zero: Money,
) -> PricedCart:
    """A cart whose lines leave in several ways, priced as the module's docstring says."""
    subtotal = sum((line.subtotal for line in lines), zero)
    goods = (AdjustmentTarget.ITEM, AdjustmentTarget.ORDER)

    def quote_each(per_line: Sequence[Money], strict: bool) -> list[ShippingQuote | None]:
        quotes: list[ShippingQuote | None] = []
        for fulfilment, indexes in ways:
            value = sum((lines[i].subtotal - per_line[i] for i in indexes), zero)
            try:
                quotes.append(choose_quote(ctx, hooks, cart, [lines[i] for i in indexes], value, fulfilment))
            except (NotDeliverable, InvalidValue):
                if strict:
                    raise
                quotes.append(None)  # perhaps offered once discounted: quoted again below
        return quotes

    def line_discounts(adjustments: Sequence[PriceAdjustment]) -> list[Money]:
        per_line = [zero] * len(lines)
        for adjustment in adjustments:
            if adjustment.target in goods:
                for index, share in adjustment.line_amounts:
                    per_line[index] = per_line[index] + share
        return per_line

    def shipping_sum(quotes: Sequence[ShippingQuote | None]) -> Money:
        return sum((_shipping_of(quote, zero) for quote in quotes), zero)

    # As for one way: quoted on the undiscounted value, priced, quoted again once the goods are discounted.
    quotes = quote_each([zero] * len(lines), strict=False)
    priced_with = shipping_sum(quotes)
    stacked = price_adjustments(hooks, ctx, lines, priced_with, member, cart.coupons)
    quotes = quote_each(line_discounts(stacked.kept), strict=True)
    if shipping_sum(quotes) != priced_with:
        stacked = price_adjustments(hooks, ctx, lines, shipping_sum(quotes), member, cart.coupons)
    # The goods' adjustments of the whole cart; each group's shipping adjustments asked of it alone.
    kept = [adjustment for adjustment in stacked.kept if adjustment.target in goods]
    set_aside = dict(stacked.set_aside)
    groups: list[PricedGroup] = []
    for (fulfilment, indexes), quote in zip(ways, quotes, strict=True):
        listed = _shipping_of(quote, zero)
        taken = zero
        if listed.amount:
            alone = price_adjustments(hooks, ctx, [lines[i] for i in indexes], listed, member, cart.coupons)
            ships = [adjustment for adjustment in alone.kept if adjustment.target is AdjustmentTarget.SHIPPING]
            kept.extend(ships)
            for code, why in alone.set_aside.items():
                set_aside.setdefault(code, why)
            taken = min(_discount(ships, (AdjustmentTarget.SHIPPING,), zero), listed)
        groups.append(PricedGroup(fulfilment, indexes, quote, listed - taken, taken))
    _check_coupons(cart.coupons, StackedAdjustments(tuple(kept), set_aside))
    priced, discount = _discounted(lines, kept, _discount(kept, goods, zero), zero)
    shipping = sum((group.shipping for group in groups), zero)
    return PricedCart(
        priced, tuple(kept), None, subtotal, discount, shipping, subtotal - discount + shipping, tuple(groups)
    )


def _discounted(
    lines: Sequence[PricedLine], adjustments: Sequence[PriceAdjustment], goods_discount: Money, zero: Money
) -> tuple[tuple[PricedLine, ...], Money]:
    """``lines`` with their share of the item and order ``adjustments``, checked against the contract."""
    per_line = [zero] * len(lines)
    for adjustment in adjustments:
        if adjustment.target is AdjustmentTarget.SHIPPING:
            continue
        for index, share in adjustment.line_amounts:
            per_line[index] = per_line[index] + share
    priced = tuple(attrs.evolve(line, discount=per_line[i]) for i, line in enumerate(lines))
    for line in priced:
        if line.total.amount < 0:
            raise InvalidValue(f"promotions discount line {line.index} ({line.sku}) below zero")
    discount = sum(per_line, zero)
    if discount != goods_discount:
        raise InvalidValue(
            f"promotions allocated {discount} to lines but announced {goods_discount}; a marketing block "
            "broke the contract (line_amounts must sum to amount)"
        )
    for adjustment in adjustments:
        if adjustment.funders and sum(part.amount for _, part in adjustment.funders) != adjustment.amount.amount:
            raise InvalidValue(
                f"promotion {adjustment.promotion_id!r} split {adjustment.amount} among its funders in parts "
                "that do not add up; a marketing block broke the contract (funders must sum to amount)"
            )
    return priced, discount


def choose_quote(
    ctx: FlowContext,
    hooks: Hooks,
    cart: Cart,
    lines: Sequence[PricedLine],
    order_value: Money,
    fulfilment: Fulfilment | None = None,
) -> ShippingQuote | None:
    """The quote ``lines`` leave by: the option the shopper picked, else the cheapest. ``fulfilment`` is the
    way these lines leave (a group of a cart whose lines leave in several ways), by default the cart's."""
    fulfilment = fulfilment or cart.fulfilment
    quotes = shipping_quotes(hooks, ctx, lines, fulfilment, order_value)
    if not quotes:
        if fulfilment.kind is FulfilmentKind.CARRY_OUT:
            return None  # walking out with the goods needs no logistics block
        raise NotDeliverable(f"no logistics block can serve a {fulfilment.kind.value} for this cart")
    if fulfilment.option_id is not None:
        for quote in quotes:
            if quote.option_id == fulfilment.option_id:
                return quote
        offered = ", ".join(sorted(q.option_id for q in quotes))
        raise InvalidValue(
            f"shipping option {fulfilment.option_id!r} is not offered for this cart (offered: {offered})"
        )
    return min(quotes, key=lambda q: (q.amount.amount, q.max_days, q.option_id))


def _shipping_of(quote: ShippingQuote | None, zero: Money) -> Money:
    return quote.amount if quote is not None and quote.amount else zero


def _discount(adjustments: Sequence[PriceAdjustment], targets: tuple[AdjustmentTarget, ...], zero: Money) -> Money:
    return sum((a.amount for a in adjustments if a.target in targets), zero)


def _check_coupons(coupons: Sequence[str], stacked: StackedAdjustments) -> None:
    used = {a.coupon.casefold() for a in stacked.kept if a.coupon}
    for code in coupons:
        if code.casefold() in used:
            continue
        why = stacked.set_aside.get(code.casefold())
        if why is not None:
            raise PromotionRejected(f"coupon {code!r} does not combine with the promotions applied ({why})")
        raise PromotionRejected(f"coupon {code!r} is not valid for this cart")
