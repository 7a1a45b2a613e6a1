"""The stack through PgBouncer in transaction mode: nothing rests on session state.

Each transaction may run on another server connection, so a session ``SET`` or a statement prepared on
the server by an earlier transaction may be missing. These tests run checkouts from several threads, a
recovery, the listeners' dispatchers (three processes) and webhook delivery through the pooler that
``.ci/start-pgbouncer.sh`` starts, and check the invariants afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from retailblocks.clock import ManualClock
from retailblocks.errors import InvalidInput, OutOfStock
from retailblocks.flows.saga import SimulatedCrash
from retailblocks.http import create_app
from retailblocks.model import OrderStatus
from retailblocks.stack import assemble
from retailblocks.storage.engine import LOCK_TIMEOUT_MS, create_engine
from retailblocks.testing.databases import fresh_database, postgres_server_url
from tests.events.test_several_dispatchers import audit, run_dispatchers
from tests.helpers import SHOP_MANIFEST, cart, receive, write_manifest
from tests.http.conftest import api_stack
from tests.http.test_store_api import cart_body, place
from tests.webhook_receiver import ENV, SECRET, Receiver, order_event_ids, webhooks_section

PGBOUNCER_ENV = "RETAILBLOCKS_TEST_PGBOUNCER_URL"
REQUIRE_ENV = "RETAILBLOCKS_REQUIRE_PGBOUNCER"


@pytest.fixture
def bouncer_url(tmp_path: Path) -> Iterator[str]:
    """A fresh database on the test server (made directly), and the URL that reaches it through PgBouncer."""
    bouncer = os.environ.get(PGBOUNCER_ENV)
    if not bouncer or postgres_server_url() is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {PGBOUNCER_ENV} or the PostgreSQL server URL is not set")
        pytest.skip(f'set {PGBOUNCER_ENV} (eval "$(bash .ci/start-pgbouncer.sh)") to run the PgBouncer tests')
    with fresh_database("postgresql", tmp_path) as direct:
        name = sa.make_url(direct).database
        yield sa.make_url(bouncer).set(database=name).render_as_string(hide_password=False)


def test_a_pool_mode_other_than_session_or_transaction_is_refused_with_its_name() -> None:
    with pytest.raises(InvalidInput, match="pool_mode must be one of session, transaction"):
        create_engine("postgresql+psycopg://app:hunter2@db.example.com/shop?pool_mode=statement")


def test_every_transaction_has_the_lock_timeout_whichever_server_connection_it_runs_on(bouncer_url: str) -> None:
    engine = create_engine(bouncer_url, pool_size=8)
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def transaction() -> None:
        with engine.connect() as connection:
            barrier.wait(timeout=30)  # eight client connections at once: several server connections
            for n in range(12):  # past psycopg's prepare threshold: nothing may be prepared on the server
                connection.execute(sa.text("SELECT :n + 1"), {"n": n})
            seen.append(str(connection.execute(sa.text("SHOW lock_timeout")).scalar()))
            connection.commit()

    try:
        with ThreadPoolExecutor(8) as pool:
            for outcome in [pool.submit(transaction) for _ in range(8)]:
                outcome.result()
        # A session SET sent outside any transaction lands on one server connection only, and not for long.
        with engine.connect() as connection:
            shown = str(connection.execute(sa.text("SHOW lock_timeout")).scalar())
    finally:
        engine.dispose()
    assert seen == [f"{LOCK_TIMEOUT_MS // 1000}s"] * 8 and shown == f"{LOCK_TIMEOUT_MS // 1000}s"


def test_checkouts_from_several_threads_neither_oversell_nor_break_an_invariant(
    tmp_path: Path, bouncer_url: str
) -> None:
    manifest = write_manifest(tmp_path, bouncer_url)
    with assemble(manifest, clock=ManualClock()) as stack:
        receive(stack, {"BEANS": 20, "MUG": 100})

        def buy(n: int) -> bool:
            try:
                stack.checkout(cart(("BEANS", 1 + n % 2), ("MUG", 1), channel="market"), key=f"bouncer-{n}")
            except OutOfStock:
                return False
            return True

        with ThreadPoolExecutor(6) as pool:
            placed = sum(pool.map(buy, range(30)))
        fulfilled = stack.orders(status="fulfilled")
        sold = sum(line.quantity for order in fulfilled for line in order.lines if line.sku == "BEANS")
        assert 0 < placed < 30 and sold <= 20
        assert len(fulfilled) == placed
        stack.dispatch_events()
        assert audit(stack) == []


def test_a_checkout_crashed_half_way_is_finished_by_recovery(tmp_path: Path, bouncer_url: str) -> None:
    manifest = write_manifest(tmp_path, bouncer_url)
    with assemble(manifest, clock=ManualClock()) as stack:
        receive(stack, {"BEANS": 10})
        stack.flows.faults.arm("checkout", "capture", "after")
        with pytest.raises(SimulatedCrash):
            stack.checkout(cart(("BEANS", 2), channel="market"), key="crashed")
        stack.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
        report = stack.recover(ignore_leases=True)
        assert not report.stuck, report
        [order] = stack.orders()
        assert order.status is OrderStatus.FULFILLED
        stack.dispatch_events()
        assert audit(stack) == []


def test_three_dispatcher_processes_through_pgbouncer(tmp_path: Path, bouncer_url: str) -> None:
    run_dispatchers(tmp_path, bouncer_url, processes=3, orders=8)


def test_webhooks_are_delivered_in_order_through_pgbouncer(tmp_path: Path, bouncer_url: str) -> None:
    clock = ManualClock()
    receiver = Receiver(SECRET, clock.now)
    try:
        manifest = write_manifest(tmp_path, bouncer_url, SHOP_MANIFEST + webhooks_section(receiver.url))
        with assemble(manifest, clock=clock, environ=ENV) as stack:
            receive(stack, {"BEANS": 10})
            for n in range(4):
                stack.checkout(cart(("BEANS", 1), channel="market"), key=f"hook-{n}")
            receiver.script = ["ok", "fail"]
            for _ in range(10):
                stack.deliver_webhooks()
                clock.advance(timedelta(minutes=5))
            assert receiver.accepted("/erp") == order_event_ids(stack)
            assert stack.delivery_failures() == []
    finally:
        receiver.down()


def test_http_idempotency_claims_replays_and_refuses_through_pgbouncer(tmp_path: Path, bouncer_url: str) -> None:
    """The HTTP layer's idempotency row through a transaction-mode pooler: claimed and stored by prepared
    statements, a reused key replays, and a reused key with another body is 422."""
    with api_stack(tmp_path, bouncer_url) as stack, TestClient(create_app(stack)) as client:
        body = cart_body(("BEANS", 1))
        first = place(client, body, "bouncer-order")
        assert first.status_code == 201, first.text
        again = place(client, body, "bouncer-order")
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert place(client, cart_body(("BEANS", 2)), "bouncer-order").status_code == 422
        assert len(stack.orders()) == 1
