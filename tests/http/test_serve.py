"""`blocks serve` for real: worker processes sharing one database, reached over TCP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from retailblocks.simulation.invariants import check_invariants, stock_snapshot
from retailblocks.stack import assemble
from tests.helpers import CARD_OK, SHOP_MANIFEST, receive, write_manifest
from tests.http.conftest import ADMIN_KEY, API_SECTION, KEYS_ENV, WEB_KEY

WORKERS = 4
UNITS = 50
CHECKOUTS = 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    manifest = write_manifest(tmp_path, database_url, textwrap.dedent(SHOP_MANIFEST) + API_SECTION)
    environ = {**os.environ, **KEYS_ENV}
    blocks = [sys.executable, "-m", "retailblocks.cli"]
    subprocess.run([*blocks, "assemble", "-m", str(manifest)], env=environ, check=True, capture_output=True)
    with assemble(manifest, environ=KEYS_ENV) as stack:
        receive(stack, {"BEANS": UNITS}, locations=("dc",))
    port = _free_port()
    server = subprocess.Popen(
        [*blocks, "serve", "-m", str(manifest), "--port", str(port), "--workers", str(WORKERS)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert server.poll() is None, server.communicate(timeout=5)
            time.sleep(0.3)
        else:
            pytest.fail("blocks serve did not become ready in 90 s")
        yield base, manifest, server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    assert server.returncode == 0


def _order(base: str, key: str) -> httpx2.Response:
    body: dict[str, Any] = {
        "lines": [{"sku": "BEANS", "quantity": 1}],
        "payments": [{"method": "card", "details": {"card_number": CARD_OK}}],
        "fulfilment": {"kind": "carry_out"},
    }
    headers = {"Authorization": f"Bearer {WEB_KEY}", "Idempotency-Key": key}
    return httpx2.post(f"{base}/store/orders", json=body, headers=headers, timeout=120)


def test_two_hundred_checkouts_for_fifty_units_sell_exactly_fifty(served: tuple[str, Path]) -> None:
    base, manifest, _server = served
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda n: _order(base, f"race-{n}"), range(CHECKOUTS)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == UNITS, sorted(set(statuses))
    assert statuses.count(409) == CHECKOUTS - UNITS
    assert all(r.json()["type"].endswith("out-of-stock") for r in responses if r.status_code == 409)
    with assemble(manifest, environ=KEYS_ENV) as stack:
        placed = [o for o in stack.orders() if o.status.value != "failed"]
        assert len(placed) == UNITS
        assert stack.availability("web", ["BEANS"]).sellable["BEANS"] == 0
    # Whichever worker answers the scrape reports every worker's requests (a shared multiprocess directory).
    scraped = httpx2.get(f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert scraped.status_code == 200
    answered = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "retailblocks_http_requests_total" and sample.labels["route"] == "/store/orders"
    }
    assert answered == {"201": UNITS, "409": CHECKOUTS - UNITS}


def test_one_key_sent_twenty_times_at_once_is_one_order_and_one_charge(served: tuple[str, Path]) -> None:
    base, manifest, _server = served
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _n: _order(base, "the-same-key"), range(20)))
    done = [r for r in responses if r.status_code == 201]
    assert done, [r.status_code for r in responses]
    assert {r.json()["id"] for r in done} == {done[0].json()["id"]}
    # The others heard "still in progress" (409) or the first answer replayed; nothing else.
    assert {r.status_code for r in responses} <= {201, 409}
    with assemble(manifest, environ=KEYS_ENV) as stack:
        (order,) = stack.orders()
        assert [p.status.value for p in stack.order(order.id).payments] == ["captured"]


def test_a_worker_killed_during_a_load_run_leaves_every_invariant_true_after_recovery(
    served: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base, manifest, server = served
    with assemble(manifest, environ=KEYS_ENV) as stack:
        before = stock_snapshot(stack)
    answered: list[int] = []

    def shop(n: int) -> None:
        try:
            answered.append(_order(base, f"load-{n}").status_code)
        except httpx2.TransportError:
            answered.append(0)  # the worker serving it was killed mid-request

    with ThreadPoolExecutor(max_workers=16) as pool:
        running = [pool.submit(shop, n) for n in range(120)]
        deadline = time.monotonic() + 60
        while len(answered) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert workers, "blocks serve runs no worker process"
        os.kill(int(workers[0]), signal.SIGKILL)
        killed_after = len(answered)
        for future in running:
            future.result(timeout=300)
    assert killed_after < 120, "the worker was killed after the load run, not during it"
    assert set(answered) <= {0, 201, 409, 503}, sorted(set(answered))
    with assemble(manifest, environ=KEYS_ENV) as stack:
        stack.recover(ignore_leases=True)
        stack.dispatch_events()
        broken = [f"{i.name}: {i.detail}" for i in check_invariants(stack, before, stack.orders()) if not i.ok]
        assert broken == []
