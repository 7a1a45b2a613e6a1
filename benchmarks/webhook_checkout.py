"""Checkout rate while webhooks are delivered beside it: no subscriber, a fast, a slow and a dead receiver.

Usage::

    uv run python benchmarks/webhook_checkout.py [--orders N] [--database sqlite|postgresql|both] [--json]

For each database and each receiver, on a fresh copy of the same seeded database, a stack with every reference
block (the ``many-skus`` workload of checkout_throughput.py) runs ``--orders`` checkouts one after the other
while a thread runs the delivery loop ``blocks serve`` runs (``deliver_webhooks_until``) for one webhook
subscribed to every event (``*``):

* ``none``: no webhook declared (the loop has nothing to do): the floor;
* ``fast``: a local receiver answering 200 at once, so deliveries run as fast as the database lets them;
* ``slow``: a receiver that takes 0.5 s per request (within the 2 s timeout);
* ``dead``: a closed port, every attempt refused (retried with backoff).

It prints checkouts per second and the ratio to ``none`` measured in the same run (the promise: a slow or
dead receiver never slows checkout, so about 1.0), and how many events were delivered meanwhile. Nothing is
asserted: the machine is shared, so only ratios within one run mean anything. PostgreSQL is the server named
by RETAILBLOCKS_BENCH_POSTGRES_URL (default: the CI server on 127.0.0.1:54329).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
from retailblocks.events.webhooks import deliver_webhooks_until
from retailblocks.hookspecs import inventory
from retailblocks.model import Cart

SECRET_ENV = {"BENCH_HOOK_SECRET": "bench-webhook-secret-0123456789"}
RECEIVERS = ("none", "fast", "slow", "dead")
SLOW_SECONDS = 0.5


@contextmanager
def receiver(kind: str) -> Iterator[str]:
    """The URL of a receiver of ``kind`` on 127.0.0.1, for as long as the block runs."""
    if kind in ("none", "dead"):
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield f"http://127.0.0.1:{port}/hook"
        return

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            if kind == "slow":
                time.sleep(SLOW_SECONDS)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def write_manifest(directory: Path, database_url: str, url: str | None) -> Path:
    data = manifest_data(database_url)
    if url is not None:
        data["webhooks"] = [
            {"id": "bench", "url": url, "events": ["*"], "secret": "${BENCH_HOOK_SECRET}", "timeout_seconds": 2}
        ]
    path = directory / "blocks.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run(manifest: Path, carts: Sequence[tuple[str, Cart]]) -> tuple[float, int]:
    """Checkouts per second with the delivery loop running beside them, and the events it delivered."""
    with assemble(manifest, environ=SECRET_ENV) as stack:
        with stack.context(flow="bench") as ctx:
            for sku in stack.catalog:
                for location in LOCATIONS:
                    stack.hooks.call(
                        inventory.inventory_adjust, ctx, sku, location, 10**6, "received", f"stock-{sku}-{location}"
                    )
        stop = threading.Event()
        loop = threading.Thread(target=deliver_webhooks_until, args=(stack, stop), kwargs={"interval": 0.05})
        loop.start()
        time.sleep(0.2)  # the loop is under way before the clock starts
        started = time.perf_counter()
        for key, cart in carts:
            stack.checkout(cart, key=key)
        elapsed = time.perf_counter() - started
        stop.set()
        loop.join(10)
        delivered = 0
        if stack.manifest.webhooks:
            with stack.engine.connect() as connection:
                from sqlalchemy import func, select

                from retailblocks.events.positions import behind
                from retailblocks.storage.tables import outbox

                total = int(connection.execute(select(func.count()).select_from(outbox)).scalar() or 0)
                delivered = total - behind(connection, "webhook:bench")
        return len(carts) / elapsed, delivered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    carts = carts_for(WORKLOADS[0], options.orders, seed=11)
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
                floor = 0.0
                for name in RECEIVERS:
                    home = directory / name
                    home.mkdir()
                    with receiver(name) as url:
                        manifest = write_manifest(home, databases.copy(name), None if name == "none" else url)
                        rate, delivered = run(manifest, carts)
                    floor = floor or rate
                    row = {"database": kind, "receiver": name, "per_second": rate, "ratio": rate / floor}
                    row["events_delivered_up_to"] = delivered
                    report.append(row)
                    if not options.json:
                        print(
                            f"{kind:10} receiver={name:5}: {rate:7.1f} checkouts/s, ratio to none {rate / floor:.2f}; "
                            f"webhook cursor at event {delivered}",
                            flush=True,
                        )
            finally:
                databases.close()
    if options.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
