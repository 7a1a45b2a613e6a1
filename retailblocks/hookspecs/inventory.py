"""The inventory contract: where stock is, setting it aside for a checkout, and moving it out and back.

One block answers these hooks. Stock is never read and written back in Python: a reservation is a
conditional update (or a row lock) in the database, so channels, threads and processes selling the same
last unit never oversell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from retailblocks.hookspecs._markers import Dispatch, contract

if TYPE_CHECKING:
    from retailblocks.context import FlowContext
    from retailblocks.model import Parcel, Reservation, ReservedStock, StockDemand, StockLevel


@contract(Dispatch.ONE_PROVIDER)
def inventory_locations(ctx: FlowContext) -> Sequence[str]:
    """The stock locations ``ctx.channel`` may sell from, in the block's order of preference."""


@contract(Dispatch.ONE_PROVIDER, required=True)
def inventory_available(ctx: FlowContext, skus: Sequence[str]) -> Mapping[str, int]:
    """Units of each SKU that ``ctx.channel`` can sell now (on hand − reserved − allocated − safety stock,
    over the channel's locations), for each of ``skus``. SKUs the block does not know map to 0."""


@contract(Dispatch.ONE_PROVIDER, required=True)
def inventory_reserve(
    ctx: FlowContext,
    demands: Sequence[StockDemand],
    locations: Sequence[str],
    allow_split: bool,
    ttl: timedelta,
) -> Reservation:
    """Set stock aside for one checkout until ``ttl`` from now.

    ``demands`` has one entry per SKU (the core sums the cart's lines first). ``locations`` are the
    candidate locations in the order to prefer them; with ``allow_split`` False every SKU must come from
    one location among them. All or nothing: on a shortfall raise
    :class:`~retailblocks.errors.OutOfStock` naming the SKU, and reserve nothing. Take rows in a fixed
    order (by SKU, then location) so concurrent multi-SKU checkouts cannot deadlock.
    """


@contract(Dispatch.ONE_PROVIDER, required=True)
def inventory_commit(ctx: FlowContext, reservation_id: str, order_id: str) -> None:
    """The order is placed: turn the reservation into an allocation to ``order_id``. Idempotent."""


@contract(Dispatch.ONE_PROVIDER, required=True)
def inventory_release(ctx: FlowContext, reservation_id: str) -> None:
    """Compensation for :func:`inventory_reserve`: give the reserved stock back. Idempotent; releasing a
    committed or already released reservation does nothing."""


@contract(Dispatch.ONE_PROVIDER, required=True)
def inventory_fulfil(ctx: FlowContext, order_id: str, parcels: Sequence[Parcel]) -> None:
    """Stock leaves: the allocated units in ``parcels`` leave on-hand at their locations. Idempotent."""


@contract(Dispatch.ONE_PROVIDER, required=True)
def inventory_return(ctx: FlowContext, order_id: str, items: Sequence[ReservedStock], key: str) -> None:
    """Units of an order come back (a cancelled shipment, a return) and are on hand again at their
    locations. Allocated units not yet fulfilled are de-allocated instead. Idempotent per ``key``.
    ``items`` say which units come back, from which location."""


@contract(Dispatch.ONE_PROVIDER)
def inventory_adjust(ctx: FlowContext, sku: str, location: str, delta: int, reason: str, key: str) -> int:
    """An operator's stock movement: goods received (positive), damaged or lost (negative), a count's
    correction. Returns the new on-hand quantity. Never makes on hand fall below what is reserved and
    allocated; raises :class:`~retailblocks.errors.InvalidValue` instead. Idempotent per ``key``.

    ``delta`` units of ``sku`` move at ``location``; ``reason`` is the operator's words, kept with the
    stock movement."""


@contract(Dispatch.ONE_PROVIDER)
def inventory_levels(ctx: FlowContext, skus: Sequence[str]) -> Sequence[StockLevel]:
    """Stock of ``skus`` (all SKUs when empty) at every location: on hand, reserved, allocated."""


@contract(Dispatch.ONE_PROVIDER)
def inventory_returned(ctx: FlowContext, order_id: str) -> Mapping[str, int]:
    """Units of ``order_id`` that came back through :func:`inventory_return`, by SKU (an empty mapping
    when none did), as the block's own movements say. Read-only.

    Optional, but ``blocks audit`` checks with it that every unit a refund or cancel asked to restock
    came back, and no more.

    .. versionadded:: 1.1
    """
