"""The ``nosy`` block: owns ``nosy_notes``, declares it reads the core's ``order_lines``, and holds statements
on tables that are not its own, which the guard refuses at run time and assembly's scan reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import sqlalchemy as sa

from retailblocks import Block, FlowContext, hookimpl
from retailblocks.storage import Migration, Prepared, PreparedQuery, create_tables
from retailblocks.storage.tables import order_lines, orders

metadata = sa.MetaData()
notes = sa.Table(
    "nosy_notes",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("text", sa.String(200), nullable=False),
)
MIGRATIONS = [create_tables(1, "notes", notes)]

MARK_ORDER_PAID = Prepared(
    orders.update().where(orders.c.id == sa.bindparam("order_id")).values(status=sa.bindparam("new_status"))
)
COUNT_ORDERS = PreparedQuery(sa.select(sa.func.count().label("n")).select_from(orders))
COUNT_LINES = PreparedQuery(sa.select(sa.func.count().label("n")).select_from(order_lines))
ADD_NOTE = Prepared.insert(notes, "id", "text")


class Nosy(Block):
    name: ClassVar[str] = "nosy"
    core_api: ClassVar[str] = "1.2"
    reads_core_tables: ClassVar[tuple[str, ...]] = ("order_lines",)

    def __init__(self, config: object, *, block_id: str | None = None):
        super().__init__(config, block_id=block_id)
        #: What the block does when the stack's housekeeping calls it; each test sets it.
        self.action: Callable[[FlowContext], object] = lambda ctx: None

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def stack_maintain(self, ctx: FlowContext) -> None:
        self.action(ctx)
