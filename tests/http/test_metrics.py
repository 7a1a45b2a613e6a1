"""/metrics: Prometheus figures for an admin key with metrics:read; bounded labels, nothing secret."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from retailblocks.cli.serve_commands import _shared_metrics
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.http import create_app
from retailblocks.http.metrics import MULTIPROC_ENV
from retailblocks.stack import Stack, assemble
from retailblocks.storage.tables import event_failures
from tests.helpers import CARD_DECLINED, CARD_OK, SHOP_MANIFEST, receive, write_manifest
from tests.http.conftest import ADMIN_KEY, API_SECTION, KEYS_ENV, SESSION_SECRET, WEB_KEY, bearer

METRICS_KEY = "rb_sk_prometheus_0123456789abcdefg"
ORDERS_KEY = "rb_sk_orders_reader_0123456789abcd"
ENV = {**KEYS_ENV, "METRICS_KEY": METRICS_KEY, "ORDERS_KEY": ORDERS_KEY}
EXTRA_KEYS = """\
    - {id: prometheus, scopes: ["metrics:read"], key: "${METRICS_KEY}"}
    - {id: orders-reader, scopes: ["orders:read"], key: "${ORDERS_KEY}"}
"""
TIMES_OUT_NOT_AUTHORIZED = "4000000000000127"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def manifest_text() -> str:
    return textwrap.dedent(SHOP_MANIFEST) + API_SECTION + EXTRA_KEYS


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    manifest = write_manifest(tmp_path, database_url, manifest_text())
    with assemble(manifest, clock=clock, ids=RandomIds(0), lease_clock=clock, environ=ENV) as running:
        receive(running, dict.fromkeys(running.catalog, 10), locations=("dc", "store-a"))
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack, recover_on_start=False), raise_server_exceptions=False) as test_client:
        yield test_client


def scrape(client: TestClient, key: str = METRICS_KEY) -> Samples:
    response = client.get("/metrics", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def order(client: TestClient, key: str, card: str = CARD_OK) -> Any:
    body = {
        "lines": [{"sku": "BEANS", "quantity": 1}],
        "payments": [{"method": "card", "details": {"card_number": card}}],
        "fulfilment": {"kind": "pickup", "pickup_location": "store-a"},
    }
    return client.post("/store/orders", json=body, headers={**bearer(WEB_KEY), "Idempotency-Key": key})


def test_only_an_admin_key_with_the_metrics_scope_may_scrape(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer("rb_sk_wrong_0123456789abcdefghijk")).status_code == 401
    store_key = client.get("/metrics", headers=bearer(WEB_KEY))
    assert store_key.status_code == 403
    assert store_key.headers["content-type"] == "application/problem+json"
    assert client.get("/metrics", headers=bearer(ORDERS_KEY)).status_code == 403
    assert client.get("/metrics", headers=bearer(METRICS_KEY)).status_code == 200
    assert client.get("/metrics", headers=bearer(ADMIN_KEY)).status_code == 200


def test_requests_are_counted_by_route_template_never_by_raw_path(client: TestClient) -> None:
    before = scrape(client)
    for _ in range(3):
        assert client.get("/store/orders/ord_secretive_id_42", headers=bearer(WEB_KEY)).status_code == 404
    assert client.get("/no/such/path/ord_other_id_43").status_code == 404
    assert client.get("/store/catalog", headers=bearer(WEB_KEY)).status_code == 200
    assert client.get("/admin/orders", headers=bearer(ADMIN_KEY)).status_code == 200
    response = client.get("/metrics", headers=bearer(METRICS_KEY))
    after = parse(response.text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "retailblocks_http_requests_total"
    assert grew(requests, method="GET", route="/store/orders/{order_id}", status="404") == 3
    assert grew(requests, method="GET", route="unmatched", status="404") == 1
    assert grew(requests, method="GET", route="/store/catalog", status="200") == 1
    # The full template, not the path within the admin router ("/orders").
    assert grew(requests, method="GET", route="/admin/orders", status="200") == 1
    assert grew("retailblocks_http_request_duration_seconds_count", method="GET", route="/store/catalog") == 1
    assert grew("retailblocks_http_request_duration_seconds_bucket", method="GET", route="/store/catalog", le="+Inf")
    assert "ord_secretive_id_42" not in response.text and "ord_other_id_43" not in response.text
    routes = {dict(labels).get("route") for (_name, labels) in after}
    assert not any(route and "ord_" in route for route in routes)


def test_checkouts_by_outcome_match_the_orders(client: TestClient, stack: Stack) -> None:
    assert order(client, "ok-1").status_code == 201
    assert order(client, "ok-2").status_code == 201
    assert order(client, "declined", card=CARD_DECLINED).status_code == 402
    samples = scrape(client)
    expected: dict[str, int] = {}
    for placed in stack.orders():
        expected[placed.status.value] = expected.get(placed.status.value, 0) + 1
    assert sum(expected.values()) >= 2
    for outcome, count in expected.items():
        assert value(samples, "retailblocks_checkouts", outcome=outcome) == count
    assert value(samples, "retailblocks_checkouts", outcome="refunded") == 0  # every outcome is always there


def test_outbox_lag_dead_letters_and_webhook_failures(client: TestClient, stack: Stack) -> None:
    assert order(client, "ok-1").status_code == 201
    assert value(scrape(client), "retailblocks_outbox_lag_events") > 0
    stack.dispatch_events()
    samples = scrape(client)
    assert value(samples, "retailblocks_outbox_lag_events") == 0
    assert value(samples, "retailblocks_dead_letters") == 0
    assert value(samples, "retailblocks_webhook_failures", state="dead") == 0
    [first, second, *_] = [event.id for event in stack.events()]
    now = stack.clock.now()
    failure = {"attempts": 1, "next_attempt_at": now, "last_error": "HTTP 500", "delivered_at": None}
    with stack.engine.begin() as connection:
        connection.execute(
            sa.insert(event_failures),
            [
                {**failure, "event_id": first, "subscriber": "webhook:crm", "dead": True},
                {**failure, "event_id": second, "subscriber": "webhook:crm", "dead": False},
                {**failure, "event_id": second, "subscriber": "loyalty", "dead": True},
                {**failure, "event_id": first, "subscriber": "webhook:erp", "dead": False, "delivered_at": now},
            ],
        )
    samples = scrape(client)
    assert value(samples, "retailblocks_webhook_failures", state="dead") == 1
    assert value(samples, "retailblocks_webhook_failures", state="retrying") == 1
    assert value(samples, "retailblocks_dead_letters") == 2


def test_unfinished_and_recovered_flows(client: TestClient, stack: Stack) -> None:
    # A checkout whose authorization timed out is left running for recovery.
    assert order(client, "timeout", card=TIMES_OUT_NOT_AUTHORIZED).status_code == 402
    samples = scrape(client)
    assert value(samples, "retailblocks_flows_unfinished", flow="checkout", status="running") == 1
    assert value(samples, "retailblocks_flows_recovered", flow="checkout", status="compensated") == 0
    stack.clock.advance(stack.lease + timedelta(seconds=1))  # type: ignore[attr-defined]
    assert len(stack.recover().compensated) == 1
    samples = scrape(client)
    assert value(samples, "retailblocks_flows_unfinished", flow="checkout", status="running") == 0
    assert value(samples, "retailblocks_flows_recovered", flow="checkout", status="compensated") == 1


def test_no_key_or_secret_in_any_metric(client: TestClient) -> None:
    order(client, "ok-1")
    client.get("/store/catalog", headers=bearer(WEB_KEY))
    client.get("/store/catalog", headers=bearer("rb_pk_guessed_0123456789abcdefgh"))
    client.get("/metrics", headers=bearer(ORDERS_KEY))
    text = client.get("/metrics", headers=bearer(METRICS_KEY)).text
    for secret in (*ENV.values(), SESSION_SECRET, "sk_test_core_tests", "rb_pk_guessed_0123456789abcdefgh"):
        assert secret not in text
    assert "rb_" not in text and "Bearer" not in text
    labels = {name for family in text_string_to_metric_families(text) for s in family.samples for name in s.labels}
    assert labels <= {"method", "route", "status", "le", "outcome", "flow", "state"}


_WORKER = """
import sys
from fastapi.testclient import TestClient
from retailblocks.http import create_app
from retailblocks.stack import assemble
manifest, environ, action = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[3:]), sys.argv[2]
with assemble(manifest, environ=environ) as stack, TestClient(create_app(stack, recover_on_start=False)) as client:
    if action == "serve":
        for _ in range(5):
            client.get("/store/catalog", headers={"Authorization": "Bearer " + environ["WEB_KEY"]})
    else:
        print(client.get("/metrics", headers={"Authorization": "Bearer " + environ["METRICS_KEY"]}).text)
"""


def test_workers_share_their_counts_through_the_multiprocess_directory(tmp_path: Path, database_url: str) -> None:
    """Two worker processes: what one counted, the other's scrape reports (prometheus_client's multiprocess
    mode, as ``blocks serve --workers N`` sets it up)."""
    manifest = write_manifest(tmp_path, database_url, manifest_text())
    with assemble(manifest, environ=ENV):
        pass
    with _shared_metrics(workers=2):
        directory = Path(os.environ[MULTIPROC_ENV])
        assert directory.is_dir()
        environ = {**os.environ}
        arguments = [f"{name}={secret}" for name, secret in ENV.items()]

        def worker(action: str) -> str:
            done = subprocess.run(
                [sys.executable, "-c", _WORKER, str(manifest), action, *arguments],
                env=environ,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            return done.stdout

        worker("serve")
        worker("serve")
        samples = parse(worker("scrape"))
    assert value(samples, "retailblocks_http_requests_total", method="GET", route="/store/catalog", status="200") == 10
    # The serving command's directory is gone once it stops, and so is the variable.
    assert not directory.exists()
    assert MULTIPROC_ENV not in os.environ


def test_one_worker_needs_no_shared_directory() -> None:
    with _shared_metrics(workers=1):
        assert MULTIPROC_ENV not in os.environ
