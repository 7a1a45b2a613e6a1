"""Orders a marketplace took and collected, imported as orders already paid by the marketplace.

The import is a checkout: the same reservation of the brand's own stock, the same saga, the same recovery.
Its payment is the ``marketplace`` method (see :mod:`retailblocks.connectors.block`), and its idempotency key
is drawn from the marketplace's order number, so however often a connector sends one order, and whatever
request key it sends it with, the brand records one order — and an order number reused for different
contents is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from retailblocks.connectors.block import MARKETPLACE_METHOD, MAX_ORDER_NUMBER_LENGTH, ORDER_NUMBER
from retailblocks.connectors.tables import marketplace_payments
from retailblocks.errors import InvalidValue
from retailblocks.flows.quote import quote
from retailblocks.model import (
    Cart,
    CartLine,
    ChannelType,
    Fulfilment,
    FulfilmentKind,
    Identity,
    Money,
    Order,
    PaymentRequest,
)
from retailblocks.model.limits import check_text

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime
    from retailblocks.flows.api import OrderFlows


@attrs.frozen
class MarketplaceOrder:
    """An order as the marketplace reports it. ``collected`` is what the marketplace says the buyer paid:
    when given, it must equal what the channel's prices make of the order, or nothing is imported."""

    channel: str
    order_number: str
    lines: Sequence[CartLine]
    fulfilment: Fulfilment = attrs.field(factory=lambda: Fulfilment(FulfilmentKind.DELIVERY))
    identities: Sequence[Identity] = ()
    collected: Money | None = None


def checkout_key(channel: str, order_number: str) -> str:
    """The checkout key of one marketplace order: the same order number always finds the same order."""
    return f"marketplace:{channel}:{order_number}"


def import_order(stack: Runtime, flows: OrderFlows, order: MarketplaceOrder) -> Order:
    """Record ``order`` as an order of its marketplace channel, paid by the marketplace; once per order number."""
    channel = stack.channel(order.channel)
    if channel.type is not ChannelType.MARKETPLACE:
        raise InvalidValue(
            f"channel {channel.id!r} is a {channel.type} channel; only a marketplace's orders are imported"
        )
    if channel.settles_with is None:
        raise InvalidValue(
            f"channel {channel.id!r} names no partner that collects its orders' money: give it "
            "'settles_with: <partner id>' in the manifest"
        )
    check_text(order.order_number, "a marketplace order number", max_length=MAX_ORDER_NUMBER_LENGTH, allow_empty=False)
    cart = Cart(
        channel=channel.id,
        lines=tuple(order.lines),
        payments=(PaymentRequest(MARKETPLACE_METHOD, details={ORDER_NUMBER: order.order_number}),),
        identities=tuple(order.identities),
        fulfilment=order.fulfilment,
        attribution=f"marketplace:{order.order_number}",
    )
    if order.collected is not None and not _already_imported(stack, channel.id, order.order_number):
        priced = quote(stack, cart)
        if order.collected != priced.total:
            raise InvalidValue(
                f"marketplace order {order.order_number!r} collected {order.collected} but channel {channel.id!r} "
                f"prices it at {priced.total} (goods {priced.subtotal}, discounts {priced.discount}, shipping "
                f"{priced.shipping}); nothing was imported — bring the channel's prices in line and send it again"
            )
    return flows.checkout(cart, key=checkout_key(channel.id, order.order_number))


def _already_imported(stack: Runtime, channel: str, order_number: str) -> bool:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        found = connection.execute(
            sa.select(marketplace_payments.c.id).where(
                marketplace_payments.c.channel == channel, marketplace_payments.c.order_number == order_number
            )
        ).first()
        connection.rollback()
    return found is not None
