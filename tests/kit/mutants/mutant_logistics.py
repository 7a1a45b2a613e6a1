"""Broken logistics blocks the logistics contract must fail: each a subclass of the logistics block with
one realistic bug (the class docstring names it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from retailblocks_logistics import Logistics
from retailblocks_logistics import tables as t
from retailblocks_logistics.contract_config import contract_config
from retailblocks_logistics.engine import CANCELLABLE

from retailblocks import FlowContext, hookimpl
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
from retailblocks.testing.contracts.logistics import LogisticsContract


class _LogisticsContract(LogisticsContract):
    block_class = Logistics

    def config_for(self, currency: str) -> Mapping[str, Any]:
        return contract_config(currency)


# -- the broken blocks ----------------------------------------------------------------------------------


class YuanQuotingLogistics(Logistics):
    @hookimpl
    def logistics_quote(
        self, ctx: FlowContext, lines: Sequence[PricedLine], fulfilment: Fulfilment, order_value: Money
    ) -> Sequence[ShippingQuote]:
        quotes = super().logistics_quote(ctx, lines, fulfilment, order_value)
        # The bug: the rate table's amounts are labelled with the currency the block was first written for.
        return [attrs.evolve(quote, amount=Money(quote.amount.amount, "CNY")) for quote in quotes]


class SubtractingLogistics(Logistics):
    @hookimpl
    def logistics_quote(
        self, ctx: FlowContext, lines: Sequence[PricedLine], fulfilment: Fulfilment, order_value: Money
    ) -> Sequence[ShippingQuote]:
        quotes = super().logistics_quote(ctx, lines, fulfilment, order_value)
        # The bug: "10 off shipping over 100" subtracted from every price, with no floor at zero.
        if order_value.amount < 10_000:
            return quotes
        return [attrs.evolve(quote, amount=quote.amount - Money(1_000, quote.amount.currency)) for quote in quotes]


class DoubleBookingLogistics(Logistics):
    @hookimpl
    def logistics_arrange(
        self, ctx: FlowContext, order: Order, quote: ShippingQuote, parcels: Sequence[Parcel], idempotency_key: str
    ) -> Shipment:
        # The bug: the booking key gets a fresh suffix per attempt, so a retried step books again.
        attempt = f"{idempotency_key}:{ctx.ids.new_id('attempt')}"
        return super().logistics_arrange(ctx, order, quote, parcels, attempt)


class CrashingTrackingLogistics(Logistics):
    @hookimpl
    def logistics_track(self, ctx: FlowContext, shipment_id: str, status: ShipmentStatus, note: str) -> Shipment:
        # The bug: the shipment is assumed to exist; an unknown id crashes with the database's own error.
        ctx.db.execute(t.SHIPMENT_STATE, {"shipment_id": shipment_id, "block": self.id}).one()
        return self.track(ctx, shipment_id, status, note)


class TrustingCancelLogistics(Logistics):
    @hookimpl
    def logistics_cancel(self, ctx: FlowContext, shipment: Shipment, idempotency_key: str) -> bool:
        if shipment.status not in CANCELLABLE:
            return super().logistics_cancel(ctx, shipment, idempotency_key)
        # The bug: the caller's copy of the shipment is trusted; one that left meanwhile is cancelled too.
        ctx.db.execute(
            t.shipments.update()
            .where(t.shipments.c.id == shipment.id)
            .values(status=ShipmentStatus.CANCELLED.value, updated_at=ctx.clock.now())
        )
        return True


# -- the mutants --------------------------------------------------------------------------------------


class MutantQuoteInWrongCurrency(_LogisticsContract):
    """Quotes are labelled CNY whatever the merchant's currency."""

    block_class = YuanQuotingLogistics


class MutantNegativeQuote(_LogisticsContract):
    """A shipping discount over an order value is subtracted with no floor: cheap quotes go below zero."""

    block_class = SubtractingLogistics


class MutantShipmentTwiceOnOneKey(_LogisticsContract):
    """Arranging under one key books a new shipment on every retry."""

    block_class = DoubleBookingLogistics


class MutantUnknownShipmentCrashes(_LogisticsContract):
    """Tracking a shipment the block never made crashes instead of being refused."""

    block_class = CrashingTrackingLogistics


class MutantCancelAfterItLeft(_LogisticsContract):
    """Cancelling trusts the caller's copy of the shipment: one that has left is cancelled anyway."""

    block_class = TrustingCancelLogistics
