"""The core's own tables and housekeeping, registered as a block so the core eats its own hooks."""

from __future__ import annotations

from collections.abc import Sequence

from retailblocks.hookspecs import hookimpl
from retailblocks.hookspecs.blocks import Block
from retailblocks.storage.migrations import Migration
from retailblocks.storage.tables import CORE_MIGRATIONS


class CoreBlock(Block):
    name = "core"
    description = "the core's orders, saga log, idempotency keys and event outbox"

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return CORE_MIGRATIONS
