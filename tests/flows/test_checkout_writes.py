"""What checkout writes when its steps keep the order in memory, and when a resumed saga has to read it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retailblocks.events import read_events
from retailblocks.flows.saga import SimulatedCrash
from retailblocks.model import OrderStatus
from retailblocks.stack import Stack
from retailblocks.storage.tables import orders, sagas
from tests.helpers import cart, make_stack, member


def note_begins(engine: sa.Engine, seen: list[int]) -> None:
    """Note the driver connection of every transaction begun from now on: SQLAlchemy's or the driver's."""

    def on_statement(connection: sa.Connection, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith("BEGIN"):
            seen.append(id(connection.connection.dbapi_connection))

    sa.event.listen(engine, "before_cursor_execute", on_statement)


def stored(stack: Stack, order_id: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    with stack.engine.connect() as connection:
        details = connection.execute(sa.select(orders.c.details).where(orders.c.id == order_id)).scalar_one()
        saga = connection.execute(sa.select(sagas.c.status, sagas.c.state).where(sagas.c.id == order_id)).one()
        connection.rollback()
    return dict(details), saga.status, dict(saga.state)


def shape(details: dict[str, Any]) -> dict[str, Any]:
    """The details with the ids that differ between two orders taken out."""
    return {
        "keys": list(details),
        "authorizations": len(details["authorizations"]),
        "captures": sorted(details["captures"].values()),
        "shipments": len(details["shipments"]),
        "backordered": details["backordered"],
        "adjustments": details["adjustments"],
        "fulfilment": details["fulfilment"],
    }


def test_the_order_returned_is_the_order_stored(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("+8613800000011")), key="w1")
        assert order == stack.order(order.id)
        assert order.status is OrderStatus.FULFILLED and len(order.payments) == 1 and len(order.shipments) == 1
        details, status, state = stored(stack, order.id)
        assert status == "completed"
        assert state["done"] == ["reserve", "authorize", "place", "capture", "deliver", "earn", "complete"]
        assert details["captures"] == state["captures"] and details["authorizations"] == state["authorizations"]
        assert details["shipments"] == state["shipments"] and details["backordered"] == []
        # The core's events come in the order of the steps that recorded them.
        core = [e.type for e in read_events(stack, order_id=order.id, limit=500) if e.type.startswith("order.")]
        assert core == ["order.created", "order.placed", "order.paid", "order.completed"]


@pytest.mark.parametrize("step", ["capture", "deliver", "earn", "complete"])
def test_a_resumed_checkout_writes_what_an_uninterrupted_one_does(tmp_path: Path, database_url: str, step: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        shopper = member("+8613800000012")
        whole = stack.checkout(cart(("BEANS", 1), ("TEA", 1), identities=shopper), key="whole")
        stack.flows.faults.arm("checkout", step, "before")
        with pytest.raises(SimulatedCrash):
            stack.checkout(cart(("BEANS", 1), ("TEA", 1), identities=shopper), key="resumed")
        stack.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
        report = stack.recover()
        [resumed_id] = report.resumed
        resumed = stack.order(resumed_id)
        assert resumed.status is OrderStatus.FULFILLED
        assert shape(stored(stack, resumed_id)[0]) == shape(stored(stack, whole.id)[0])
        assert stored(stack, resumed_id)[1] == "completed"


def test_on_sqlite_a_checkout_runs_every_transaction_on_one_connection(tmp_path: Path, sqlite_url: str) -> None:
    # A SQLite connection drops its page cache whenever another connection has written: the steps, and the
    # card gateway's own transactions between them, share one connection lent in turn.
    with make_stack(tmp_path, sqlite_url) as stack:
        stack.checkout(cart(("BEANS", 1)), key="warm")
        seen: list[int] = []
        note_begins(stack.engine, seen)
        stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("+8613800000019")), key="one-connection")
        # Seven transactions: reserve; the card's attempt and the gateway's charge; authorize and place (with
        # the card's record); the gateway's capture; capture (with the card's record); deliver to complete.
        assert len(seen) == 7 and len(set(seen)) == 1


def test_on_sqlite_checkouts_one_after_another_keep_one_connection_out_of_the_pool(
    tmp_path: Path, sqlite_url: str
) -> None:
    # The connection a checkout kept waits for the next checkout rather than going back to the pool, and
    # closing the stack gives it back.
    stack = make_stack(tmp_path, sqlite_url)
    seen: list[int] = []
    note_begins(stack.engine, seen)
    for n in range(3):
        stack.checkout(cart(("BEANS", 1)), key=f"in-turn-{n}")
        assert stack.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert len(set(seen)) == 1
    waiting = stack.idle_connection.take()
    assert waiting is not None and not waiting.in_transaction()
    assert stack.idle_connection.offer(waiting)
    stack.close()
    assert waiting.closed
