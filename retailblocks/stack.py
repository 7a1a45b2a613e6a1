"""The stack: a manifest assembled, and the façade every face (the CLI, embedding code, tests) calls.

:func:`assemble` plans the manifest's blocks (retailblocks.assembly), prepares storage and returns a
:class:`Stack`, which implements what the flows, events and fusion need of it
(:class:`retailblocks.assembly.runtime.Runtime`) and offers the operations built from them, typed.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import attrs
import sqlalchemy as sa

from retailblocks.assembly import plan as planning
from retailblocks.assembly.discovery import BlockInfo
from retailblocks.assembly.permissions import table_guard
from retailblocks.assembly.plan import CONNECTORS_ID, FUSION_ID, Plan, prepare_storage
from retailblocks.clock import FLOW_LEASE, Clock, IdFactory, RandomIds, SystemClock
from retailblocks.connectors import listings, marketplace
from retailblocks.connectors.block import ConnectorsBlock
from retailblocks.connectors.listings import ListingUpdate
from retailblocks.connectors.marketplace import MarketplaceOrder
from retailblocks.context import Event, FlowContext
from retailblocks.errors import AssemblyError, InvalidValue, UnknownChannel, suggestion
from retailblocks.events.dispatcher import (
    MAX_ATTEMPTS,
    DeadLetter,
    DeliveryFailure,
    DispatchReport,
    dispatch,
    read_dead_letters,
    read_events,
    read_failures,
    redeliver,
)
from retailblocks.events.webhooks import WebhookReport, deliver_webhooks, subscribe_webhooks
from retailblocks.flows.api import FlowState, OrderFlows, RecoveryReport
from retailblocks.flows.availability import Availability, availability
from retailblocks.flows.carts import Carts
from retailblocks.flows.pricing import PricedCart
from retailblocks.flows.quote import quote
from retailblocks.fusion import consent, members, privacy
from retailblocks.fusion.aggregates import AggregateReport
from retailblocks.fusion.block import FusionBlock
from retailblocks.fusion.campaigns import CampaignReport, CampaignRun
from retailblocks.fusion.ingest import IngestReport
from retailblocks.fusion.memberships import Explanation, RebuildReport
from retailblocks.fusion.profile import MemberProfile
from retailblocks.fusion.settlement import Settlement
from retailblocks.fusion.timeline import TimelineEntry
from retailblocks.hookspecs import Capability, membership, payment
from retailblocks.hookspecs.blocks import Block
from retailblocks.hookspecs.marketing import MemberCoupon
from retailblocks.model import (
    Cart,
    Channel,
    Identity,
    Member,
    Merchant,
    Money,
    Order,
    PointsMovement,
    Product,
    StockLevel,
)
from retailblocks.storage import UnitOfWork
from retailblocks.storage.permissions import TableGuard, permissions_enforced
from retailblocks.storage.unit_of_work import IdleConnection


class StockMovement(Protocol):
    """One row of an inventory block's movement ledger: a signed change of on hand, and why."""

    @property
    def id(self) -> int: ...
    @property
    def sku(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def delta(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def order_id(self) -> str | None: ...
    @property
    def at(self) -> datetime: ...


@runtime_checkable
class StockOperator(Protocol):
    """What an inventory block offers operators beyond its hooks (the sql-inventory block does): goods
    received, corrections and counts, each idempotent on ``key``, and its movement ledger."""

    def levels(self, ctx: FlowContext, skus: Sequence[str] = ()) -> Sequence[StockLevel]: ...
    def receive(
        self, ctx: FlowContext, sku: str, location: str, quantity: int, *, reason: str = "", key: str | None = None
    ) -> int: ...
    def adjust(
        self, ctx: FlowContext, sku: str, location: str, delta: int, *, reason: str, key: str | None = None
    ) -> int: ...
    def count(
        self, ctx: FlowContext, sku: str, location: str, counted: int, *, reason: str = "", key: str | None = None
    ) -> int: ...
    def movements(
        self, ctx: FlowContext, skus: Sequence[str] = (), *, limit: int | None = None
    ) -> Sequence[StockMovement]: ...


@runtime_checkable
class MergeKeeper(Protocol):
    """What a membership block offers operators about merges (the loyalty block does): the merges a
    member took part in, and undoing one (idempotent)."""

    def merges(self, ctx: FlowContext, member_id: str) -> Sequence[Mapping[str, object]]: ...
    def unmerge(self, ctx: FlowContext, merge_id: str, reason: str = "") -> Mapping[str, object]: ...


@attrs.frozen
class MergeRecord:
    """Two members found to be one person: ``absorbed`` moved into ``survivor``, until the merge is undone."""

    id: str
    survivor: str
    absorbed: str
    at: datetime
    reason: str
    identities: tuple[str, ...]
    points_moved: int
    spend_moved: Money
    reverted_at: datetime | None
    revert_reason: str | None


def _merge_record(row: Mapping[str, Any], currency: str) -> MergeRecord:
    from retailblocks.clock import as_utc

    reverted = row.get("reverted_at")
    return MergeRecord(
        id=str(row["id"]),
        survivor=str(row["survivor"]),
        absorbed=str(row["absorbed"]),
        at=as_utc(row["at"]),
        reason=str(row.get("reason") or ""),
        identities=tuple(f"{kind}:{value}" for kind, value in row.get("identities") or ()),
        points_moved=int(row.get("points_moved") or 0),
        spend_moved=Money(int(row.get("spend_moved") or 0), currency),
        reverted_at=as_utc(reverted) if reverted is not None else None,
        revert_reason=row.get("revert_reason"),
    )


@runtime_checkable
class BalanceKeeper(Protocol):
    """A payment block that can say what a stored-value account holds (the stored-value block can): a
    gift card by number, a wallet by id, or a member's wallet by member id."""

    def balance(self, ctx: FlowContext, code_or_member: str, currency: str | None = None) -> Money: ...


@attrs.frozen
class StoredValueIssue:
    """Value put on a gift card or a wallet: which account (``reference``), how much, and what it holds now."""

    method: str
    reference: str
    member_id: str | None
    amount: Money
    balance: Money


@attrs.frozen
class LockStatus:
    """Whether the manifest was assembled (has its lock) and what changed in it since."""

    locked: bool
    changes: tuple[str, ...]


@attrs.frozen
class StockChange:
    """What one stock operation did: on hand of ``sku`` at ``location`` moved by ``delta`` to ``on_hand``."""

    sku: str
    location: str
    delta: int
    on_hand: int


@attrs.frozen
class Redelivery:
    """Dead letters given another attempt, and what the dispatch that followed did."""

    rearmed: int
    dispatched: DispatchReport


def plan(
    manifest_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
) -> Plan:
    """The manifest's blocks resolved, configured, registered and routed, beside the core's own; nothing
    is written (what ``blocks assemble --check`` runs)."""
    core_blocks = [FusionBlock(None, block_id=FUSION_ID), ConnectorsBlock(None, block_id=CONNECTORS_ID)]
    return planning.plan(manifest_path, environ=environ, installed=installed, core_blocks=core_blocks)


def assemble(
    manifest_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    ids: IdFactory | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
    lease_clock: Clock | None = None,
    require_lock: bool = False,
    engine: sa.Engine | None = None,
) -> Stack:
    """Assemble the manifest into a running stack: validate everything, then prepare storage.

    ``engine`` puts the stack's storage somewhere the manifest does not say (a platform gives each merchant
    a schema or a file of its own, see retailblocks.platform): it is migrated and used instead of the
    manifest's ``database``, and left open when the stack closes (its owner may share its pool).

    ``require_lock`` is how operator commands open a stack: a manifest that was never assembled (it has no
    lock, see lockfile) is refused before any storage is prepared, and what changed since it was
    assembled is left in :attr:`Stack.lock_changes`. Without it (tests, embedding, simulations on a copy)
    storage is prepared as needed.

    ``clock`` is the business clock (what orders and events are stamped with; a simulation moves it);
    ``lease_clock`` is what flows' leases are measured on, the wall clock unless given: leases coordinate
    processes, which share only the wall clock. Assembling recovers nothing: flows a crash left half-way
    are finished where an operator asks for it (``blocks recover``, :meth:`Stack.recover`) and at server
    start, each of which reports what it did.
    """
    the_plan = plan(manifest_path, environ=environ, installed=installed)
    changes: list[str] = []
    if require_lock:
        from retailblocks.assembly.lockfile import check_assembled

        changes = check_assembled(the_plan, manifest_path)
    owns_engine = engine is None
    engine = prepare_storage(the_plan, engine)
    stack = Stack(
        the_plan, engine, clock or SystemClock(), ids or RandomIds(), lease_clock=lease_clock, owns_engine=owns_engine
    )
    stack.lock_changes = tuple(changes)
    subscribe_webhooks(stack)
    the_plan.plugin_manager.hook.stack_startup(stack=stack)
    return stack


class Stack:
    """A manifest assembled: configured blocks registered with one plugin manager, plus storage.

    The order flows are reached through :meth:`checkout`, :meth:`cancel`, :meth:`refund` and the readers
    :meth:`order` and :meth:`orders`; operators' housekeeping through :meth:`recover` and
    :meth:`dispatch_events`.
    """

    def __init__(
        self,
        the_plan: Plan,
        engine: sa.Engine,
        clock: Clock,
        ids: IdFactory,
        *,
        lease_clock: Clock | None = None,
        owns_engine: bool = True,
    ):
        self.plan = the_plan
        #: False when the engine was handed in (a platform's merchant): closing leaves it open.
        self.owns_engine = owns_engine
        self.manifest = the_plan.manifest
        self.engine = engine
        self.clock = clock
        #: What flows' leases are measured on (see assemble), and how long one lasts.
        self.lease_clock: Clock = lease_clock or SystemClock()
        self.lease: timedelta = FLOW_LEASE
        self._fingerprint_key: bytes | None = None
        self.ids = ids
        self.hooks = the_plan.hooks
        self.plugin_manager = the_plan.plugin_manager
        self.channels: dict[str, Channel] = {c.id: c for c in self.manifest.channels}
        self.catalog: dict[str, Product] = {p.sku: p for p in self.manifest.catalog}
        self.blocks: dict[str, Block] = {b.entry.id: b.instance for b in the_plan.blocks}
        self._flows: OrderFlows | None = None
        self._carts: Carts | None = None
        #: What changed in the manifest since its lock was written, when assembled with require_lock.
        self.lock_changes: tuple[str, ...] = ()
        self._closed = False
        #: Where a flow run leaves its SQLite connection for the next run (see keeping_connection).
        self.idle_connection = IdleConnection()
        #: The table permission guard, when permissions are enforced (tests; RETAILBLOCKS_ENFORCE_PERMISSIONS=1).
        self.table_guard: TableGuard | None = None
        if permissions_enforced():
            self.table_guard = table_guard(the_plan)
            self.table_guard.install(engine)

    # -- blocks and contexts ----------------------------------------------------------------------

    @property
    def merchant(self) -> Merchant:
        return self.manifest.merchant

    @property
    def currency(self) -> str:
        return str(self.manifest.merchant.currency)

    def block(self, block_id: str) -> Block:
        try:
            return self.blocks[block_id]
        except KeyError:
            raise AssemblyError(f"no block {block_id!r} in this stack (blocks: {', '.join(self.blocks)})") from None

    def block_providing(self, capability: str) -> Block:
        """The first block (in manifest order) that declares ``capability``."""
        for block in self.blocks.values():
            if capability in block.capabilities:
                return block
        raise AssemblyError(f"no block in this stack provides {capability}")

    def channel(self, channel_id: str) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            known = ", ".join(self.channels)
            raise UnknownChannel(f"unknown channel {channel_id!r}; this stack's channels: {known}") from None

    def new_context(
        self,
        uow: UnitOfWork,
        channel: str | None = None,
        *,
        flow: str = "operator",
        flow_id: str = "",
        key: str = "",
    ) -> FlowContext:
        return FlowContext(
            merchant=self.manifest.merchant,
            channel=self.channel(channel) if channel else None,
            clock=self.clock,
            ids=self.ids,
            uow=uow,
            flow=flow,
            flow_id=flow_id,
            idempotency_key=key,
        )

    @contextmanager
    def context(
        self,
        channel: str | None = None,
        *,
        flow: str = "operator",
        flow_id: str = "",
        key: str = "",
        read_only: bool = False,
    ) -> Iterator[FlowContext]:
        """A flow context whose unit of work commits when the block returns and rolls back if it raises."""
        with UnitOfWork(self.engine, read_only=read_only) as uow:
            yield self.new_context(uow, channel, flow=flow, flow_id=flow_id, key=key)

    # -- order flows ------------------------------------------------------------------------------

    @property
    def flows(self) -> OrderFlows:
        if self._flows is None:
            self._flows = OrderFlows(self)
        return self._flows

    def checkout(self, cart: Cart, *, key: str) -> Order:
        """Run the checkout saga for ``cart`` under idempotency ``key``; returns the order."""
        return self.flows.checkout(cart, key=key)

    @property
    def carts(self) -> Carts:
        """Server-side carts, built step by step and checked out through :meth:`checkout`'s flow (see
        :mod:`retailblocks.flows.carts`)."""
        if self._carts is None:
            self._carts = Carts(self, self.flows)
        return self._carts

    def availability(self, channel: str, skus: Sequence[str]) -> Availability:
        """What ``channel`` may sell of ``skus`` now, and the stock at each of its locations."""
        return availability(self, channel, skus)

    def sign_in(self, channel: str, identities: Sequence[Identity]) -> Member:
        """The member a shopper's identities resolve to in ``channel``, enrolled if new."""
        self.channel(channel)
        return members.sign_in(self, channel, identities)

    def member(self, member_id: str) -> Member:
        return members.member_of(self, member_id)

    def record_consent(
        self, member_id: str, purpose: str, *, granted: bool, source: str, medium: str = "any"
    ) -> consent.Consent:
        """Record the member's consent to ``purpose`` (marketing, profiling, sharing) by ``medium``, or a withdrawal."""
        return consent.record_consent(self, member_id, purpose, granted=granted, source=source, medium=medium)

    def consents(self, member_id: str) -> list[consent.Consent]:
        """Every consent the member gave or withdrew, oldest first."""
        return consent.consent_history(self, member_id)

    def export_member(self, member_id: str) -> dict[str, Any]:
        """Everything the stack holds about the member, as one JSON document (a data-subject access request)."""
        return privacy.export_member(self, member_id)

    def erase_member(self, member_id: str, *, source: str) -> privacy.Erasure:
        """Pseudonymise the member everywhere (a data-subject erasure request); ledgers stay balanced."""
        from retailblocks.connectors.tables import metadata as connector_tables

        return privacy.erase_member(self, member_id, source=source, extra_tables=connector_tables.sorted_tables)

    def link_identity(self, channel: str, member_id: str, identity: Identity) -> Member:
        """Link another identity to a member (merging the member it belonged to, reversibly)."""
        self.channel(channel)
        return members.link_identity(self, channel, member_id, identity)

    def member_coupons(self, member_id: str) -> list[MemberCoupon]:
        """The coupons in ``member_id``'s wallet: issued to them by any marketing block, with uses left."""
        return members.member_coupons(self, member_id)

    def redeem_points(
        self, member_id: str, partner: str, points: int, *, key: str, channel: str | None = None
    ) -> PointsMovement:
        """Spend ``points`` of ``member_id``'s for ``partner``'s programme, once per ``key``; settled with the
        partner as a ``points_out`` line (see :meth:`settlement`)."""
        if channel is not None:
            self.channel(channel)
        return members.redeem_points(self, member_id, partner, points, key=key, channel=channel)

    def quote(self, cart: Cart) -> PricedCart:
        """Price ``cart`` as checkout would, reserving and recording nothing."""
        return quote(self, cart)

    # -- channel connectors -------------------------------------------------------------------------

    def import_marketplace_order(self, order: MarketplaceOrder) -> Order:
        """Record an order a marketplace took and collected, once per its order number; see
        :mod:`retailblocks.connectors.marketplace`."""
        return marketplace.import_order(self, self.flows, order)

    def channel_stock(self, channel: str) -> dict[str, int]:
        """Units ``channel`` may sell now of every SKU it sells (after its safety stock)."""
        return listings.channel_stock(self, channel)

    def publish_listings(self) -> list[ListingUpdate]:
        """Record a ``listing.stock_changed`` event for every change of what a channel may sell since the
        last call; see :mod:`retailblocks.connectors.listings`."""
        return listings.publish_listings(self)

    def cancel(self, order_id: str, *, key: str | None = None, reason: str = "") -> Order:
        return self.flows.cancel(order_id, key=key, reason=reason)

    def refund(
        self,
        order_id: str,
        lines: Mapping[int, int] | None = None,
        *,
        key: str,
        reason: str = "",
        restock: bool = True,
    ) -> Order:
        return self.flows.refund(order_id, lines, key=key, reason=reason, restock=restock)

    def order(self, order_id: str) -> Order:
        return self.flows.order(order_id)

    def orders(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        member_id: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Order]:
        """Orders oldest first, filtered; ``after`` an order id to read the next page from (see list_orders)."""
        return self.flows.orders(status=status, channel=channel, member_id=member_id, limit=limit, after=after)

    def unfinished_flows(self, *, status: str | None = None) -> list[FlowState]:
        """Flows left half-way: running (recovery takes them once their lease runs out) and stuck (with why)."""
        return self.flows.unfinished(status=status)

    def recover(
        self, *, ignore_leases: bool = False, retry_stuck: bool = False, orders: Collection[str] | None = None
    ) -> RecoveryReport:
        return self.flows.recover(ignore_leases=ignore_leases, retry_stuck=retry_stuck, orders=orders)

    def lease_until(self) -> datetime:
        """When a lease taken now runs out."""
        return self.lease_clock.now() + self.lease

    @property
    def fingerprint_key(self) -> bytes:
        """The stack's key for hashing request details that must not be stored (see storage.secrets)."""
        if self._fingerprint_key is None:
            from retailblocks.storage.secrets import fingerprint_key

            self._fingerprint_key = fingerprint_key(self.engine)
        return self._fingerprint_key

    def dispatch_events(
        self, *, batch: int = 200, max_attempts: int = MAX_ATTEMPTS, rounds: int = 1000, wait: bool = True
    ) -> DispatchReport:
        """Deliver every pending event to its listeners; see :func:`retailblocks.events.dispatch`. A loop that
        runs beside other dispatchers passes ``wait=False``: a subscriber another process is delivering is left
        to it instead of waited for."""
        return dispatch(self, batch=batch, max_attempts=max_attempts, rounds=rounds, wait=wait)

    def events(
        self, *, after: int = 0, limit: int = 100, event_type: str | None = None, order_id: str | None = None
    ) -> list[Event]:
        """Outbox events after event id ``after``, oldest first; ``event_type`` a prefix such as ``order.``."""
        return read_events(self, after=after, limit=limit, event_type=event_type, order_id=order_id)

    def dead_letters(self) -> list[DeadLetter]:
        """Deliveries given up after too many failures."""
        return read_dead_letters(self)

    def delivery_failures(self) -> list[DeliveryFailure]:
        """Deliveries to listeners and webhooks that failed and were not made since: retrying or dead."""
        return read_failures(self)

    def deliver_webhooks(self, *, subscriber: str | None = None, limit: int = 100) -> WebhookReport:
        """One delivery round of the manifest's webhooks; see :func:`retailblocks.events.webhooks.deliver_webhooks`."""
        return deliver_webhooks(self, subscriber=subscriber, limit=limit)

    def redeliver(self, event_id: int, subscriber: str | None = None) -> Redelivery:
        """Give the dead letters of ``event_id`` (to ``subscriber``, or every one) another attempt now.

        The blocks' listeners are delivered to at once; a webhook's dead letter goes out with the webhook's
        next delivery round (the server's delivery loop, or ``blocks events --deliver``), so that no request
        waits for a receiver."""
        rearmed = redeliver(self, event_id, subscriber)
        return Redelivery(rearmed, self.dispatch_events() if rearmed else DispatchReport())

    # -- stock (an inventory block's operator API) --------------------------------------------------

    def stock_operator(self) -> StockOperator:
        """The inventory block, if it offers operators stock operations (see StockOperator)."""
        block = self.block_providing("inventory")
        if not isinstance(block, StockOperator):
            raise AssemblyError(
                f"the stack's inventory block {block.id!r} offers no operator stock operations "
                "(receive, adjust, count, movements)"
            )
        return block

    @contextmanager
    def _stock(self, *, read_only: bool = False) -> Iterator[tuple[StockOperator, FlowContext]]:
        operator = self.stock_operator()
        with self.context(flow="operator", read_only=read_only) as ctx:
            ctx.current_block = self.block_providing("inventory").id
            yield operator, ctx

    def stock_levels(self, skus: Sequence[str] = ()) -> list[StockLevel]:
        """Stock of ``skus`` (all when empty) at every location: on hand, reserved, allocated, available."""
        with self._stock(read_only=True) as (operator, ctx):
            return list(operator.levels(ctx, skus))

    def stock_movements(self, skus: Sequence[str] = (), *, limit: int | None = None) -> list[StockMovement]:
        """The movement ledger, oldest first; the newest ``limit`` rows when given."""
        with self._stock(read_only=True) as (operator, ctx):
            return list(operator.movements(ctx, skus, limit=limit))

    def receive_stock(self, sku: str, location: str, quantity: int, *, reason: str = "", key: str) -> StockChange:
        """Goods arrived: ``quantity`` more on hand; once per ``key``."""
        with self._stock() as (operator, ctx):
            on_hand = operator.receive(ctx, sku, location, quantity, reason=reason, key=key)
        return StockChange(sku, location, quantity, on_hand)

    def adjust_stock(self, sku: str, location: str, delta: int, *, reason: str, key: str) -> StockChange:
        """A correction of on hand by ``delta`` (damage, loss, found goods), with its reason; once per ``key``."""
        with self._stock() as (operator, ctx):
            on_hand = operator.adjust(ctx, sku, location, delta, reason=reason, key=key)
        return StockChange(sku, location, delta, on_hand)

    def count_stock(self, sku: str, location: str, counted: int, *, reason: str = "", key: str) -> StockChange:
        """A count: on hand becomes ``counted``, the difference a movement; once per ``key``."""
        with self._stock() as (operator, ctx):
            before = next((lv.on_hand for lv in operator.levels(ctx, [sku]) if lv.location == location), 0)
            on_hand = operator.count(ctx, sku, location, counted, reason=reason, key=key)
        return StockChange(sku, location, on_hand - before, on_hand)

    # -- members (fused across channels) -----------------------------------------------------------

    def member_profiles(self) -> list[MemberProfile]:
        """Every known member's profile, after delivering pending events (what ``blocks members`` lists)."""
        from retailblocks.fusion import catch_up, profiles

        catch_up(self)
        with self.context(flow="report", read_only=True) as ctx:
            return list(profiles(self, ctx).values())

    def member_view(
        self, *, member_id: str | None = None, identity: str | None = None
    ) -> tuple[MemberProfile, list[TimelineEntry]]:
        """One member's profile and timeline, by member id or by an identity (``kind:value``)."""
        from retailblocks.fusion import catch_up, member_view

        catch_up(self)
        with self.context(flow="report", read_only=True) as ctx:
            return member_view(self, ctx, member_id=member_id, identity=identity)

    def link_identities(self, identities: Sequence[Identity]) -> Member:
        """Resolve ``identities`` into one member: unknown ones are linked to the member the others name,
        and identities of two members merge them (reversibly). UnknownMember when none names a member."""
        from retailblocks.errors import UnknownMember

        with self.context(flow="operator") as ctx:
            member = self.hooks.maybe(membership.membership_identify, ctx, list(identities), False)
        if member is None:
            raise UnknownMember("none of these identities belongs to a member; nothing was linked")
        return member

    def segment_members(self, segment_id: str | None = None) -> dict[str, list[str]]:
        """The members each of the manifest's segments holds now (or only ``segment_id``'s)."""
        from retailblocks.fusion import catch_up
        from retailblocks.fusion.memberships import segment_members
        from retailblocks.fusion.views import find_segment

        chosen = [find_segment(self, segment_id)] if segment_id else list(self.manifest.segments)
        catch_up(self)
        with self.context(flow="report", read_only=True) as ctx:
            return segment_members(self, ctx, chosen)

    def explain_segment(self, segment_id: str, member: str) -> Explanation:
        """Why ``member`` (an id, or an identity as ``kind:value``) is in the segment or not: each condition
        with the member's figure and the threshold, at the stack's now."""
        from retailblocks.fusion.views import explain_segment

        return explain_segment(self, segment_id, member)

    def rebuild_segments(self) -> RebuildReport:
        """Recompute segments' facts and memberships, and the aggregates profiles, campaign reports and
        settlements read, from the raw orders and signals; report what differed."""
        from retailblocks.fusion import aggregates, catch_up
        from retailblocks.fusion.memberships import rebuild

        catch_up(self)
        report = rebuild(self)
        return attrs.evolve(report, aggregates=aggregates.rebuild(self))

    def check_aggregates(self) -> AggregateReport:
        """Recompute the kept aggregates from the raw data and report every row that differs; writes nothing."""
        from retailblocks.fusion import aggregates, catch_up

        catch_up(self)
        return aggregates.rebuild(self, write=False)

    def run_campaign(self, campaign_id: str) -> CampaignRun:
        """Draw the segment's new members into the campaign's arms, issue the treated their coupons and send
        them its message (within its dates, send window and frequency cap)."""
        from retailblocks.fusion import catch_up, run_campaign

        catch_up(self)
        run = run_campaign(self, campaign_id, mediums=self.reach_mediums)
        catch_up(self)
        return run

    @property
    def reach_mediums(self) -> frozenset[str]:
        """The mediums the stack's reach blocks send messages by."""
        return frozenset(
            medium
            for block in self.blocks.values()
            if Capability.REACH in block.capabilities
            for medium in block.reach_mediums
        )

    def opt_out(self, member_id: str, medium: str, *, source: str) -> list[str]:
        """Record that the member wants no more messages by ``medium``, with every reach block that sends
        by it (the ids of those blocks); ``source`` says where the member said so."""
        from retailblocks.flows.capabilities import opt_out
        from retailblocks.hookspecs.reach import MEDIUMS

        if medium not in MEDIUMS:
            raise InvalidValue(f"unknown medium {medium!r}{suggestion(medium, MEDIUMS)}; known: {', '.join(MEDIUMS)}")
        if not source.strip() or len(source) > 200:
            raise InvalidValue("say where the member opted out (--source), in at most 200 characters")
        member = self.member(member_id)
        with self.context(flow="opt-out") as ctx:
            return opt_out(self.hooks, ctx, member.id, medium, source.strip())

    def campaign_report(self, campaign_id: str, *, limit: int | None = None) -> CampaignReport:
        """What the campaign brought: reach, the orders that used its coupons, revenue, discount by funder,
        the messages sent, and (with a holdout) the uplift over the members held out."""
        from retailblocks.fusion import campaign_report, catch_up

        catch_up(self)
        return campaign_report(self, campaign_id, limit=limit)

    def settlement(self, partner_id: str, start: date, end: date) -> Settlement:
        """Who owes whom with ``partner_id`` from ``start`` to ``end`` (included)."""
        from retailblocks.fusion import settle
        from retailblocks.fusion.settlement import period

        period(start, end)  # refuses a period that ends before it starts, before any work
        return settle(self, partner_id, start, end)

    def ingest_signals(self, data: bytes | str, fmt: str) -> IngestReport:
        """Add the external signals in ``data`` (``jsonl`` or ``csv``) to members' timelines; every bad line
        is reported with its reason and skipped, the good ones added together; the same data twice adds
        nothing."""
        from retailblocks.fusion import ingest
        from retailblocks.fusion.ingest import parse

        signals, bad = parse(data, fmt, list(self.channels))
        return ingest(self, signals, bad)

    def lock_status(self) -> LockStatus:
        """The manifest against its lock now: never assembled, or what changed since (nothing: it matches)."""
        from retailblocks.assembly.lockfile import check_assembled

        try:
            changes = check_assembled(self.plan, self.manifest.path.name)
        except AssemblyError:
            return LockStatus(False, ())
        return LockStatus(True, tuple(changes))

    # -- stored value (gift cards and wallets) -------------------------------------------------------

    def _balance_keeper(self, method: str) -> tuple[BalanceKeeper, str]:
        block_id = self.hooks.payment_block(method)
        block = self.block(block_id)
        if not isinstance(block, BalanceKeeper):
            raise AssemblyError(f"the {method} block {block_id!r} cannot say what an account holds")
        return block, block_id

    def issue_stored_value(
        self, method: str, amount: Money, *, member_id: str | None = None, key: str
    ) -> StoredValueIssue:
        """Put ``amount`` on a new gift card (``gift_card``) or on ``member_id``'s wallet (``wallet``), once
        per ``key``; what the account holds afterwards comes with it."""
        from retailblocks.model.limits import check_key

        check_key(key)
        keeper, block_id = self._balance_keeper(method)
        with self.context(flow="operator") as ctx:
            ctx.current_block = block_id
            reference = self.hooks.call(payment.payment_issue, ctx, method, amount, member_id, key)
            balance = keeper.balance(ctx, reference)
        return StoredValueIssue(method, reference, member_id, amount, balance)

    def wallet_balance(self, member_id: str) -> Money:
        """What ``member_id``'s wallet holds now (zero without a wallet)."""
        keeper, block_id = self._balance_keeper("wallet")
        with self.context(flow="report", read_only=True) as ctx:
            ctx.current_block = block_id
            return keeper.balance(ctx, member_id)

    def _merge_keeper(self) -> tuple[MergeKeeper, str]:
        for block_id, block in self.blocks.items():
            if "membership" in block.capabilities and isinstance(block, MergeKeeper):
                return block, block_id
        raise AssemblyError("no membership block in this stack keeps merges that can be listed and undone")

    def member_merges(self, member_id: str) -> list[MergeRecord]:
        """The merges ``member_id`` took part in, as survivor or absorbed, oldest first."""
        keeper, block_id = self._merge_keeper()
        with self.context(flow="report", read_only=True) as ctx:
            ctx.current_block = block_id
            return [_merge_record(row, self.currency) for row in keeper.merges(ctx, member_id)]

    def undo_merge(self, merge_id: str, *, reason: str = "") -> MergeRecord:
        """Undo merge ``merge_id``: the absorbed member gets its identities and points back; asked again,
        nothing changes."""
        keeper, block_id = self._merge_keeper()
        with self.context(flow="operator") as ctx:
            ctx.current_block = block_id
            return _merge_record(keeper.unmerge(ctx, merge_id, reason), self.currency)

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.plugin_manager.hook.stack_shutdown(stack=self)
        finally:
            self.idle_connection.close()
            if self.table_guard is not None:
                self.table_guard.remove()
            if self.owns_engine:
                self.engine.dispose()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
