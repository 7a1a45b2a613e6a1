"""The logistics contract: what delivery costs, where parcels leave from, and shipments.

Every logistics block contributes quotes; the shopper's choice (or the cheapest) is arranged by the block
that quoted it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from retailblocks.hookspecs._markers import Dispatch, contract

if TYPE_CHECKING:
    from retailblocks.context import FlowContext
    from retailblocks.model import (
        Fulfilment,
        Money,
        Order,
        Parcel,
        PricedLine,
        Shipment,
        ShipmentStatus,
        ShippingQuote,
    )


@contract(Dispatch.EVERY_BLOCK, required=True)
def logistics_quote(
    ctx: FlowContext, lines: Sequence[PricedLine], fulfilment: Fulfilment, order_value: Money
) -> Sequence[ShippingQuote]:
    """Offer ways to deliver ``lines``. ``order_value`` is after item and order discounts, for free-shipping
    thresholds. Return an empty sequence when the block cannot serve the ``fulfilment``. A quote changes
    nothing: pricing one cart may ask twice (before and after its discounts).

    .. versionchanged:: 1.6 A cart whose lines leave in several ways is quoted once per way: ``lines`` are
       that group's, ``fulfilment`` its own and ``order_value`` the value of its lines.
    """


@contract(Dispatch.ONE_PROVIDER)
def logistics_rank_locations(
    ctx: FlowContext, fulfilment: Fulfilment, candidates: Sequence[str]
) -> Sequence[str] | None:
    """Order ``candidates`` (stock locations) from best to worst for this ``fulfilment`` (nearest first for a
    delivery). Locations the block cannot ship from are left out. None leaves the order unchanged."""


@contract(Dispatch.ROUTED, required=True, route="quote")
def logistics_arrange(
    ctx: FlowContext,
    order: Order,
    quote: ShippingQuote,
    parcels: Sequence[Parcel],
    idempotency_key: str,
) -> Shipment:
    """Book the delivery ``quote`` promised for ``order``, one of ``parcels`` per location. Idempotent per key.

    .. versionchanged:: 1.6 An order whose lines leave in several ways (``order.groups``) is booked once per
       group, with that group's quote and parcels and a key of its own.
    """


@contract(Dispatch.ROUTED, required=True, route="shipment")
def logistics_cancel(ctx: FlowContext, shipment: Shipment, idempotency_key: str) -> bool:
    """Cancel a shipment that has not left. Return False if it already left (then goods come back as a
    return)."""


@contract(Dispatch.ROUTED)
def logistics_track(ctx: FlowContext, shipment_id: str, status: ShipmentStatus, note: str) -> Shipment:
    """Record a tracking update of ``shipment_id`` from the carrier or the store: its new ``status``
    and a ``note`` for people; emit ``shipment.<status>``."""
