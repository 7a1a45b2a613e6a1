"""Block table permissions at run time: under the guard (on in this repository's tests) a block writes only
its own tables and reads only the core tables it declares; the core's own statements are never checked."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.assembly.discovery import BlockInfo, discover
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.errors import TableAccessDenied
from retailblocks.hookspecs import lifecycle
from retailblocks.stack import Stack, assemble
from retailblocks.storage import read_only_connection
from retailblocks.storage.permissions import TableUse, enforcing_permissions, permissions_enforced, tables_used
from retailblocks.storage.tables import orders
from tests.helpers import SHOP_MANIFEST, cart, receive, write_manifest
from tests.storage.nosy.block import ADD_NOTE, COUNT_LINES, COUNT_ORDERS, MARK_ORDER_PAID, Nosy

NOSY_MANIFEST = SHOP_MANIFEST.replace("  - use: promotions\n", "  - use: nosy\n  - use: promotions\n", 1)


def installed() -> dict[str, BlockInfo]:
    return {**discover(), "nosy": BlockInfo("nosy", "tests", "1.0", "tests.storage.nosy.block:Nosy", block_class=Nosy)}


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    with assemble(
        write_manifest(tmp_path, database_url, NOSY_MANIFEST),
        clock=ManualClock(),
        ids=RandomIds(1),
        installed=installed(),
    ) as the_stack:
        receive(the_stack, {"BEANS": 5})
        yield the_stack


def run_nosy(stack: Stack, action: object) -> None:
    """Let the nosy block do ``action`` as the stack's housekeeping calls it: through the hook system."""
    block = stack.block("nosy")
    assert isinstance(block, Nosy)
    block.action = action  # type: ignore[assignment]
    with stack.context(flow="maintenance") as ctx:
        stack.hooks.at("nosy", lifecycle.stack_maintain, ctx)


def order_status(stack: Stack, order_id: str) -> str:
    with stack.engine.connect() as connection:
        return str(connection.execute(sa.select(orders.c.status).where(orders.c.id == order_id)).scalar_one())


@pytest.mark.parametrize(
    ("sql", "writes", "reads"),
    [
        ("INSERT INTO orders (id) VALUES (?)", {"orders"}, set()),
        ("INSERT OR IGNORE INTO nosy_notes (id) VALUES (?)", {"nosy_notes"}, set()),
        (
            'UPDATE "Sagas" SET x = 1 WHERE id IN (SELECT id FROM outbox AS o, carts c JOIN m.order_lines ON 1)',
            {"sagas"},
            {"outbox", "carts", "order_lines"},
        ),
        ("DELETE FROM sql_inventory_levels WHERE sku = %(sku)s", {"sql_inventory_levels"}, {"sql_inventory_levels"}),
        ("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a", {"t"}, set()),
        (
            "SELECT extract(epoch FROM orders.at) FROM loyalty_members WHERE a IS DISTINCT FROM b FOR UPDATE",
            set(),
            {"loyalty_members"},
        ),
        ("SELECT n FROM (SELECT count(*) AS n FROM orders) AS q", set(), {"orders"}),
        ("CREATE TABLE IF NOT EXISTS nosy_more (a INTEGER)", {"nosy_more"}, set()),
        ("BEGIN IMMEDIATE", set(), set()),
        ("SELECT 'FROM orders' FROM nosy_notes -- FROM sagas", set(), {"nosy_notes"}),
    ],
)
def test_a_statement_is_read_for_the_tables_it_writes_and_reads(sql: str, writes: set[str], reads: set[str]) -> None:
    assert tables_used(sql) == TableUse(frozenset(writes), frozenset(reads))


def test_the_guard_is_on_in_this_repositorys_tests(stack: Stack, tmp_path: Path, database_url: str) -> None:
    assert permissions_enforced() and stack.table_guard is not None
    with enforcing_permissions(False):
        other = tmp_path / "other"
        other.mkdir()
        with assemble(write_manifest(other, database_url, NOSY_MANIFEST), installed=installed()) as unguarded:
            assert unguarded.table_guard is None


def test_a_block_writing_the_core_orders_fails_naming_block_and_table(stack: Stack) -> None:
    order = stack.checkout(cart(("BEANS", 1)), key="k1")

    with pytest.raises(TableAccessDenied) as raised:
        run_nosy(stack, lambda ctx: MARK_ORDER_PAID.execute(ctx.db, order_id=order.id, new_status="cancelled"))

    message = str(raised.value)
    assert "block 'nosy'" in message and "core table 'orders'" in message
    assert (raised.value.block, raised.value.table, raised.value.access) == ("nosy", "orders", "write")
    assert isinstance(raised.value, PermissionError)
    assert order_status(stack, order.id) == order.status.value  # refused before it reached the database


def test_a_block_writing_another_blocks_table_fails_naming_the_owner(stack: Stack) -> None:
    with pytest.raises(TableAccessDenied, match=r"block 'nosy' wrote to 'loyalty_members', a table of block 'loyalty'"):
        run_nosy(stack, lambda ctx: ctx.db.execute(sa.text("UPDATE loyalty_members SET tier = 'gold'")))


def test_a_block_reads_only_the_core_tables_it_declares(stack: Stack) -> None:
    stack.checkout(cart(("BEANS", 1)), key="k1")
    seen: list[int] = []

    run_nosy(stack, lambda ctx: seen.append(COUNT_LINES.scalar(ctx.db)))  # declared: order_lines
    assert seen == [1]
    with pytest.raises(TableAccessDenied, match=r"read the core table 'orders', which it does not declare: add"):
        run_nosy(stack, lambda ctx: COUNT_ORDERS.scalar(ctx.db))


def test_what_a_block_reads_beside_the_step_is_checked_too(stack: Stack) -> None:
    def read_beside(ctx):  # type: ignore[no-untyped-def]
        with read_only_connection(ctx.uow) as connection:
            return COUNT_ORDERS.scalar(connection)

    with pytest.raises(TableAccessDenied, match=r"block 'nosy' read the core table 'orders'"):
        run_nosy(stack, read_beside)


def test_a_block_writes_its_own_tables_and_the_core_records_its_events_inside_its_savepoints(stack: Stack) -> None:
    def note(ctx):  # type: ignore[no-untyped-def]
        ctx.record("nosy.noted", {"id": "n1"})
        with ctx.db.begin_nested():  # the savepoint writes the event to the core's outbox first
            ADD_NOTE.execute(ctx.db, id="n1", text="seen")

    run_nosy(stack, note)

    assert [event.source for event in stack.events(event_type="nosy.")] == ["nosy"]
    with stack.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT text FROM nosy_notes")).scalar_one() == "seen"


def test_the_cores_own_statements_are_not_checked(stack: Stack) -> None:
    order = stack.checkout(cart(("BEANS", 1)), key="k1")
    with stack.context(flow="test") as ctx:
        MARK_ORDER_PAID.execute(ctx.db, order_id=order.id, new_status="held")  # ctx.current_block is "core"
    assert order_status(stack, order.id) == "held"


def test_the_refusal_survives_pickling() -> None:
    error = TableAccessDenied("block 'nosy' wrote to …", block="nosy", table="orders", access="write")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.block, copy.table, copy.access) == (str(error), "nosy", "orders", "write")
