"""Complete store-API checkouts over HTTP against ``blocks serve``, beside the in-process rate, in one run.

Usage::

    uv run python benchmarks/http_checkout.py [--orders N] [--workers 1,2,4] [--clients C]
                                              [--database sqlite|postgresql|both] [--json]
                                              [--pgbouncer URL] [--threads T]

For each database and each number of server workers, the benchmark

1. assembles a fresh stack (every reference block, the ``many-skus`` workload of checkout_throughput.py)
   with plenty of stock, and measures ``stack.checkout`` in this process on its own copy: the floor;
2. starts ``blocks serve --workers W`` on that database and has ``C`` client processes each run its share
   of the same carts as a shopper's app would: ``POST /store/quotes``, then ``POST /store/orders`` with an
   Idempotency-Key — one complete checkout;
3. prints complete checkouts per second, p50 and p99 latency of a complete checkout, and the ratio of the
   HTTP rate to the in-process rate measured in the same run (the goal: at least 0.7).

Nothing is asserted: the machine is shared, so only ratios within one run mean anything. PostgreSQL is the
server named by RETAILBLOCKS_BENCH_POSTGRES_URL (default: the CI server on 127.0.0.1:54329).

With ``--pgbouncer URL`` (a PgBouncer in front of that server, e.g. the one ``.ci/start-pgbouncer.sh``
starts: ``postgresql+psycopg://postgres@127.0.0.1:64329/postgres?pool_mode=transaction``), the servers of
the PostgreSQL runs reach their database through it (same database name); the databases are still made,
and the in-process floor still measured, on the server directly. Run once with and once without it to
compare checkouts through the pooler with direct connections.

With ``--threads T`` each server worker runs at most T requests at once (``blocks serve --threads``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import sqlalchemy as sa
import yaml
from checkout_throughput import (
    DEFAULT_POSTGRES_URL,
    LOCATIONS,
    POSTGRES_URL_ENV,
    WORKLOADS,
    PostgresDatabases,
    SqliteDatabases,
    carts_for,
    manifest_data,
)

from retailblocks import assemble
from retailblocks.hookspecs import inventory
from retailblocks.model import Cart

STORE_KEY = "rb_pk_bench_0123456789abcdefghijk"
STOCK = 1_000_000
GOAL = 0.7


def cart_document(cart: Cart) -> dict[str, Any]:
    """The store API's document for a model cart (the channel comes from the key)."""
    fulfilment: dict[str, Any] = {"kind": cart.fulfilment.kind.value}
    if cart.fulfilment.address is not None:
        address = cart.fulfilment.address
        fulfilment["address"] = {"country": address.country, "region": address.region}
    return {
        "lines": [{"sku": line.sku, "quantity": line.quantity} for line in cart.lines],
        "payments": [{"method": p.method, "details": dict(p.details)} for p in cart.payments],
        "identities": [{"kind": i.kind.value, "value": i.value} for i in cart.identities],
        "fulfilment": fulfilment,
        "coupons": list(cart.coupons),
    }


def write_manifest(directory: Path, url: str) -> Path:
    data = manifest_data(url)
    data["api"] = {"keys": [{"id": "bench", "channel": "web", "key": "${BENCH_STORE_KEY}", "rate_per_minute": 10**6}]}
    path = directory / "blocks.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def stock_up(manifest: Path) -> None:
    with assemble(manifest, environ={"BENCH_STORE_KEY": STORE_KEY}) as stack, stack.context(flow="bench") as ctx:
        for sku in stack.catalog:
            for location in LOCATIONS:
                stack.hooks.call(
                    inventory.inventory_adjust, ctx, sku, location, STOCK, "received", f"stock-{sku}-{location}"
                )


def in_process_rate(manifest: Path, carts: Sequence[tuple[str, Cart]]) -> float:
    with assemble(manifest, environ={"BENCH_STORE_KEY": STORE_KEY}) as stack:
        started = time.perf_counter()
        for key, cart in carts:
            stack.checkout(cart, key=f"inproc-{key}")
        return len(carts) / (time.perf_counter() - started)


def _client(base: str, documents: list[tuple[str, dict[str, Any]]], ready: Any, start: Any, results: Any) -> None:
    # The load generator shares the two cores with the server it measures, so it is kept lean: the standard
    # library's keep-alive connection and bodies encoded before the clock starts. A general-purpose client
    # (httpx2 here) spent about 2.6 ms of CPU per complete checkout, a seventh of the machine's budget at the
    # goal rate, on work a load generator on its own machine would not take from the server.
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
    headers = {"Authorization": f"Bearer {STORE_KEY}", "Content-Type": "application/json"}
    bodies = [(key, json.dumps(document).encode()) for key, document in documents]
    latencies: list[float] = []
    failures = 0

    def post(path: str, body: bytes, extra: dict[str, str]) -> int:
        connection.request("POST", path, body=body, headers={**headers, **extra})
        response = connection.getresponse()
        response.read()
        return response.status

    connection.request("GET", "/healthz")  # connected before the clock starts
    connection.getresponse().read()
    ready.put(True)
    start.wait()
    began = time.time()
    for key, body in bodies:
        started = time.perf_counter()
        quoted = post("/store/quotes", body, {})
        ordered = post("/store/orders", body, {"Idempotency-Key": key})
        latencies.append(time.perf_counter() - started)
        failures += quoted != 200 or ordered != 201
    connection.close()
    results.put((latencies, failures, began, time.time()))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_run(
    manifest: Path, workers: int, clients: int, carts: Sequence[tuple[str, Cart]], threads: int | None = None
) -> dict[str, Any]:
    port = _free_port()
    environ = {**os.environ, "BENCH_STORE_KEY": STORE_KEY}
    blocks = [sys.executable, "-m", "retailblocks.cli"]
    limit = ["--threads", str(threads)] if threads is not None else []
    server = subprocess.Popen(
        [*blocks, "serve", "-m", str(manifest), "--port", str(port), "--workers", str(workers), *limit],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _ready(base):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("blocks serve did not start")
            time.sleep(0.3)
        documents = [(f"http-{workers}-{key}", cart_document(cart)) for key, cart in carts]
        shares = [documents[n::clients] for n in range(clients)]
        spawn = multiprocessing.get_context("spawn")
        results: Any = spawn.Queue()
        ready: Any = spawn.Queue()
        start = spawn.Event()
        processes = [spawn.Process(target=_client, args=(base, share, ready, start, results)) for share in shares]
        for process in processes:
            process.start()
        # The clock starts once every client has started, imported its HTTP client and connected: a client
        # still starting up would spend, inside the measured run, the CPU the server needs.
        for _ in processes:
            ready.get(timeout=120)
        start.set()
        gathered = [results.get(timeout=600) for _ in processes]
        elapsed = max(end for *_, end in gathered) - min(began for *_, began, _end in gathered)
        for process in processes:
            process.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    latencies = sorted(latency for part, *_ in gathered for latency in part)
    return {
        "workers": workers,
        "threads": threads,
        "clients": clients,
        "checkouts": len(latencies),
        "failures": sum(failures for _, failures, *_ in gathered),
        "per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def through(pooler: str, direct: str) -> str:
    """``direct``'s database reached through the pooler at ``pooler`` (its host, port, user and query)."""
    return sa.make_url(pooler).set(database=sa.make_url(direct).database).render_as_string(hide_password=False)


def _ready(base: str) -> bool:
    try:
        return httpx2.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx2.TransportError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--pgbouncer", metavar="URL", help="serve the PostgreSQL runs through this PgBouncer")
    parser.add_argument("--threads", type=int, help="requests each server worker runs at once (blocks serve --threads)")
    options = parser.parse_args(argv)
    workload = WORKLOADS[0]
    carts = carts_for(workload, options.orders, seed=7)
    kinds = ("sqlite", "postgresql") if options.database == "both" else (options.database,)
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as temporary:
        for kind in kinds:
            directory = Path(temporary) / kind
            directory.mkdir()
            databases: Any = (
                SqliteDatabases(directory)
                if kind == "sqlite"
                else PostgresDatabases(os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
            )
            try:
                for workers in [int(w) for w in options.workers.split(",")]:
                    floor_dir, served_dir = directory / f"floor-{workers}", directory / f"served-{workers}"
                    floor_dir.mkdir()
                    served_dir.mkdir()
                    floor_manifest = write_manifest(floor_dir, databases.copy(f"floor-{workers}"))
                    served_url = databases.copy(f"served-{workers}")
                    if kind == "postgresql" and options.pgbouncer:
                        served_url = through(options.pgbouncer, served_url)
                    served_manifest = write_manifest(served_dir, served_url)
                    for manifest in (floor_manifest, served_manifest):
                        subprocess.run(
                            [sys.executable, "-m", "retailblocks.cli", "assemble", "-m", str(manifest)],
                            env={**os.environ, "BENCH_STORE_KEY": STORE_KEY},
                            check=True,
                            capture_output=True,
                        )
                        stock_up(manifest)
                    floor = in_process_rate(floor_manifest, carts)
                    served = http_run(served_manifest, workers, options.clients, carts, options.threads)
                    label = f"{kind} via pgbouncer" if kind == "postgresql" and options.pgbouncer else kind
                    served.update(database=label, in_process_per_second=floor, ratio=served["per_second"] / floor)
                    report.append(served)
                    if not options.json:
                        print(
                            f"{label:10} workers={workers} threads={options.threads or 'default'} "
                            f"clients={options.clients}: "
                            f"{served['per_second']:7.1f} checkouts/s over HTTP (quote + order), "
                            f"p50 {served['p50_ms']:6.1f} ms, p99 {served['p99_ms']:6.1f} ms; "
                            f"in-process {floor:7.1f}/s; ratio {served['ratio']:.2f} (goal ≥ {GOAL}); "
                            f"failures {served['failures']}",
                            flush=True,
                        )
            finally:
                databases.close()
    if options.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
