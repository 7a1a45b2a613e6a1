"""The fusion block: the core's own listener that keeps every member's cross-channel timeline, and the facts
and segment memberships evaluated over it (retailblocks.fusion.memberships)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from retailblocks.assembly.plan import FUSION_ID
from retailblocks.context import Event, FlowContext, StackView
from retailblocks.fusion import aggregates
from retailblocks.fusion.memberships import on_event, refresh_stale
from retailblocks.fusion.tables import MIGRATIONS
from retailblocks.fusion.timeline import record_event
from retailblocks.hookspecs import hookimpl
from retailblocks.hookspecs.blocks import Block
from retailblocks.storage.migrations import Migration

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime


class FusionBlock(Block):
    """Registered by the core in every stack, like the core's own tables: data fusion needs no manifest entry."""

    name = FUSION_ID
    description = "one timeline per member across channels, segments, campaigns and partner settlement"
    _stack: Runtime | None = None

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def stack_startup(self, stack: StackView) -> None:
        # The core's own block is handed the whole stack: segments read the manifest and ask membership.
        self._stack = cast("Runtime", stack)

    @hookimpl
    def stack_maintain(self, ctx: FlowContext) -> None:
        # Answers a sliding window made stale are right at read time anyway; refreshing them keeps reads fast.
        if self._stack is not None:
            refresh_stale(self._stack, ctx)

    @hookimpl
    def stack_event(self, event: Event, ctx: FlowContext) -> None:
        record_event(ctx, event)
        if self._stack is not None:
            on_event(self._stack, ctx, event)
            # After the order facts, which member totals and campaign results are summed from.
            aggregates.on_event(self._stack, ctx, event)
