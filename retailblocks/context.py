"""What a hook that changes state receives: the flow's context and its unit of work."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import sqlalchemy as sa

from retailblocks.clock import Clock, IdFactory
from retailblocks.model import Channel, Merchant, Product
from retailblocks.storage.json_text import json_encoder

if TYPE_CHECKING:
    from retailblocks.storage.unit_of_work import UnitOfWork


#: One encoder for every event payload (``json.dumps`` builds a new one per call).
_EVENT_PAYLOAD = json_encoder(default=str)


class StackView(Protocol):
    """What a block may read of the stack it belongs to when the stack starts and stops."""

    @property
    def merchant(self) -> Merchant: ...

    @property
    def currency(self) -> str: ...

    @property
    def catalog(self) -> Mapping[str, Product]: ...

    @property
    def channels(self) -> Mapping[str, Channel]: ...


class RouteStack(StackView, Protocol):
    """What a block's HTTP routes may do with the stack (see ``stack_routes``): read it, tell the time on
    the stack's clock, and do work in a flow context whose unit of work commits when the ``with`` block
    ends and rolls back if it raises. Sync work: a route runs it off the event loop (``asyncio.to_thread``).
    """

    @property
    def clock(self) -> Clock: ...

    def context(
        self,
        channel: str | None = None,
        *,
        flow: str = "operator",
        flow_id: str = "",
        key: str = "",
        read_only: bool = False,
    ) -> AbstractContextManager[FlowContext]: ...


@attrs.frozen
class Event:
    """A fact recorded when state changed. ``type`` is dotted: ``order.placed``, ``stock.reserved``."""

    id: int
    type: str
    payload: Mapping[str, Any]
    occurred_at: Any
    source: str
    channel: str | None = None
    order_id: str | None = None
    member_id: str | None = None


@attrs.frozen
class AuditFinding:
    """One invariant a block checked: ``name`` says what ("points ledger balanced"), ``detail`` the figures."""

    name: str
    ok: bool
    detail: str = ""


def _tell_unit_of_work(ctx: FlowContext, _attribute: attrs.Attribute[str], block_id: str) -> str:
    # The unit of work carries the acting block to its connection's statements, where the table
    # permission guard (retailblocks.storage.permissions) reads it.
    ctx.uow.acting_block = block_id
    return block_id


@attrs.define
class FlowContext:
    """The context of one step of a flow.

    ``db`` is the step's database connection: every block writes through it, so the writes of all
    blocks in one step commit or roll back together. It opens its transaction on first use, so a block
    that calls the outside world (a gateway, a carrier) must make that call *before* touching ``db``:
    then no database lock is held across the call.
    """

    merchant: Merchant
    channel: Channel | None
    clock: Clock
    ids: IdFactory
    uow: UnitOfWork
    flow: str = "maintenance"
    flow_id: str = ""
    #: The flow's own identity (its saga's id), from which :meth:`key_for` derives the keys of outside
    #: calls. Never a caller's key: those are scoped to whoever sent them and could collide across orders.
    idempotency_key: str = ""
    #: The block a hook is currently running in; the core sets it so events name their source, and
    #: statements on :attr:`db` are checked against that block's table permissions when the guard is on.
    current_block: str = attrs.field(default="core", on_setattr=_tell_unit_of_work)

    def __attrs_post_init__(self) -> None:
        self.uow.acting_block = self.current_block

    @property
    def db(self) -> sa.Connection:
        return self.uow.connection

    def key_for(self, step: str) -> str:
        """An idempotency key for one outside call of this flow, stable across retries and recovery, and
        unique to this flow (one order's refund never shares a key with another order's)."""
        return f"{self.idempotency_key or self.flow_id}:{step}"

    def record(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        order_id: str | None = None,
        member_id: str | None = None,
    ) -> None:
        """Record an event in the outbox, in this step's transaction."""
        self.uow.record_event(
            event_type=event_type,
            # Encoded once, now: the text is what the outbox stores (values JSON cannot hold become
            # strings), and it is a snapshot, so the caller may go on changing ``payload``.
            payload=_EVENT_PAYLOAD(payload),
            source=self.current_block,
            channel=self.channel.id if self.channel else None,
            order_id=order_id if order_id is not None else (self.flow_id or None),
            member_id=member_id,
            occurred_at=self.clock.now(),
        )
