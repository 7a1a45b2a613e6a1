"""A quote: a cart priced exactly as checkout would price it, with nothing reserved or recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retailblocks.errors import InvalidValue
from retailblocks.flows.pricing import PricedCart, price_cart, price_lines
from retailblocks.hookspecs import membership
from retailblocks.model import Cart

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime


def quote(stack: Runtime, cart: Cart) -> PricedCart:
    """Price ``cart`` in its channel: list prices, every promotion with its reason and funder, the chosen
    shipping option. A shopper's identities find their member (none is created) so member prices and
    coupons apply; a coupon that does not apply is refused as checkout would refuse it."""
    if not isinstance(cart, Cart):
        raise InvalidValue(f"a quote expects a Cart (got {type(cart).__name__})")
    stack.channel(cart.channel)
    with stack.context(cart.channel, flow="quote", read_only=True) as ctx:
        member = (
            stack.hooks.maybe(membership.membership_identify, ctx, cart.identities, False) if cart.identities else None
        )
        lines = price_lines(cart, stack.catalog, stack.currency)
        return price_cart(ctx, stack.hooks, cart, lines, member, stack.currency)
