"""What a hook that changes state receives: the flow's context and its unit of work."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import attrs
import sqlalchemy as sa

from retailblocks.clock import Clock, IdFactory
from retailblocks.model import Channel, Merchant, Product
from retailblocks.storage.blocks_api import read_only_connection, single_statement
from retailblocks.storage.json_text import json_encoder
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


class OutsideWriteWouldWait(RuntimeError):
    """A block asked to write apart from a step that has already begun on SQLite: a programming error in
    the block (it must call the outside world and write apart before touching ``ctx.db``)."""


@attrs.define
class FlowContext:
    """The context of one step of a flow.

    ``db`` is the step's database connection: every block writes through it, so the writes of all
    blocks in one step commit or roll back together. It opens its transaction on first use, so a block
    that calls the outside world (a gateway, a carrier) must make that call *before* touching ``db``:
    then no database lock is held across the call.

    Apart from the step's transaction a block may read (:meth:`read_only_connection`), write what must
    outlive the step whatever becomes of it (:meth:`outside_connection`: a note made before a gateway
    call), or hand the stack's engine to a component that opens its own connections
    (:meth:`outside_engine`). ``uow`` is the core's: blocks use these instead.
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
        """The step's connection; its transaction begins on first use."""
        return self.uow.connection

    @property
    def step_started(self) -> bool:
        """Whether the step's transaction has begun (something used :attr:`db`). Reading it begins nothing."""
        return self.uow.started

    def outside_engine(self, *, writes: bool = True) -> sa.Engine:
        """The stack's engine, for connections a block opens apart from the step's transaction (a sandbox
        standing in for a remote service keeps its own state on it). Asking does not begin the step.

        With ``writes`` (the default), raises :class:`OutsideWriteWouldWait` when the step has begun on
        SQLite: the step holds the database's one write lock until it ends, so a write apart from it
        would wait forever. Call the outside world, and write apart, *before* touching :attr:`db`.
        Reading apart is always fine: SQLite runs in WAL mode, where readers never wait for the writer.
        """
        engine = self.uow.engine
        if writes and self.uow.started and engine.dialect.name == "sqlite":
            raise OutsideWriteWouldWait(
                f"{self.current_block} must be called before the step writes to the database: on SQLite a "
                "connection apart from the step would wait forever for the step's write lock"
            )
        return engine

    @contextmanager
    def read_only_connection(self) -> Iterator[sa.Connection]:
        """A connection of its own for reading, outside the step's transaction, which it neither begins
        nor waits for; rolled back and closed when the ``with`` block ends (see
        :func:`retailblocks.storage.read_only_connection`). The table permission guard checks what is read
        here as what is read through ``ctx.db``."""
        with read_only_connection(self.uow) as connection:
            yield connection

    @contextmanager
    def outside_connection(self) -> Iterator[sa.Connection]:
        """A connection with a transaction of its own, committed when the ``with`` block ends and rolled
        back if it raises: for a write that must outlive the step whatever becomes of it (an attempt
        noted before a gateway call, so recovery can ask the gateway after a crash). Raises
        :class:`OutsideWriteWouldWait` once the step has begun on SQLite (see :meth:`outside_engine`)."""
        with UnitOfWork(self.outside_engine()) as apart:
            yield apart.connection

    @contextmanager
    def outside_statement(self) -> Iterator[sa.Connection]:
        """A connection apart from the step for a write complete in one statement (an attempt noted before a
        gateway call): on PostgreSQL each statement commits as it runs, saving the BEGIN and COMMIT round
        trips of :meth:`outside_connection`; a transaction of its own on SQLite and where the engine's
        transactions are scoped (see :func:`retailblocks.storage.single_statement`). Raises
        :class:`OutsideWriteWouldWait` once the step has begun on SQLite.

        .. versionadded:: 1.7
        """
        with single_statement(self.outside_engine()) as connection:
            yield connection

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
