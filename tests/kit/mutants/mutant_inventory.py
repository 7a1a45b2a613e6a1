"""Inventory blocks with one bug each; the inventory contract must fail every one."""

from __future__ import annotations

from typing import Any

from retailblocks_sql_inventory import SqlInventory
from retailblocks_sql_inventory.reservations import ACTIVE, RELEASED
from retailblocks_sql_inventory.rules import lines_payload

from retailblocks import FlowContext, hookimpl
from tests.kit.mutants.reference import SqlInventoryContract


class SignErrorInventory(SqlInventory):
    def __init__(self, config: Any, *, block_id: str | None = None):
        super().__init__(config, block_id=block_id)
        # The bug: safety stock with the wrong sign, so channels sell units that are not there.
        self.rules.safety_stock = lambda channel: -1_000  # type: ignore[method-assign]


class MutantReserveBeyondStock(SqlInventoryContract):
    """Reserves more units than are in stock."""

    block_class = SignErrorInventory


class RepeatReleaseInventory(SqlInventory):
    @hookimpl
    def inventory_release(self, ctx: FlowContext, reservation_id: str) -> None:
        reservations = self.reservations
        # The bug: the lines are given back whether or not the reservation was still active.
        reservations._transition(ctx.db, reservation_id, ACTIVE, RELEASED, ctx.clock.now())
        lines = reservations._lines_of(ctx.db, [reservation_id])[reservation_id]
        reservations._unreserve(ctx.db, lines)
        ctx.record("stock.released", {"reservation_id": reservation_id, "lines": lines_payload(lines)})


class MutantReleaseNotIdempotent(SqlInventoryContract):
    """Gives a reservation's stock back again each time it is released."""

    block_class = RepeatReleaseInventory
