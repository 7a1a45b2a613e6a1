"""A typed face over the plugin manager: one method per hook the core calls, routed as assembly decided.

pluggy cannot type ``pm.hook.<name>(...)`` calls, so the core calls these methods instead and mypy checks
every argument. One-provider hooks go straight to the routed block's implementation (no fan-out, so
dispatch costs one Python call); every-block hooks visit the implementers in manifest order.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import pluggy
import sqlalchemy as sa

from retailblocks.context import AuditFinding, Event, FlowContext
from retailblocks.errors import AssemblyError, BlockFailure, InvalidValue, RetailBlocksError
from retailblocks.hookspecs.blocks import Block
from retailblocks.hookspecs.membership import PartnerPointsMovement
from retailblocks.model import (
    Fulfilment,
    Identity,
    Member,
    Money,
    Order,
    Parcel,
    PaymentAuthorization,
    PaymentBalance,
    PaymentCapture,
    PaymentRefund,
    PointsMovement,
    PriceAdjustment,
    PricedLine,
    Reservation,
    ReservedStock,
    Shipment,
    ShipmentStatus,
    ShippingQuote,
    StockDemand,
    StockLevel,
)

Impl = tuple[Callable[..., Any], tuple[str, ...]]

#: Ids under which the core registers blocks of its own that take part in dispatch (event listeners).
CORE_DEFAULT_BLOCKS = frozenset({"fusion"})


@attrs.frozen
class Routing:
    """Which block answers which call; printed by ``blocks assemble`` and written to the lock file."""

    #: one-provider hook → block id
    providers: Mapping[str, str]
    #: payment method → block id
    payment_methods: Mapping[str, str]
    #: every-block hook → block ids in manifest order
    contributors: Mapping[str, tuple[str, ...]]


class HookRelay:
    def __init__(self, pm: pluggy.PluginManager, blocks: Mapping[str, Block], routing: Routing, *, trace: bool):
        self.routing = routing
        self._trace = trace
        self._impls: dict[str, dict[str, Impl]] = {}
        for hook_name in dir(pm.hook):
            if hook_name.startswith("_"):
                continue
            caller = getattr(pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                block_id = pm.get_name(impl.plugin)
                # The core's own default blocks (the fusion timeline) answer beside the manifest's.
                if block_id is None or (block_id not in blocks and block_id not in CORE_DEFAULT_BLOCKS):
                    continue
                self._impls.setdefault(hook_name, {})[block_id] = (impl.function, tuple(impl.argnames))

    # -- dispatch ---------------------------------------------------------------------------------

    def implementers(self, hook_name: str) -> tuple[str, ...]:
        ordered = self.routing.contributors.get(hook_name)
        if ordered is None:
            return tuple(self._impls.get(hook_name, {}))
        # Routing lists the manifest's blocks; the core's default listeners come after them.
        return ordered + tuple(b for b in self._impls.get(hook_name, {}) if b not in ordered)

    def provides(self, hook_name: str) -> bool:
        return hook_name in self.routing.providers

    def call(self, block_id: str, hook_name: str, ctx: FlowContext | None, **kwargs: Any) -> Any:
        try:
            function, argnames = self._impls[hook_name][block_id]
        except KeyError:
            raise AssemblyError(f"block {block_id!r} does not implement {hook_name}", block=block_id) from None
        if ctx is not None:
            kwargs["ctx"] = ctx
            outer = ctx.current_block
            ctx.current_block = block_id
        started = time.perf_counter() if self._trace else 0.0
        try:
            return function(*[kwargs[name] for name in argnames])
        except (RetailBlocksError, sa.exc.OperationalError):
            # The database's own conditions (a lock wait that timed out, a lost connection) are the
            # environment's, not the block's: they pass through as they are, so a flow can tell them apart.
            raise
        except Exception as error:
            raise BlockFailure(block_id, hook_name, error) from error
        finally:
            if ctx is not None:
                ctx.current_block = outer
            if self._trace:
                elapsed = (time.perf_counter() - started) * 1000
                print(f"[retailblocks trace] {block_id}.{hook_name} {elapsed:.2f} ms", file=sys.stderr)

    def _one(self, hook_name: str, ctx: FlowContext | None, **kwargs: Any) -> Any:
        provider = self.routing.providers.get(hook_name)
        if provider is None:
            raise AssemblyError(f"no block in this stack answers {hook_name}")
        return self.call(provider, hook_name, ctx, **kwargs)

    def payment_block(self, method: str) -> str:
        try:
            return self.routing.payment_methods[method]
        except KeyError:
            known = ", ".join(sorted(self.routing.payment_methods)) or "none"
            raise InvalidValue(f"no payment block accepts method {method!r} (this stack accepts: {known})") from None

    # -- lifecycle --------------------------------------------------------------------------------

    def stack_event(self, block_id: str, event: Event, ctx: FlowContext) -> None:
        self.call(block_id, "stack_event", ctx, event=event)

    def stack_audit(self, ctx: FlowContext) -> list[tuple[str, AuditFinding]]:
        findings: list[tuple[str, AuditFinding]] = []
        for block_id in self.implementers("stack_audit"):
            findings.extend((block_id, finding) for finding in self.call(block_id, "stack_audit", ctx) or ())
        return findings

    def stack_maintain(self, ctx: FlowContext) -> None:
        for block_id in self.implementers("stack_maintain"):
            self.call(block_id, "stack_maintain", ctx)

    # -- inventory --------------------------------------------------------------------------------

    def inventory_locations(self, ctx: FlowContext) -> Sequence[str]:
        if not self.provides("inventory_locations"):
            return [ctx.channel.location] if ctx.channel and ctx.channel.location else []
        result: Sequence[str] = self._one("inventory_locations", ctx)
        return result

    def inventory_available(self, ctx: FlowContext, skus: Sequence[str]) -> Mapping[str, int]:
        result: Mapping[str, int] = self._one("inventory_available", ctx, skus=skus)
        return result

    def inventory_reserve(
        self,
        ctx: FlowContext,
        demands: Sequence[StockDemand],
        locations: Sequence[str],
        allow_split: bool,
        ttl: timedelta,
    ) -> Reservation:
        result: Reservation = self._one(
            "inventory_reserve", ctx, demands=demands, locations=locations, allow_split=allow_split, ttl=ttl
        )
        return result

    def inventory_commit(self, ctx: FlowContext, reservation_id: str, order_id: str) -> None:
        self._one("inventory_commit", ctx, reservation_id=reservation_id, order_id=order_id)

    def inventory_release(self, ctx: FlowContext, reservation_id: str) -> None:
        self._one("inventory_release", ctx, reservation_id=reservation_id)

    def inventory_fulfil(self, ctx: FlowContext, order_id: str, parcels: Sequence[Parcel]) -> None:
        self._one("inventory_fulfil", ctx, order_id=order_id, parcels=parcels)

    def inventory_return(self, ctx: FlowContext, order_id: str, items: Sequence[ReservedStock], key: str) -> None:
        self._one("inventory_return", ctx, order_id=order_id, items=items, key=key)

    def inventory_adjust(self, ctx: FlowContext, sku: str, location: str, delta: int, reason: str, key: str) -> int:
        result: int = self._one(
            "inventory_adjust", ctx, sku=sku, location=location, delta=delta, reason=reason, key=key
        )
        return result

    def inventory_returned(self, ctx: FlowContext, order_id: str) -> Mapping[str, int] | None:
        """None when the inventory block does not say (the hook is optional)."""
        if not self.provides("inventory_returned"):
            return None
        result: Mapping[str, int] = self._one("inventory_returned", ctx, order_id=order_id)
        return result

    def inventory_levels(self, ctx: FlowContext, skus: Sequence[str]) -> Sequence[StockLevel]:
        result: Sequence[StockLevel] = self._one("inventory_levels", ctx, skus=skus)
        return result

    # -- payment ----------------------------------------------------------------------------------

    def payment_authorize(
        self,
        ctx: FlowContext,
        method: str,
        amount: Money,
        details: Mapping[str, str],
        member_id: str | None,
        idempotency_key: str,
    ) -> PaymentAuthorization:
        result: PaymentAuthorization = self.call(
            self.payment_block(method),
            "payment_authorize",
            ctx,
            method=method,
            amount=amount,
            details=details,
            member_id=member_id,
            idempotency_key=idempotency_key,
        )
        return result

    def payment_validate(
        self, ctx: FlowContext, method: str, details: Mapping[str, str], identities: Sequence[Identity]
    ) -> None:
        """InvalidValue if ``method`` is not accepted, or its block finds ``details`` unusable (the hook is
        optional: a block without it is asked nothing)."""
        block_id = self.payment_block(method)
        if block_id not in self._impls.get("payment_validate", {}):
            return
        self.call(block_id, "payment_validate", ctx, method=method, details=details, identities=identities)

    def payment_status(self, ctx: FlowContext, method: str, idempotency_key: str) -> PaymentAuthorization | None:
        result: PaymentAuthorization | None = self.call(
            self.payment_block(method), "payment_status", ctx, method=method, idempotency_key=idempotency_key
        )
        return result

    def payment_capture(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentCapture:
        result: PaymentCapture = self.call(
            authorization.block,
            "payment_capture",
            ctx,
            authorization=authorization,
            amount=amount,
            idempotency_key=idempotency_key,
        )
        return result

    def payment_void(self, ctx: FlowContext, authorization: PaymentAuthorization, idempotency_key: str) -> None:
        self.call(
            authorization.block, "payment_void", ctx, authorization=authorization, idempotency_key=idempotency_key
        )

    def payment_refund(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentRefund:
        result: PaymentRefund = self.call(
            authorization.block,
            "payment_refund",
            ctx,
            authorization=authorization,
            amount=amount,
            idempotency_key=idempotency_key,
        )
        return result

    def payment_balance(self, ctx: FlowContext, authorization: PaymentAuthorization) -> PaymentBalance | None:
        """None when the block that holds the authorization does not say (the hook is optional)."""
        if authorization.block not in self._impls.get("payment_balance", {}):
            return None
        result: PaymentBalance | None = self.call(
            authorization.block, "payment_balance", ctx, authorization=authorization
        )
        return result

    def payment_issue(
        self, ctx: FlowContext, method: str, amount: Money, member_id: str | None, idempotency_key: str
    ) -> str:
        result: str = self.call(
            self.payment_block(method),
            "payment_issue",
            ctx,
            method=method,
            amount=amount,
            member_id=member_id,
            idempotency_key=idempotency_key,
        )
        return result

    # -- membership -------------------------------------------------------------------------------

    def membership_identify(self, ctx: FlowContext, identities: Sequence[Identity], enroll: bool) -> Member | None:
        if not self.provides("membership_identify"):
            return None
        result: Member | None = self._one("membership_identify", ctx, identities=identities, enroll=enroll)
        return result

    def membership_member(self, ctx: FlowContext, member_id: str) -> Member | None:
        if not self.provides("membership_member"):
            return None
        result: Member | None = self._one("membership_member", ctx, member_id=member_id)
        return result

    def membership_earn(
        self, ctx: FlowContext, member_id: str, order: Order, idempotency_key: str
    ) -> PointsMovement | None:
        if not self.provides("membership_earn"):
            return None
        result: PointsMovement | None = self._one(
            "membership_earn", ctx, member_id=member_id, order=order, idempotency_key=idempotency_key
        )
        return result

    def membership_reverse(
        self,
        ctx: FlowContext,
        member_id: str,
        order_id: str,
        refunded: Money,
        order_total: Money,
        idempotency_key: str,
    ) -> PointsMovement | None:
        if not self.provides("membership_reverse"):
            return None
        result: PointsMovement | None = self._one(
            "membership_reverse",
            ctx,
            member_id=member_id,
            order_id=order_id,
            refunded=refunded,
            order_total=order_total,
            idempotency_key=idempotency_key,
        )
        return result

    def membership_exchange(
        self, ctx: FlowContext, member_id: str, partner: str, points: int, idempotency_key: str
    ) -> PointsMovement | None:
        if not self.provides("membership_exchange"):
            return None
        result: PointsMovement = self._one(
            "membership_exchange",
            ctx,
            member_id=member_id,
            partner=partner,
            points=points,
            idempotency_key=idempotency_key,
        )
        return result

    def membership_order_points(self, ctx: FlowContext, order_id: str) -> int | None:
        if not self.provides("membership_order_points"):
            return None
        result: int = self._one("membership_order_points", ctx, order_id=order_id)
        return result

    def membership_adjust(
        self, ctx: FlowContext, member_id: str, points: int, reason: str, idempotency_key: str
    ) -> PointsMovement:
        result: PointsMovement = self._one(
            "membership_adjust",
            ctx,
            member_id=member_id,
            points=points,
            reason=reason,
            idempotency_key=idempotency_key,
        )
        return result

    def membership_partner_movements(
        self, ctx: FlowContext, partner: str, since: datetime, until: datetime
    ) -> list[PartnerPointsMovement]:
        if not self.provides("membership_partner_movements"):
            return []
        result: Sequence[PartnerPointsMovement] = self._one(
            "membership_partner_movements", ctx, partner=partner, since=since, until=until
        )
        return list(result or ())

    # -- logistics --------------------------------------------------------------------------------

    def logistics_quote(
        self, ctx: FlowContext, lines: Sequence[PricedLine], fulfilment: Fulfilment, order_value: Money
    ) -> list[ShippingQuote]:
        quotes: list[ShippingQuote] = []
        for block_id in self.implementers("logistics_quote"):
            quotes.extend(
                self.call(block_id, "logistics_quote", ctx, lines=lines, fulfilment=fulfilment, order_value=order_value)
                or ()
            )
        return quotes

    def logistics_rank_locations(
        self, ctx: FlowContext, fulfilment: Fulfilment, candidates: Sequence[str]
    ) -> Sequence[str]:
        if not self.provides("logistics_rank_locations"):
            return candidates
        ranked: Sequence[str] | None = self._one(
            "logistics_rank_locations", ctx, fulfilment=fulfilment, candidates=candidates
        )
        return candidates if ranked is None else ranked

    def logistics_arrange(
        self, ctx: FlowContext, order: Order, quote: ShippingQuote, parcels: Sequence[Parcel], idempotency_key: str
    ) -> Shipment:
        result: Shipment = self.call(
            quote.block,
            "logistics_arrange",
            ctx,
            order=order,
            quote=quote,
            parcels=parcels,
            idempotency_key=idempotency_key,
        )
        return result

    def logistics_cancel(self, ctx: FlowContext, shipment: Shipment, idempotency_key: str) -> bool:
        return bool(
            self.call(shipment.block, "logistics_cancel", ctx, shipment=shipment, idempotency_key=idempotency_key)
        )

    def logistics_track(
        self, ctx: FlowContext, block_id: str, shipment_id: str, status: ShipmentStatus, note: str
    ) -> Shipment:
        result: Shipment = self.call(
            block_id, "logistics_track", ctx, shipment_id=shipment_id, status=status, note=note
        )
        return result

    # -- marketing --------------------------------------------------------------------------------

    def marketing_adjustments(
        self,
        ctx: FlowContext,
        lines: Sequence[PricedLine],
        shipping: Money,
        member: Member | None,
        coupons: Sequence[str],
    ) -> list[PriceAdjustment]:
        adjustments: list[PriceAdjustment] = []
        for block_id in self.implementers("marketing_adjustments"):
            made = self.call(
                block_id,
                "marketing_adjustments",
                ctx,
                lines=lines,
                shipping=shipping,
                member=member,
                coupons=coupons,
                existing=tuple(adjustments),
            )
            adjustments.extend(made or ())
        return adjustments

    def marketing_redeem(
        self, ctx: FlowContext, order_id: str, member_id: str | None, adjustments: Sequence[PriceAdjustment]
    ) -> None:
        for block_id in self.implementers("marketing_redeem"):
            own = [a for a in adjustments if a.block == block_id]
            if own:
                self.call(block_id, "marketing_redeem", ctx, order_id=order_id, member_id=member_id, adjustments=own)

    def marketing_release(self, ctx: FlowContext, order_id: str) -> None:
        for block_id in self.implementers("marketing_release"):
            self.call(block_id, "marketing_release", ctx, order_id=order_id)

    def marketing_issue_coupons(
        self, ctx: FlowContext, promotion_id: str, member_ids: Sequence[str], idempotency_key: str
    ) -> dict[str, str]:
        """The codes of the block that owns ``promotion_id``; InvalidValue when no block knows it."""
        for block_id in self.implementers("marketing_issue_coupons"):
            issued: Mapping[str, str] | None = self.call(
                block_id,
                "marketing_issue_coupons",
                ctx,
                promotion_id=promotion_id,
                member_ids=member_ids,
                idempotency_key=idempotency_key,
            )
            if issued is not None:
                return dict(issued)
        raise InvalidValue(
            f"no marketing block of this stack issues coupons for promotion {promotion_id!r}; check the "
            "promotion id against the marketing block's configuration"
        )
