"""The fusion block: the core's own listener that keeps every member's cross-channel timeline."""

from __future__ import annotations

from collections.abc import Sequence

from retailblocks.assembly.plan import FUSION_ID
from retailblocks.context import Event, FlowContext
from retailblocks.fusion.tables import MIGRATIONS
from retailblocks.fusion.timeline import record_event
from retailblocks.hookspecs import hookimpl
from retailblocks.hookspecs.blocks import Block
from retailblocks.storage.migrations import Migration


class FusionBlock(Block):
    """Registered by the core in every stack, like the core's own tables: data fusion needs no manifest entry."""

    name = FUSION_ID
    description = "one timeline per member across channels, segments, campaigns and partner settlement"

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def stack_event(self, event: Event, ctx: FlowContext) -> None:
        record_event(ctx, event)
