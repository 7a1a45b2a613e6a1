"""The stack: a manifest assembled, and the façade every face (the CLI, embedding code, tests) calls.

:func:`assemble` plans the manifest's blocks (retailblocks.assembly), prepares storage and returns a
:class:`Stack`, which implements what the flows, events and fusion need of it
(:class:`retailblocks.assembly.runtime.Runtime`) and offers the operations built from them, typed.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa

from retailblocks.assembly import plan as planning
from retailblocks.assembly.discovery import BlockInfo
from retailblocks.assembly.plan import FUSION_ID, Plan, prepare_storage
from retailblocks.clock import FLOW_LEASE, Clock, IdFactory, RandomIds, SystemClock
from retailblocks.context import FlowContext
from retailblocks.errors import AssemblyError, UnknownChannel
from retailblocks.events.dispatcher import MAX_ATTEMPTS, DispatchReport, dispatch
from retailblocks.flows.api import OrderFlows, RecoveryReport
from retailblocks.flows.availability import Availability, availability
from retailblocks.flows.pricing import PricedCart
from retailblocks.flows.quote import quote
from retailblocks.fusion import members
from retailblocks.fusion.block import FusionBlock
from retailblocks.hookspecs.blocks import Block
from retailblocks.model import Cart, Channel, Identity, Member, Merchant, Order, Product
from retailblocks.storage import UnitOfWork
from retailblocks.storage.unit_of_work import IdleConnection


def plan(
    manifest_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
) -> Plan:
    """The manifest's blocks resolved, configured, registered and routed, beside the core's own; nothing
    is written (what ``blocks assemble --check`` runs)."""
    return planning.plan(
        manifest_path, environ=environ, installed=installed, core_blocks=[FusionBlock(None, block_id=FUSION_ID)]
    )


def assemble(
    manifest_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    ids: IdFactory | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
    lease_clock: Clock | None = None,
    require_lock: bool = False,
) -> Stack:
    """Assemble the manifest into a running stack: validate everything, then prepare storage.

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
    engine = prepare_storage(the_plan)
    stack = Stack(the_plan, engine, clock or SystemClock(), ids or RandomIds(), lease_clock=lease_clock)
    stack.lock_changes = tuple(changes)
    the_plan.plugin_manager.hook.stack_startup(stack=stack)
    return stack


class Stack:
    """A manifest assembled: configured blocks registered with one plugin manager, plus storage.

    The order flows are reached through :meth:`checkout`, :meth:`cancel`, :meth:`refund` and the readers
    :meth:`order` and :meth:`orders`; operators' housekeeping through :meth:`recover` and
    :meth:`dispatch_events`.
    """

    def __init__(
        self, the_plan: Plan, engine: sa.Engine, clock: Clock, ids: IdFactory, *, lease_clock: Clock | None = None
    ):
        self.plan = the_plan
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
        #: What changed in the manifest since its lock was written, when assembled with require_lock.
        self.lock_changes: tuple[str, ...] = ()
        self._closed = False
        #: Where a flow run leaves its SQLite connection for the next run (see keeping_connection).
        self.idle_connection = IdleConnection()

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

    def availability(self, channel: str, skus: Sequence[str]) -> Availability:
        """What ``channel`` may sell of ``skus`` now, and the stock at each of its locations."""
        return availability(self, channel, skus)

    def sign_in(self, channel: str, identities: Sequence[Identity]) -> Member:
        """The member a shopper's identities resolve to in ``channel``, enrolled if new."""
        self.channel(channel)
        return members.sign_in(self, channel, identities)

    def member(self, member_id: str) -> Member:
        return members.member_of(self, member_id)

    def link_identity(self, channel: str, member_id: str, identity: Identity) -> Member:
        """Link another identity to a member (merging the member it belonged to, reversibly)."""
        self.channel(channel)
        return members.link_identity(self, channel, member_id, identity)

    def quote(self, cart: Cart) -> PricedCart:
        """Price ``cart`` as checkout would, reserving and recording nothing."""
        return quote(self, cart)

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
    ) -> list[Order]:
        return self.flows.orders(status=status, channel=channel, member_id=member_id, limit=limit)

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
        self, *, batch: int = 200, max_attempts: int = MAX_ATTEMPTS, rounds: int = 1000
    ) -> DispatchReport:
        """Deliver every pending event to its listeners; see :func:`retailblocks.events.dispatch`."""
        return dispatch(self, batch=batch, max_attempts=max_attempts, rounds=rounds)

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.plugin_manager.hook.stack_shutdown(stack=self)
        finally:
            self.idle_connection.close()
            self.engine.dispose()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
