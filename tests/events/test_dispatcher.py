"""The outbox: events written with the change, delivered at least once, retried, dead-lettered."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from retailblocks import Block, Event, hookimpl
from retailblocks.assembly.discovery import BlockInfo, discover
from retailblocks.clock import ManualClock
from retailblocks.events import read_events
from retailblocks.events.dispatcher import dead_letters, undelivered
from retailblocks.hookspecs import lifecycle
from retailblocks.stack import assemble
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


def test_a_failing_listener_is_retried_with_backoff_until_it_succeeds(stack) -> None:  # type: ignore[no-untyped-def]
    Listener.fail_times["order.placed"] = 2
    stack.checkout(cart(("BEANS", 1), channel="market"), key="e2")
    first = stack.dispatch_events()
    assert first.failed == 1 and undelivered(stack) == 1
    stack.clock.advance(timedelta(seconds=6))
    assert stack.dispatch_events().failed == 1
    stack.clock.advance(timedelta(seconds=11))
    assert stack.dispatch_events().delivered == 1
    placed = [e for e in read_events(stack, limit=10_000) if e.type == "order.placed"]
    assert Listener.received[placed[0].id] == 1 and undelivered(stack) == 0


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


def test_events_are_written_in_the_same_transaction_as_the_change(stack) -> None:  # type: ignore[no-untyped-def]
    from retailblocks.errors import OutOfStock

    with pytest.raises(OutOfStock):
        stack.checkout(cart(("BEANS", 50), channel="market"), key="e4")
    types = [e.type for e in read_events(stack, limit=10_000)]
    # The rejected reservation left no stock.reserved behind it: it rolled back with the step.
    assert "stock.reserved" not in types and "order.rejected" in types
