"""What the flows, the event dispatcher and fusion use of an assembled stack — and nothing more.

They sit a floor above assembly and a floor below :class:`retailblocks.stack.Stack`, the façade that
implements this protocol and adds the operations built from them. Depending on this narrow surface, rather
than on the whole stack, keeps the floors one-way and says at a glance what a flow may touch.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import sqlalchemy as sa

    from retailblocks.assembly.hooks import Hooks
    from retailblocks.clock import Clock, IdFactory
    from retailblocks.context import FlowContext
    from retailblocks.manifest import Manifest
    from retailblocks.model import Channel, Product
    from retailblocks.storage import UnitOfWork
    from retailblocks.storage.unit_of_work import IdleConnection


class Runtime(Protocol):
    """An assembled stack as the floors above assembly see it."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def engine(self) -> sa.Engine: ...

    @property
    def hooks(self) -> Hooks: ...

    @property
    def clock(self) -> Clock:
        """The business clock: what orders and events are stamped with."""
        ...

    @property
    def lease_clock(self) -> Clock:
        """What flows' leases are measured on: the clock every process shares."""
        ...

    @property
    def lease(self) -> timedelta: ...

    @property
    def ids(self) -> IdFactory: ...

    @property
    def catalog(self) -> Mapping[str, Product]: ...

    @property
    def channels(self) -> Mapping[str, Channel]: ...

    @property
    def currency(self) -> str: ...

    @property
    def fingerprint_key(self) -> bytes: ...

    @property
    def idle_connection(self) -> IdleConnection: ...

    def channel(self, channel_id: str) -> Channel: ...

    def lease_until(self) -> datetime: ...

    def new_context(
        self, uow: UnitOfWork, channel: str | None = None, *, flow: str = ..., flow_id: str = ..., key: str = ...
    ) -> FlowContext: ...

    def context(
        self,
        channel: str | None = None,
        *,
        flow: str = ...,
        flow_id: str = ...,
        key: str = ...,
        read_only: bool = ...,
    ) -> AbstractContextManager[FlowContext]: ...
