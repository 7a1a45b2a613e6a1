"""The outbox: events written with the change, delivered at least once, retried, dead-lettered."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa

from retailblocks import Block, Event, hookimpl
from retailblocks.assembly.discovery import BlockInfo, discover
from retailblocks.clock import ManualClock
from retailblocks.events import read_events
from retailblocks.events.dispatcher import dead_letters, undelivered
from retailblocks.hookspecs import lifecycle
from retailblocks.stack import assemble
from retailblocks.storage.tables import outbox
from tests.helpers import SHOP_MANIFEST, cart, receive, write_manifest


class Listener(Block):
    """Counts what it receives; fails on the events the test tells it to."""

    name = "listener"
    received: ClassVar[Counter[int]] = Counter()
    fail_times: ClassVar[dict[str, int]] = {}

    @hookimpl
    def stack_event(self, event: Event) -> None:
        remaining = self.fail_times.get(event.type, 0)
        if remaining:
            self.fail_times[event.type] = remaining - 1
            raise RuntimeError(f"listener is down for {event.type}")
        self.received[event.id] += 1


@pytest.fixture
def stack(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    Listener.received.clear()
    Listener.fail_times.clear()
    installed = {
        **discover({}),
        "listener": BlockInfo("listener", "tests", "1.0", "tests:Listener", block_class=Listener),
    }
    text = SHOP_MANIFEST.replace("routing:", "  - use: listener\nrouting:")
    the_stack = assemble(write_manifest(tmp_path, database_url, text), clock=ManualClock(), installed=installed)
    receive(the_stack, {"BEANS": 5})
    yield the_stack
    the_stack.close()


def test_every_event_is_delivered_once_when_nothing_fails(stack) -> None:  # type: ignore[no-untyped-def]
    stack.checkout(cart(("BEANS", 1), channel="market"), key="e1")
    report = stack.dispatch_events()
    events = read_events(stack, limit=10_000)
    listeners = len(stack.hooks.implementers(lifecycle.stack_event))
    assert report.delivered == len(events) * listeners and report.failed == 0
    assert set(Listener.received) == {e.id for e in events} and set(Listener.received.values()) == {1}
    assert stack.dispatch_events().delivered == 0  # nothing twice
    assert undelivered(stack) == 0


def test_a_failing_listener_is_retried_with_backoff_and_its_orders_later_events_wait_for_it(stack) -> None:  # type: ignore[no-untyped-def]
    Listener.fail_times["order.placed"] = 2
    stack.checkout(cart(("BEANS", 1), channel="market"), key="e2")
    events = read_events(stack, limit=10_000)
    [placed] = [e for e in events if e.type == "order.placed"]
    later = [e.id for e in events if e.order_id == placed.order_id and e.id > placed.id]
    assert later
    first = stack.dispatch_events()
    assert first.failed == 1 and undelivered(stack) == 1 + len(later)
    assert not set(later) & set(Listener.received)  # held back behind order.placed; other events went on
    stack.clock.advance(timedelta(seconds=6))
    assert stack.dispatch_events().failed == 1
    stack.clock.advance(timedelta(seconds=11))
    assert stack.dispatch_events().delivered == 1 + len(later)
    assert Listener.received[placed.id] == 1 and undelivered(stack) == 0
    of_the_order = [event_id for event_id in Listener.received if event_id in {placed.id, *later}]
    assert of_the_order == [placed.id, *later]  # first received in the order they were written


def test_a_listener_that_keeps_failing_becomes_a_dead_letter(stack) -> None:  # type: ignore[no-untyped-def]
    Listener.fail_times["order.completed"] = 100
    stack.checkout(cart(("BEANS", 1), channel="market"), key="e3")
    stack.dispatch_events()
    for _ in range(6):
        stack.clock.advance(timedelta(hours=1))
        stack.dispatch_events()
    [dead] = dead_letters(stack)
    assert dead["type"] == "order.completed" and dead["subscriber"] == "listener"
    assert "listener is down" in dead["last_error"]


def test_once_a_delivery_is_a_dead_letter_the_later_events_of_its_order_go_on(stack) -> None:  # type: ignore[no-untyped-def]
    Listener.fail_times["order.placed"] = 100
    stack.checkout(cart(("BEANS", 1), channel="market"), key="e5")
    events = read_events(stack, limit=10_000)
    [placed] = [e for e in events if e.type == "order.placed"]
    later = [e.id for e in events if e.order_id == placed.order_id and e.id > placed.id]
    stack.dispatch_events()
    for _ in range(6):
        stack.clock.advance(timedelta(hours=1))
        stack.dispatch_events()
    [dead] = dead_letters(stack)
    assert dead["event_id"] == placed.id
    assert all(Listener.received[event_id] == 1 for event_id in later)
    assert undelivered(stack) == 1  # only the dead letter


def test_events_are_written_in_the_same_transaction_as_the_change(stack) -> None:  # type: ignore[no-untyped-def]
    from retailblocks.errors import OutOfStock

    with pytest.raises(OutOfStock):
        stack.checkout(cart(("BEANS", 50), channel="market"), key="e4")
    types = [e.type for e in read_events(stack, limit=10_000)]
    # The rejected reservation left no stock.reserved behind it: it rolled back with the step.
    assert "stock.reserved" not in types and "order.rejected" in types


def _record(connection: sa.Connection, event_type: str) -> int:
    """Insert one event as a flow's unit of work does, in the caller's open transaction; its id."""
    return int(
        connection.execute(
            outbox.insert()
            .values(type=event_type, source="test", payload={}, occurred_at=datetime.now(UTC))
            .returning(outbox.c.id)
        ).scalar_one()
    )


@pytest.mark.postgres
def test_an_event_whose_transaction_commits_after_a_newer_ones_is_still_delivered(stack) -> None:  # type: ignore[no-untyped-def]
    """Outbox ids are taken at insert, not at commit: here the event holding the smaller id commits last.
    A reader that moved its cursor past the larger id as soon as it was visible would never deliver the
    smaller one."""
    if stack.engine.dialect.name != "postgresql":
        pytest.skip("SQLite commits one writer at a time: ids are committed in order there")
    stack.dispatch_events()
    with stack.engine.connect() as late, stack.engine.connect() as early:
        late.begin()
        late.exec_driver_sql("SELECT pg_current_xact_id()")  # the later committer's transaction is the older one
        early.begin()
        smaller = _record(early, "test.committed_last")
        larger = _record(late, "test.committed_first")
        late.commit()
        assert smaller < larger
        stack.dispatch_events()
        assert Listener.received[larger] == 1 and smaller not in Listener.received
        early.commit()
    stack.dispatch_events()
    assert Listener.received[smaller] == 1 and Listener.received[larger] == 1
    assert undelivered(stack) == 0


@pytest.mark.postgres
def test_a_running_transaction_holds_delivery_back_but_never_makes_it_skip(stack) -> None:  # type: ignore[no-untyped-def]
    if stack.engine.dialect.name != "postgresql":
        pytest.skip("SQLite commits one writer at a time")
    stack.dispatch_events()
    with stack.engine.connect() as early, stack.engine.connect() as late:
        early.begin()
        smaller = _record(early, "test.slow")
        late.begin()
        larger = _record(late, "test.fast")
        late.commit()
        stack.dispatch_events()
        # The newer transaction's event waits for the older one, which may still commit before it in order.
        assert smaller not in Listener.received and larger not in Listener.received
        assert undelivered(stack) >= 1
        early.rollback()
    stack.dispatch_events()
    assert smaller not in Listener.received and Listener.received[larger] == 1
    assert undelivered(stack) == 0
