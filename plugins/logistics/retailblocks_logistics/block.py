"""The ``logistics`` block: quotes from zones and rate tables, nearest-location ranking, shipments.

Shipments are booked through a :class:`~retailblocks_logistics.carriers.CarrierApi` (the sandbox
carrier unless a real one is installed), kept in ``logistics_*`` tables, and moved through their
statuses by tracking updates, each kept in the history and announced as ``shipment.<status>``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import sqlalchemy as sa

from retailblocks import Block, Capability, FlowContext, StackView, hookimpl
from retailblocks.clock import as_utc
from retailblocks.errors import CurrencyMismatch, IdempotencyConflict, InvalidValue, UnknownObject
from retailblocks.hookspecs.lifecycle import unknown
from retailblocks.model import (
    Channel,
    Fulfilment,
    FulfilmentKind,
    Merchant,
    Money,
    Order,
    Parcel,
    PricedLine,
    Shipment,
    ShipmentStatus,
    ShippingQuote,
)
from retailblocks.storage import Migration, insert_if_absent, pseudonymise, together
from retailblocks_logistics import engine
from retailblocks_logistics import tables as t
from retailblocks_logistics.carriers import BookingRequest, CarrierApi, SandboxCarrier
from retailblocks_logistics.config import (
    CARRY_OUT,
    CLICK_AND_COLLECT,
    Carrier,
    LogisticsConfig,
    ShippingOption,
    money_fields,
)
from retailblocks_logistics.tables import MIGRATIONS, metadata

if TYPE_CHECKING:
    pass

#: The carrier id of shipments the store hands over itself (click-and-collect, carry-out).
STORE_CARRIER = "store"

_CANCELLABLE = sorted(status.value for status in engine.CANCELLABLE)
_CANCEL = t.cancel_shipment(_CANCELLABLE)


@attrs.frozen
class ShipmentRecord:
    """A shipment with what the operator sees beside it: its order, charges and times."""

    shipment: Shipment
    order_id: str
    amount: Money
    extra_charge: Money
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None = None


@attrs.frozen
class TrackingEntry:
    """One line of a shipment's history."""

    status: ShipmentStatus
    note: str
    at: datetime


def _merge_parcels(given: Sequence[Parcel]) -> tuple[Parcel, ...]:
    """One parcel per location, in first-seen order, with quantities of the same SKU added."""
    by_location: dict[str, dict[str, int]] = {}
    for parcel in given:
        lines = by_location.setdefault(parcel.location, {})
        for sku, quantity in parcel.lines:
            if quantity <= 0:
                raise InvalidValue(f"parcel at {parcel.location!r}: quantity of {sku!r} must be > 0 (got {quantity})")
            lines[sku] = lines.get(sku, 0) + quantity
    return tuple(Parcel(location=location, lines=tuple(lines.items())) for location, lines in by_location.items())


def _parcels_payload(items: Sequence[Parcel]) -> list[dict[str, Any]]:
    return [{"location": p.location, "lines": [[sku, qty] for sku, qty in p.lines]} for p in items]


class Logistics(Block):
    """Zones, rates, carriers, click-and-collect, ship-from-store and split shipments."""

    name: ClassVar[str] = "logistics"
    # Its permissions, shown by `blocks plugins` and checked on every statement in tests: its own tables,
    # and no table of the core.
    owns_tables: ClassVar[tuple[str, ...]] = (
        "logistics_parcels",
        "logistics_shipments",
        "logistics_tracking",
    )
    reads_core_tables: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOGISTICS})
    core_api: ClassVar[str] = "1.8"  # storage.together
    Config: ClassVar[type[Any]] = LogisticsConfig
    description: ClassVar[str] = (
        "Zones, weight and order-value rates, free-shipping thresholds, click-and-collect, "
        "ship-from-store with nearest-location ranking, and split shipments."
    )

    def __init__(self, config: LogisticsConfig, *, block_id: str | None = None):
        super().__init__(config, block_id=block_id)
        self.settings: LogisticsConfig = config
        self._options: dict[str, tuple[Carrier, ShippingOption]] = {
            option.id: (carrier, option) for carrier in config.carriers for option in carrier.options
        }
        self._apis: dict[str, CarrierApi] = {}
        self._sandbox: SandboxCarrier | None = None
        self._checked_currencies: set[str] = set()
        self._lock = threading.Lock()

    # -- carriers ----------------------------------------------------------------------------------

    def use_carrier_api(self, carrier_id: str, api: CarrierApi) -> None:
        """Book ``carrier_id``'s shipments through ``api`` instead of the sandbox."""
        if not any(carrier.id == carrier_id for carrier in self.settings.carriers):
            known = ", ".join(c.id for c in self.settings.carriers) or "none"
            raise InvalidValue(f"no carrier {carrier_id!r} is configured (carriers: {known})")
        with self._lock:
            self._apis[carrier_id] = api

    def _api_for(self, carrier_id: str, ctx: FlowContext) -> CarrierApi:
        with self._lock:
            api = self._apis.get(carrier_id)
            if api is not None:
                return api
            if self._sandbox is None:
                self._sandbox = SandboxCarrier(ctx.ids)
            return self._sandbox

    # -- configuration checks ----------------------------------------------------------------------

    def check_currency(self, currency: str) -> None:
        """Raise InvalidValue naming the first configured amount not in ``currency``."""
        if currency in self._checked_currencies:
            return
        for path, money in money_fields(self.settings):
            if money.currency != currency:
                raise InvalidValue(
                    f"block {self.id!r}: config {path} is in {money.currency} ({money}), but the "
                    f"merchant's currency is {currency}; write amounts as e.g. '12.00 {currency}'"
                )
        self._checked_currencies.add(currency)

    @hookimpl
    def stack_erase_member(self, ctx: FlowContext, member_id: str, replacements: Mapping[str, str]) -> None:
        """Shipments keep the delivery address they were sent to: its name, phone and street become tokens."""
        pseudonymise(ctx.db, metadata.sorted_tables, replacements)

    @hookimpl
    def stack_check(
        self, merchant: Merchant, channels: Sequence[Channel], names: Mapping[str, frozenset[str]]
    ) -> Sequence[str]:
        """Every configured amount in another currency than the merchant's, and every location that the
        manifest does not declare (a pickup at it would only ever be told the order is not deliverable)."""
        currency = merchant.currency
        problems = [
            f"{path}: {money} is in {money.currency}, but the merchant's currency is {currency}; "
            f"write amounts as e.g. '12.00 {currency}'"
            for path, money in money_fields(self.settings)
            if money.currency != currency
        ]
        known = names["location"]
        for index, location in enumerate(self.settings.locations):
            if location.id not in known:
                problems.append(unknown(f"locations[{index}].id", "location", location.id, known))
        for index, pickup in enumerate(self.settings.pickup_locations):
            if pickup not in known:
                problems.append(unknown(f"pickup_locations[{index}]", "location", pickup, known))
        return problems

    @hookimpl
    def stack_startup(self, stack: StackView) -> None:
        # Fail at start-up rather than at the first quote when amounts are in the wrong currency.
        self.check_currency(stack.merchant.currency)

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    # -- quotes and routing ------------------------------------------------------------------------

    @hookimpl
    def logistics_quote(
        self,
        ctx: FlowContext,
        lines: Sequence[PricedLine],
        fulfilment: Fulfilment,
        order_value: Money,
    ) -> Sequence[ShippingQuote]:
        currency = ctx.merchant.currency
        self.check_currency(currency)
        if order_value.currency != currency:
            raise CurrencyMismatch(f"order value {order_value} is not in the merchant's currency {currency}")
        zero = Money.zero(currency)
        if fulfilment.kind is FulfilmentKind.PICKUP:
            location = fulfilment.pickup_location
            if location is None or location not in self.settings.pickup_locations:
                return []
            hours = self.settings.pickup_ready_in.total_seconds() / 3600
            return [
                ShippingQuote(
                    block=self.id,
                    option_id=CLICK_AND_COLLECT,
                    carrier=STORE_CARRIER,
                    amount=zero,
                    from_locations=(location,),
                    description=f"Click and collect at {location}, ready in {hours:g} h",
                )
            ]
        if fulfilment.kind is FulfilmentKind.CARRY_OUT:
            here = ctx.channel.location if ctx.channel is not None else None
            return [
                ShippingQuote(
                    block=self.id,
                    option_id=CARRY_OUT,
                    carrier=STORE_CARRIER,
                    amount=zero,
                    from_locations=(here,) if here else (),
                    description="Carry out",
                )
            ]
        return self._delivery_quotes(lines, fulfilment, order_value)

    def _delivery_quotes(
        self, lines: Sequence[PricedLine], fulfilment: Fulfilment, order_value: Money
    ) -> list[ShippingQuote]:
        if fulfilment.address is None:
            return []
        zone = engine.zone_of(fulfilment.address, self.settings.zones)
        if zone is None:
            return []
        weight = sum(line.weight_grams * line.quantity for line in lines)
        quotes: list[ShippingQuote] = []
        for carrier in self.settings.carriers:
            for option in carrier.options:
                if zone.id not in option.zones:
                    continue
                price = engine.shipping_price(option, weight, order_value)
                if price is None:
                    continue  # heavier than the option's heaviest tier
                days = (
                    f"{option.min_days} days"
                    if option.min_days == option.max_days
                    else f"{option.min_days}-{option.max_days} days"
                )
                quotes.append(
                    ShippingQuote(
                        block=self.id,
                        option_id=option.id,
                        carrier=carrier.id,
                        amount=price,
                        min_days=option.min_days,
                        max_days=option.max_days,
                        description=f"{carrier.name} {option.name}, {days}",
                    )
                )
        return quotes

    @hookimpl
    def logistics_rank_locations(self, fulfilment: Fulfilment, candidates: Sequence[str]) -> Sequence[str] | None:
        if fulfilment.kind is FulfilmentKind.PICKUP:
            location = fulfilment.pickup_location
            if location is None or location not in self.settings.pickup_locations:
                return None  # not one of ours: another block (or the core's order) decides
            return [location] if location in candidates else []
        if fulfilment.kind is not FulfilmentKind.DELIVERY or not self.settings.locations:
            return None
        address = fulfilment.address
        return engine.rank_by_distance(
            candidates,
            self.settings.locations,
            address.latitude if address is not None else None,
            address.longitude if address is not None else None,
        )

    # -- shipments ---------------------------------------------------------------------------------

    @hookimpl
    def logistics_arrange(
        self,
        ctx: FlowContext,
        order: Order,
        quote: ShippingQuote,
        parcels: Sequence[Parcel],
        idempotency_key: str,
    ) -> Shipment:
        if quote.block != self.id:
            raise InvalidValue(f"block {self.id!r} cannot arrange a quote made by block {quote.block!r}")
        currency = ctx.merchant.currency
        self.check_currency(currency)
        if not idempotency_key:
            raise InvalidValue("arranging a shipment needs a non-empty idempotency key")
        merged = _merge_parcels(parcels)
        now = ctx.clock.now()
        ready_at: datetime | None = None
        tracking_number = ""
        extra = Money.zero(currency)
        if quote.option_id == CLICK_AND_COLLECT:
            status, carrier_id = ShipmentStatus.READY_FOR_PICKUP, STORE_CARRIER
            ready_at = now + self.settings.pickup_ready_in
        elif quote.option_id == CARRY_OUT:
            status, carrier_id = ShipmentStatus.COLLECTED, STORE_CARRIER
        else:
            carrier, option = self._option(quote.option_id)
            if not merged:
                raise InvalidValue(f"order {order.id!r}: a delivery needs at least one parcel (got none)")
            status, carrier_id = ShipmentStatus.PENDING, carrier.id
            extra = engine.extra_parcel_charge(option, len(merged), currency)
            # The carrier first: no database transaction is open while it answers.
            booking = self._api_for(carrier.id, ctx).book(
                BookingRequest(
                    idempotency_key=idempotency_key,
                    carrier=carrier.id,
                    option=option.id,
                    order_id=order.id,
                    parcels=merged,
                    address=order.fulfilment.address if order.fulfilment is not None else None,
                )
            )
            tracking_number = booking.tracking_number
        shipment = Shipment(
            id=ctx.ids.new_id("shp"),
            block=self.id,
            option_id=quote.option_id,
            carrier=carrier_id,
            status=status,
            parcels=merged,
            tracking_number=tracking_number,
        )
        inserted = insert_if_absent(
            ctx.db,
            t.shipments,
            {
                "id": shipment.id,
                "block": self.id,
                "order_id": order.id,
                "option": quote.option_id,
                "carrier": carrier_id,
                "status": status.value,
                "tracking": tracking_number,
                "key": idempotency_key,
                "currency": currency,
                "amount": quote.amount.amount,
                "extra_charge": extra.amount,
                "ready_at": ready_at,
                "created_at": now,
                "updated_at": now,
            },
        )
        if not inserted:
            existing = self._record_by_key(ctx, idempotency_key)
            if existing.order_id != order.id or existing.shipment.option_id != quote.option_id:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} already booked shipment "
                    f"{existing.shipment.id!r} "
                    f"for order {existing.order_id!r} ({existing.shipment.option_id}); "
                    f"got order {order.id!r} ({quote.option_id})"
                )
            return existing.shipment
        # Nothing is read back from the parcels and the first history entry: one round trip for both.
        with together(ctx.db):
            if merged:
                t.INSERT_PARCEL.execute_many(
                    ctx.db,
                    [
                        {
                            "shipment_id": shipment.id,
                            "seq": seq,
                            "location": p.location,
                            "lines": [[sku, qty] for sku, qty in p.lines],
                        }
                        for seq, p in enumerate(merged)
                    ],
                )
            self._append_history(ctx, shipment.id, status, "booked", now)
        payload: dict[str, Any] = {
            "shipment_id": shipment.id,
            "order_id": order.id,
            "block": self.id,
            "option": quote.option_id,
            "carrier": carrier_id,
            "status": status.value,
            "tracking_number": tracking_number,
            "parcels": _parcels_payload(merged),
            "amount": quote.amount.amount,
            "extra_charge": extra.amount,
            "currency": currency,
        }
        if ready_at is not None:
            payload["ready_at"] = ready_at.isoformat()
        ctx.record("shipment.created", payload, order_id=order.id)
        if status is not ShipmentStatus.PENDING:
            ctx.record(f"shipment.{status.value}", payload, order_id=order.id)
        return shipment

    def _option(self, option_id: str) -> tuple[Carrier, ShippingOption]:
        found = self._options.get(option_id)
        if found is None:
            known = ", ".join([*self._options, CLICK_AND_COLLECT, CARRY_OUT])
            raise InvalidValue(f"block {self.id!r} has no shipping option {option_id!r} (options: {known})")
        return found

    @hookimpl
    def logistics_cancel(self, ctx: FlowContext, shipment: Shipment, idempotency_key: str) -> bool:
        if shipment.block != self.id:
            raise InvalidValue(f"block {self.id!r} cannot cancel shipment {shipment.id!r} booked by {shipment.block!r}")
        if shipment.status not in engine.CANCELLABLE and shipment.status is not ShipmentStatus.CANCELLED:
            return False
        if (
            shipment.status is ShipmentStatus.PENDING
            and shipment.carrier != STORE_CARRIER
            and shipment.tracking_number
            # The carrier first, before any database work; it is the judge of whether parcels left.
            and not self._api_for(shipment.carrier, ctx).cancel(shipment.tracking_number, idempotency_key)
        ):
            return False
        now = ctx.clock.now()
        # Conditional: a tracking update that moved it on meanwhile wins, and we answer False.
        cancelled = _CANCEL.execute(
            ctx.db,
            {f"from_{n}": status for n, status in enumerate(_CANCELLABLE)},
            shipment_id=shipment.id,
            block=self.id,
            to_status=ShipmentStatus.CANCELLED.value,
            now=now,
        )
        row = ctx.db.execute(t.SHIPMENT_STATE, {"shipment_id": shipment.id, "block": self.id}).one_or_none()
        if row is None:
            raise UnknownObject(f"block {self.id!r} has no shipment {shipment.id!r}")
        if cancelled != 1:
            # A replayed cancellation finds it cancelled already: still a success.
            return bool(row.status == ShipmentStatus.CANCELLED.value)
        order_id = row.order_id
        self._append_history(ctx, shipment.id, ShipmentStatus.CANCELLED, "cancelled before it left", now)
        ctx.record(
            "shipment.cancelled",
            {
                "shipment_id": shipment.id,
                "order_id": order_id,
                "block": self.id,
                "from": shipment.status.value,
                "status": ShipmentStatus.CANCELLED.value,
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
            },
            order_id=order_id,
        )
        return True

    @hookimpl
    def logistics_track(self, ctx: FlowContext, shipment_id: str, status: ShipmentStatus, note: str) -> Shipment:
        return self.track(ctx, shipment_id, status, note)

    def track(self, ctx: FlowContext, shipment_id: str, status: ShipmentStatus | str, note: str = "") -> Shipment:
        """Record a tracking update, as :func:`logistics_track` does; for operators and webhooks."""
        new = engine.parse_status(status)
        # Lock the row so two updates for one shipment apply one after the other.
        row = ctx.db.execute(t.LOCK_SHIPMENT, {"shipment_id": shipment_id, "block": self.id}).one_or_none()
        if row is None:
            raise UnknownObject(f"block {self.id!r} has no shipment {shipment_id!r}")
        current = ShipmentStatus(row.status)
        if current is new:
            # The same update delivered twice (carriers retry webhooks): nothing changes.
            return self.shipment(ctx, shipment_id)
        engine.check_transition(shipment_id, current, new)
        now = ctx.clock.now()
        updated = t.MOVE_SHIPMENT.execute(
            ctx.db, shipment_id=shipment_id, from_status=current.value, to_status=new.value, now=now
        )
        if updated != 1:  # pragma: no cover - the row lock makes this unreachable
            raise InvalidValue(f"shipment {shipment_id!r} changed while being updated; retry")
        self._append_history(ctx, shipment_id, new, note, now)
        ctx.record(
            f"shipment.{new.value}",
            {
                "shipment_id": shipment_id,
                "order_id": row.order_id,
                "block": self.id,
                "from": current.value,
                "status": new.value,
                "note": note,
                "carrier": row.carrier,
                "tracking_number": row.tracking,
            },
            order_id=row.order_id,
        )
        return self.shipment(ctx, shipment_id)

    def _append_history(
        self, ctx: FlowContext, shipment_id: str, status: ShipmentStatus, note: str, at: datetime
    ) -> None:
        t.INSERT_TRACKING.execute(ctx.db, shipment_id=shipment_id, status=status.value, note=note, at=at)

    # -- reading -----------------------------------------------------------------------------------

    def shipment(self, ctx: FlowContext, shipment_id: str) -> Shipment:
        """The shipment ``shipment_id`` as it stands; UnknownObject if this block has none."""
        return self._record(ctx, t.SHIPMENT_BY_ID, {"shipment_id": shipment_id}, shipment_id).shipment

    def record(self, ctx: FlowContext, shipment_id: str) -> ShipmentRecord:
        """The shipment with its order, charges and times."""
        return self._record(ctx, t.SHIPMENT_BY_ID, {"shipment_id": shipment_id}, shipment_id)

    def _record_by_key(self, ctx: FlowContext, key: str) -> ShipmentRecord:
        return self._record(ctx, t.SHIPMENT_BY_KEY, {"key": key}, f"with key {key!r}")

    def _record(self, ctx: FlowContext, query: sa.Select[Any], parameters: dict[str, Any], what: str) -> ShipmentRecord:
        row = ctx.db.execute(query, {**parameters, "block": self.id}).mappings().one_or_none()
        if row is None:
            raise UnknownObject(f"block {self.id!r} has no shipment {what}")
        return self._records(ctx, [row])[0]

    def shipments(
        self,
        ctx: FlowContext,
        *,
        order_id: str | None = None,
        status: ShipmentStatus | str | None = None,
        limit: int = 100,
    ) -> list[ShipmentRecord]:
        """Shipments newest first, optionally of one order or in one status."""
        if limit <= 0:
            raise InvalidValue(f"limit must be > 0 (got {limit})")
        query = sa.select(t.shipments).where(t.shipments.c.block == self.id)
        if order_id is not None:
            query = query.where(t.shipments.c.order_id == order_id)
        if status is not None:
            query = query.where(t.shipments.c.status == engine.parse_status(status).value)
        query = query.order_by(t.shipments.c.created_at.desc(), t.shipments.c.id.desc()).limit(limit)
        return self._records(ctx, list(ctx.db.execute(query).mappings()))

    def history(self, ctx: FlowContext, shipment_id: str) -> list[TrackingEntry]:
        """The shipment's tracking history, oldest first."""
        self.shipment(ctx, shipment_id)  # UnknownObject for a foreign or unknown id
        rows = ctx.db.execute(
            sa.select(t.tracking).where(t.tracking.c.shipment_id == shipment_id).order_by(t.tracking.c.id)
        ).mappings()
        return [TrackingEntry(ShipmentStatus(r["status"]), r["note"], as_utc(r["at"])) for r in rows]

    def _records(self, ctx: FlowContext, rows: Sequence[sa.RowMapping]) -> list[ShipmentRecord]:
        ids = [row["id"] for row in rows]
        by_shipment: dict[str, list[Parcel]] = {}
        if ids:
            parcel_rows = ctx.db.execute(t.PARCELS_OF, {"shipment_ids": ids}).mappings()
            for p in parcel_rows:
                by_shipment.setdefault(p["shipment_id"], []).append(
                    Parcel(location=p["location"], lines=tuple((s, int(q)) for s, q in p["lines"]))
                )
        records: list[ShipmentRecord] = []
        for row in rows:
            currency = row["currency"]
            records.append(
                ShipmentRecord(
                    shipment=Shipment(
                        id=row["id"],
                        block=row["block"],
                        option_id=row["option"],
                        carrier=row["carrier"],
                        status=ShipmentStatus(row["status"]),
                        parcels=tuple(by_shipment.get(row["id"], ())),
                        tracking_number=row["tracking"],
                    ),
                    order_id=row["order_id"],
                    amount=Money(int(row["amount"]), currency),
                    extra_charge=Money(int(row["extra_charge"]), currency),
                    created_at=as_utc(row["created_at"]),
                    updated_at=as_utc(row["updated_at"]),
                    ready_at=as_utc(row["ready_at"]) if row["ready_at"] is not None else None,
                )
            )
        return records

    # -- operator commands -------------------------------------------------------------------------
