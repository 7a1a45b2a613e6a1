"""Checkouts over HTTP against one platform served by ``blocks serve``: N merchants against 1, in one run.

Usage::

    eval "$(bash .ci/start-postgres.sh)"
    uv run python benchmarks/platform_load.py [--merchants 50] [--orders 400] [--workers 2] [--clients 8]
                                              [--rounds 2] [--database postgresql|sqlite] [--mixed]

For each round, two platforms are assembled on fresh databases — one with a single merchant, one with N
(each merchant a small shop: inventory and card, its own manifest and schema or file) — stocked, and served
by ``blocks serve -m platform.yaml --workers W``. ``C`` client processes then run the same number of
complete checkouts (``POST /m/{merchant}/store/quotes``, then ``/orders`` with an Idempotency-Key), spread
round-robin over the platform's merchants, after asking each of them for its catalog (a worker assembles a
merchant's stack on its first request: the figures are the steady state, not the warm-up). Printed:
checkouts per second, p50/p99 latency, failures, and the ratio of the N-merchant rate to the 1-merchant rate
of the same round (the goal: at least 0.8). Rounds
alternate the two, so a burst of other work on the shared machine falls on both; nothing is asserted.

With ``--mixed`` the merchants run four different block sets in turn (inventory and card; with loyalty; with
promotions; with loyalty, promotions and stored value), so a checkout's cost differs between them; the
1-merchant figure is then each block set served alone, combined as the rate of the same mix of orders
(orders spread evenly, so the time per order is the mean of the four times per order).

Afterwards each merchant's orders are counted in its own storage: every acknowledged order is there, in
the merchant it was placed with, and no other.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx2

from retailblocks.platform.operations import assemble_platform, open_platform
from retailblocks.testing.databases import fresh_database

KEY = "rb_pk_benchmark_web_0123456789abcdef"
ENVIRON = {"WEB_KEY": KEY}
GOAL = 0.8
SHOP = textwrap.dedent("""
    version: 1
    merchant: {id: MERCHANT, name: Shop, currency: EUR}
    channels: [{id: web, type: online}]
    catalog:
      - {sku: MILK, title: Milk, price: "1.29 EUR", category: dairy}
      - {sku: BREAD, title: Bread, price: "2.10 EUR", category: bakery}
    blocks:
      - use: sql-inventory
        config: {locations: [{id: shop, kind: store}], channels: {web: {locations: [shop]}}}
      - use: sandbox-card
        config: {secret_key: sk_test_bench}
    api: {keys: [{id: web, channel: web, key: "${WEB_KEY}", rate_per_minute: 1000000}]}
    """)
#: What each block set adds to the shop's two blocks (``--mixed``); the first adds nothing.
BLOCK_SETS = (
    "",
    """
      - use: loyalty
        config: {points_value: "0.01 EUR"}
    """,
    """
      - use: promotions
        config: {promotions: [{id: dairy-10, categories: [dairy], value_type: percentage, value: 10}]}
    """,
    """
      - use: loyalty
        config: {points_value: "0.01 EUR"}
      - use: promotions
        config: {promotions: [{id: dairy-10, categories: [dairy], value_type: percentage, value: 10}]}
      - use: stored-value
        config: {code_prefix: SH}
    """,
)


def manifest(merchant: str, block_set: int) -> str:
    shop = SHOP.replace("MERCHANT", merchant)
    extra = textwrap.indent(textwrap.dedent(BLOCK_SETS[block_set]).strip("\n"), "  ")
    before, after = shop.split("\napi:", 1)
    return before + ("\n" + extra if extra else "") + "\napi:" + after


CART = {
    "lines": [{"sku": "MILK", "quantity": 2}, {"sku": "BREAD", "quantity": 1}],
    "payments": [{"method": "card", "details": {"card_number": "4242424242424242"}}],
    "fulfilment": {"kind": "carry_out"},
}


def write_platform(directory: Path, url: str | None, merchants: int, block_sets: tuple[int, ...] = (0,)) -> Path:
    """Merchant ``n`` runs block set ``block_sets[n % len(block_sets)]``."""
    entries = []
    for number in range(merchants):
        merchant = f"shop-{number}"
        (directory / merchant).mkdir(parents=True)
        text = manifest(merchant, block_sets[number % len(block_sets)])
        (directory / merchant / "blocks.yaml").write_text(text, encoding="utf-8")
        entries.append(f"  - {{id: {merchant}, manifest: {merchant}/blocks.yaml, database: main}}")
    database = f'{{url: "{url}"}}' if url else "{directory: merchants}"
    platform_file = directory / "platform.yaml"
    platform_file.write_text(
        "platform: {id: bench, name: Bench}\n"
        f"databases:\n  main: {database}\n"
        "merchants:\n" + "\n".join(entries) + "\n",
        encoding="utf-8",
    )
    assemble_platform(platform_file, environ=ENVIRON)
    with open_platform(platform_file, environ=ENVIRON) as platform:
        for number in range(merchants):
            stack = platform.stack(f"shop-{number}")
            for sku in ("MILK", "BREAD"):
                stack.receive_stock(sku, "shop", 1_000_000, key=f"stock-{sku}")
    return platform_file


def count_orders(platform_file: Path, merchants: int) -> dict[str, set[str]]:
    with open_platform(platform_file, environ=ENVIRON) as platform:
        return {
            f"shop-{n}": {order.id for order in platform.stack(f"shop-{n}").orders(limit=10**6)}
            for n in range(merchants)
        }


def _client(base: str, work: list[tuple[str, str]], start: Any, results: Any) -> None:
    latencies: list[float] = []
    failures = 0
    placed: list[tuple[str, str]] = []
    with httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
        client.get("/healthz")
        # A worker assembles a merchant's stack on its first request for it: warm every merchant this client
        # will order from (twice, so both of two workers likely see it) before the clock starts.
        for merchant in sorted({merchant for merchant, _key in work}) * 2:
            client.get(f"/m/{merchant}/store/catalog")
        start.wait()
        began = time.time()
        for merchant, key in work:
            started = time.perf_counter()
            quote = client.post(f"/m/{merchant}/store/quotes", json=CART)
            order = client.post(f"/m/{merchant}/store/orders", json=CART, headers={"Idempotency-Key": key})
            latencies.append(time.perf_counter() - started)
            if quote.status_code == 200 and order.status_code == 201:
                placed.append((merchant, order.json()["id"]))
            else:
                failures += 1
    results.put((latencies, failures, placed, began, time.time()))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_and_load(platform_file: Path, merchants: int, orders: int, workers: int, clients: int) -> dict[str, Any]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "retailblocks.cli", "serve", "-m", str(platform_file), "--port", str(port),
         "--workers", str(workers)],
        env={**os.environ, **ENVIRON},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("blocks serve did not start")
            time.sleep(0.3)
        work = [(f"shop-{n % merchants}", f"bench-{n}") for n in range(orders)]
        spawn = multiprocessing.get_context("spawn")
        results: Any = spawn.Queue()
        start = spawn.Event()
        processes = [
            spawn.Process(target=_client, args=(base, work[n::clients], start, results)) for n in range(clients)
        ]
        for process in processes:
            process.start()
        time.sleep(3 + merchants / 5)  # every client started, connected and warmed its merchants
        start.set()
        gathered = [results.get(timeout=900) for _ in processes]
        for process in processes:
            process.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    elapsed = max(end for *_, end in gathered) - min(began for *_, began, _end in gathered)
    latencies = sorted(latency for part, *_ in gathered for latency in part)
    placed = [item for _lat, _fail, part, *_ in gathered for item in part]
    stored = count_orders(platform_file, merchants)
    misplaced = [(m, order_id) for m, order_id in placed if order_id not in stored[m]]
    extra = sum(len(ids) for ids in stored.values()) - len(placed)
    return {
        "merchants": merchants,
        "checkouts": len(latencies),
        "failures": sum(failures for _lat, failures, *_ in gathered),
        "per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "acknowledged_but_missing": len(misplaced),
        "stored_but_not_acknowledged": extra,
    }


def measure(options: argparse.Namespace, merchants: int, block_sets: tuple[int, ...], orders: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        if options.database == "postgresql":
            with fresh_database("postgresql", directory) as url:
                started = time.perf_counter()
                platform_file = write_platform(directory, url, merchants, block_sets)
                prepared = time.perf_counter() - started
                run = serve_and_load(platform_file, merchants, orders, options.workers, options.clients)
        else:
            started = time.perf_counter()
            platform_file = write_platform(directory, None, merchants, block_sets)
            prepared = time.perf_counter() - started
            run = serve_and_load(platform_file, merchants, orders, options.workers, options.clients)
    print(
        f"  {options.database} merchants={merchants:3} block sets={','.join(map(str, block_sets))} "
        f"workers={options.workers} clients={options.clients}: {run['per_second']:6.1f} checkouts/s, "
        f"p50 {run['p50_ms']:6.1f} ms, p99 {run['p99_ms']:6.1f} ms, failures {run['failures']}, acknowledged but "
        f"missing {run['acknowledged_but_missing']}, stored but not acknowledged "
        f"{run['stored_but_not_acknowledged']} (assembled and stocked in {prepared:.1f} s)",
        flush=True,
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=50)
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--mixed", action="store_true", help="merchants run four different block sets")
    options = parser.parse_args()
    block_sets = tuple(range(len(BLOCK_SETS))) if options.mixed else (0,)
    for round_number in range(1, options.rounds + 1):
        print(f"round {round_number}", flush=True)
        rates: dict[str, float] = {}
        for side in ("one", "many") if round_number % 2 else ("many", "one"):
            if side == "many":
                rates[side] = measure(options, options.merchants, block_sets, options.orders)["per_second"]
                continue
            # One merchant of each block set alone; the mix's rate is the orders over the summed times.
            orders_each = max(50, options.orders // len(block_sets))
            alone = [measure(options, 1, (block_set,), orders_each)["per_second"] for block_set in block_sets]
            rates[side] = len(alone) / sum(1 / rate for rate in alone)
        ratio = rates["many"] / rates["one"]
        print(
            f"round {round_number}: {options.merchants} merchants {rates['many']:.1f}/s, 1 merchant "
            f"{rates['one']:.1f}/s: ratio {ratio:.2f} (goal ≥ {GOAL})",
            flush=True,
        )


if __name__ == "__main__":
    main()
