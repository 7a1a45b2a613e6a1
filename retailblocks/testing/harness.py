"""Run one block against a real database without a manifest: the block author's test bench."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.context import Event, FlowContext
from retailblocks.events.dispatcher import event_from_row
from retailblocks.hookspecs.blocks import Block
from retailblocks.model import Channel, ChannelType, Merchant
from retailblocks.storage import UnitOfWork, create_engine, migrate
from retailblocks.storage.tables import CORE_MIGRATIONS, outbox

DEFAULT_CHANNELS = (
    Channel("web", ChannelType.ONLINE),
    Channel("marketplace", ChannelType.MARKETPLACE),
    Channel("store-1", ChannelType.STORE, location="store-1"),
)


class BlockHarness:
    """Migrates the core's and the block's tables, and hands out flow contexts that commit on exit.

    ``harness.context("web")`` is a context manager yielding a :class:`FlowContext` for that channel
    whose unit of work commits when the block returns and rolls back when it raises, exactly as a
    flow step does in a stack.
    """

    def __init__(
        self,
        block: Block,
        database_url: str,
        *,
        merchant: Merchant | None = None,
        channels: Sequence[Channel] = DEFAULT_CHANNELS,
        clock: ManualClock | None = None,
        seed: int = 0,
    ):
        self.block = block
        self.merchant = merchant or Merchant("test-shop", "Test Shop", "CNY")
        self.channels = {channel.id: channel for channel in channels}
        self.clock = clock or ManualClock()
        self.ids = RandomIds(seed)
        self.engine = create_engine(database_url)
        migrations = getattr(block, "stack_migrations", None)
        owners: dict[str, Any] = {"core": CORE_MIGRATIONS}
        if migrations is not None:
            owners[block.name] = list(migrations())
        migrate(self.engine, owners)

    @contextmanager
    def context(
        self, channel: str | None = "web", *, flow: str = "test", flow_id: str = "", key: str = ""
    ) -> Iterator[FlowContext]:
        with UnitOfWork(self.engine) as uow:
            yield FlowContext(
                merchant=self.merchant,
                channel=self.channels[channel] if channel else None,
                clock=self.clock,
                ids=self.ids,
                uow=uow,
                flow=flow,
                flow_id=flow_id,
                idempotency_key=key,
                current_block=self.block.id,
            )

    def events(self, event_type: str | None = None) -> list[Event]:
        """Events the block recorded, oldest first."""
        query = sa.select(outbox).order_by(outbox.c.id)
        if event_type is not None:
            query = query.where(outbox.c.type == event_type)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [event_from_row(row) for row in rows]

    def close(self) -> None:
        self.engine.dispose()
