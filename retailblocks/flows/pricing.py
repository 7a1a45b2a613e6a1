"""Pricing a cart: list prices from the catalog, promotions from marketing, shipping from logistics.

The evaluation order is fixed and documented so every adjustment can be explained: item and order
promotions first (on list prices), then shipping is quoted on the value after those discounts (so a
free-shipping threshold sees what the shopper pays), then shipping promotions on the chosen quote.
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
    FulfilmentKind,
    Member,
    Money,
    PriceAdjustment,
    PricedLine,
    Product,
    ShippingQuote,
)


@attrs.frozen
class PricedCart:
    lines: tuple[PricedLine, ...]
    adjustments: tuple[PriceAdjustment, ...]
    quote: ShippingQuote | None
    subtotal: Money
    discount: Money
    shipping: Money
    total: Money


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
    shipping = shipping_list - shipping_discount
    return PricedCart(priced, tuple(adjustments), quote, subtotal, discount, shipping, subtotal - discount + shipping)


def choose_quote(
    ctx: FlowContext, hooks: Hooks, cart: Cart, lines: Sequence[PricedLine], order_value: Money
) -> ShippingQuote | None:
    fulfilment = cart.fulfilment
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
