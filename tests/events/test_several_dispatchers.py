"""Several dispatcher processes on one outbox: each subscriber is delivered by one process at a time,
every event reaches every listener, and the events of one order arrive in the order they were written."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retailblocks.clock import ManualClock
from retailblocks.events import read_events
from retailblocks.events.dispatcher import LEASE, dispatch, undelivered
from retailblocks.events.leases import ensure, hold, release
from retailblocks.flows.audit import audit_flows
from retailblocks.flows.capabilities import block_findings
from retailblocks.fusion.statements import audit_statements
from retailblocks.hookspecs import lifecycle
from retailblocks.stack import Stack, assemble
from retailblocks.storage import UnitOfWork
from tests.events.dispatching_process import BLOCKS, RECORDERS, Recorder, installed, open_stack
from tests.helpers import SHOP_MANIFEST, cart, receive, write_manifest

ROOT = Path(__file__).resolve().parents[2]
STRESS = os.environ.get("RETAILBLOCKS_STRESS") == "1"
MANIFEST = SHOP_MANIFEST.replace("routing:", BLOCKS + "routing:")


def audit(stack: Stack) -> list[str]:
    """What ``blocks audit`` would report as not holding."""
    findings = [*audit_flows(stack), *audit_statements(stack)]
    with stack.context(flow="audit", read_only=True) as ctx:
        findings += [finding for _block, finding in block_findings(stack.hooks, ctx)]
    return [f"{finding.name}: {finding.detail}" for finding in findings if not finding.ok]


def run_dispatchers(tmp_path: Path, database_url: str, *, processes: int, orders: int) -> list[dict[str, Any]]:
    """Start ``processes`` dispatcher processes, place ``orders`` orders while they run, stop them, check
    what every delivery recorded; returns the deliveries."""
    manifest = write_manifest(tmp_path, database_url, MANIFEST)
    out = tmp_path / "deliveries"
    out.mkdir()
    stop = tmp_path / "stop"
    with open_stack(manifest) as stack:
        receive(stack, {"BEANS": orders * 2, "MUG": orders})
        dispatchers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.events.dispatching_process", str(manifest), str(out), str(stop)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        try:
            wait_until_ready(out, dispatchers)
            for n in range(orders):
                placed = stack.checkout(cart(("BEANS", 1 + n % 2), ("MUG", 1), channel="market"), key=f"several-{n}")
                if n % 4 == 3:
                    stack.cancel(placed.id, key=f"cancel-{n}")
        finally:
            stop.write_text("stop", encoding="utf-8")
            outcomes = [dispatcher.communicate(timeout=300) for dispatcher in dispatchers]
        for dispatcher, (stdout, stderr) in zip(dispatchers, outcomes, strict=True):
            assert dispatcher.returncode == 0, stderr[-3000:]
            assert json.loads(stdout.strip().splitlines()[-1])["rounds"] >= 1

        deliveries = [
            json.loads(line)
            for path in sorted(out.glob("deliveries-*.jsonl"))
            for line in path.read_text().splitlines()
        ]
        events = read_events(stack, limit=1_000_000)
        # Every event reached every listener (the cursors are past it, nothing failed), the recorders saw it.
        assert undelivered(stack) == 0
        for recorder in RECORDERS:
            seen = {d["event"] for d in deliveries if d["subscriber"] == recorder}
            assert seen == {event.id for event in events}, recorder
        assert_no_overlap(deliveries)
        assert_in_order_per_order(deliveries, events)
        assert audit(stack) == []
    return deliveries


def wait_until_ready(out: Path, dispatchers: list[subprocess.Popen[str]]) -> None:
    """Until every dispatcher has assembled its stack and is about to deliver (or one has failed)."""
    while len(list(out.glob("ready-*"))) < len(dispatchers):
        if any(dispatcher.poll() is not None for dispatcher in dispatchers):
            return  # it failed: its output is checked below
        time.sleep(0.05)


def assert_no_overlap(deliveries: list[dict[str, Any]]) -> None:
    """No two deliveries to one subscriber were running at the same time, in any two processes."""
    by_subscriber: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for delivery in deliveries:
        by_subscriber[delivery["subscriber"]].append(delivery)
    for subscriber, found in by_subscriber.items():
        found.sort(key=lambda d: d["start"])
        for before, after in itertools.pairwise(found):
            assert after["start"] >= before["end"], (subscriber, before, after)


def assert_in_order_per_order(deliveries: list[dict[str, Any]], events: list[Any]) -> None:
    """Each listener received each order's events once, in the order they were written."""
    written: dict[str, list[int]] = defaultdict(list)
    for event in events:
        if event.order_id:
            written[event.order_id].append(event.id)
    for recorder in RECORDERS:
        received: dict[str, list[int]] = defaultdict(list)
        for delivery in sorted(deliveries, key=lambda d: d["start"]):
            if delivery["subscriber"] == recorder and delivery["order"]:
                received[delivery["order"]].append(delivery["event"])
        assert received == written, recorder


@pytest.mark.parametrize("dispatchers", [3])
def test_three_dispatcher_processes_deliver_everything_once_in_order(
    tmp_path: Path, database_url: str, dispatchers: int
) -> None:
    run_dispatchers(tmp_path, database_url, processes=dispatchers, orders=12)


@pytest.mark.slow
@pytest.mark.skipif(not STRESS, reason="set RETAILBLOCKS_STRESS=1 for the long version")
def test_stress_three_dispatcher_processes_while_many_orders_are_placed(tmp_path: Path, database_url: str) -> None:
    deliveries = run_dispatchers(tmp_path, database_url, processes=3, orders=150)
    # Not promised, shown: how the work was shared between the processes.
    shares = defaultdict(int)
    for delivery in deliveries:
        shares[(delivery["pid"], delivery["subscriber"])] += 1
    print(dict(shares))


# -- the lease itself --------------------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    Recorder.log = None
    lease_clock = ManualClock()
    the_stack = assemble(
        write_manifest(tmp_path, database_url, MANIFEST),
        clock=ManualClock(),
        lease_clock=lease_clock,
        installed=installed(),
    )
    receive(the_stack, {"BEANS": 5})
    the_stack.checkout(cart(("BEANS", 1), channel="market"), key="lease-1")
    yield the_stack
    the_stack.close()


def test_a_subscriber_leased_to_another_dispatcher_is_skipped_until_its_lease_runs_out(stack: Stack) -> None:
    ensure(stack.engine, ["recorder-a"], stack.lease_clock.now())
    with UnitOfWork(stack.engine) as uow:
        assert hold(uow.connection, "recorder-a", "a-dead-process", stack.lease_clock.now(), LEASE)
    subscribers = len(stack.hooks.implementers(lifecycle.stack_event))
    events = len(read_events(stack, limit=10_000))

    skipped = dispatch(stack, wait=False)
    assert skipped.busy == 1 and skipped.delivered == events * (subscribers - 1)
    assert undelivered(stack) == events  # recorder-a's, left to the lease's holder

    stack.lease_clock.advance(LEASE + timedelta(seconds=1))  # the holder never renewed: it died
    taken_over = dispatch(stack, wait=False)
    assert taken_over.busy == 0 and taken_over.delivered == events and undelivered(stack) == 0


def test_a_lease_is_renewed_by_its_holder_and_released_after_the_round(stack: Stack) -> None:
    now = stack.lease_clock.now()
    ensure(stack.engine, ["recorder-a"], now)
    with UnitOfWork(stack.engine) as uow:
        assert hold(uow.connection, "recorder-a", "first", now, LEASE)
    with UnitOfWork(stack.engine) as uow:
        assert not hold(uow.connection, "recorder-a", "second", now + LEASE / 2, LEASE)
        assert hold(uow.connection, "recorder-a", "first", now + LEASE / 2, LEASE)  # renewed
    with UnitOfWork(stack.engine) as uow:
        assert not hold(uow.connection, "recorder-a", "second", now + LEASE, LEASE)  # still first's
    stack.lease_clock.advance(LEASE * 2)
    dispatch(stack, wait=False)  # the lapsed lease is taken over, then released at the end of the round
    with UnitOfWork(stack.engine) as uow:
        assert hold(uow.connection, "recorder-a", "second", stack.lease_clock.now(), LEASE)


@pytest.mark.postgres
def test_a_subscriber_whose_lease_row_is_locked_is_skipped_without_waiting(stack: Stack) -> None:
    if stack.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a second one waits for the database, not for a row")
    events = len(read_events(stack, limit=10_000))
    ensure(stack.engine, ["recorder-a"], stack.lease_clock.now())
    with UnitOfWork(stack.engine) as uow:  # a dispatcher in the middle of a batch
        assert hold(uow.connection, "recorder-a", "busy-now", stack.lease_clock.now(), LEASE)
        # Even once its lease has run out on the clock, the holder's open transaction keeps it.
        stack.lease_clock.advance(LEASE * 2)
        report = dispatch(stack, wait=False)
        assert report.busy == 1
        with stack.engine.connect() as connection:
            cursor = connection.execute(
                sa.text("SELECT last_event_id FROM event_cursors WHERE subscriber = 'recorder-a'")
            ).scalar()
        assert cursor in (None, 0)
    assert dispatch(stack, wait=False).delivered == events


def test_a_report_waits_for_a_subscriber_another_dispatcher_is_delivering(stack: Stack) -> None:
    """dispatch() without wait=False returns once every listener has what was committed before the call."""
    ensure(stack.engine, ["recorder-a"], stack.lease_clock.now())
    with UnitOfWork(stack.engine) as uow:
        assert hold(uow.connection, "recorder-a", "another-dispatcher", stack.lease_clock.now(), LEASE)
    events = len(read_events(stack, limit=10_000))
    outcome: list[Any] = []
    waiting = threading.Thread(target=lambda: outcome.append(dispatch(stack)))
    waiting.start()
    waiting.join(timeout=0.5)
    assert waiting.is_alive() and undelivered(stack) == events  # waits: recorder-a has not had them yet
    with UnitOfWork(stack.engine) as uow:  # the other dispatcher finishes its round and lets go
        release(uow.connection, "recorder-a", "another-dispatcher", stack.lease_clock.now())
    waiting.join(timeout=60)
    [report] = outcome
    assert report.busy == 0 and undelivered(stack) == 0
