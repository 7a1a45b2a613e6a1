"""A platform's costs on PostgreSQL: assembling N merchants, memory per served merchant, and what the
per-transaction scope (``SET LOCAL search_path`` and ``ROLE``) adds to a transaction.

    eval "$(bash .ci/start-postgres.sh)"
    uv run python benchmarks/platform_scale.py --merchants 50

(Not ``platform.py``: run as a script, that name would shadow the standard library's ``platform`` module.)

Each merchant is a small shop (inventory and card) with its own manifest; the platform is served in-process
(one app, as ``blocks serve platform.yaml`` runs in each worker), every merchant asked for its catalog once.
Wall-clock figures on a shared machine move by tens of percent: compare runs made side by side.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from retailblocks.http.platform import create_platform_app
from retailblocks.platform.operations import assemble_platform, open_platform
from retailblocks.platform.placement import prepare_schema, schema_engine
from retailblocks.storage.engine import create_engine
from retailblocks.testing.databases import fresh_database

KEY = "rb_pk_benchmark_web_0123456789abcdef"
SHOP = textwrap.dedent("""
    version: 1
    merchant: {id: MERCHANT, name: Shop, currency: EUR}
    channels: [{id: web, type: online}]
    catalog: [{sku: MILK, title: Milk, price: "1.29 EUR", category: dairy}]
    blocks:
      - use: sql-inventory
        config: {locations: [{id: shop, kind: store}], channels: {web: {locations: [shop]}}}
      - use: sandbox-card
        config: {secret_key: sk_test_bench_MERCHANT}
    api: {keys: [{id: web, channel: web, key: "${WEB_KEY}"}]}
    """)


def resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scope_cost(url: str, transactions: int) -> None:
    server = create_engine(url)
    try:
        prepare_schema(server, "m_bench_plain", role=False)
        prepare_schema(server, "m_bench_role", role=True)
        engines = {
            "unscoped": server,
            "search_path": schema_engine(server, "m_bench_plain"),
            "search_path+role": schema_engine(server, "m_bench_role", role=True),
        }
        timings: dict[str, list[float]] = {name: [] for name in engines}
        # Interleaved rounds, so a burst of other work on the machine falls on every variant alike.
        for _ in range(5):
            for name, engine in engines.items():
                started = time.perf_counter()
                for _ in range(transactions // 5):
                    with engine.begin() as connection:
                        connection.exec_driver_sql("SELECT 1")
                timings[name].append((time.perf_counter() - started) / (transactions // 5))
        for name, rounds in timings.items():
            print(f"{name:>18}: {min(rounds) * 1e6:7.0f} µs per one-statement transaction (best of 5 rounds)")
    finally:
        server.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=20)
    parser.add_argument("--transactions", type=int, default=2000)
    options = parser.parse_args()
    environ = {"WEB_KEY": KEY}
    with tempfile.TemporaryDirectory() as temporary, fresh_database("postgresql", Path(temporary)) as url:
        directory = Path(temporary)
        scope_cost(url, options.transactions)
        entries = []
        for number in range(options.merchants):
            merchant = f"shop-{number}"
            (directory / merchant).mkdir()
            (directory / merchant / "blocks.yaml").write_text(SHOP.replace("MERCHANT", merchant), encoding="utf-8")
            entries.append(f"  - {{id: {merchant}, manifest: {merchant}/blocks.yaml, database: main}}")
        platform_file = directory / "platform.yaml"
        platform_file.write_text(
            "platform: {id: bench, name: Bench}\n"
            f'databases:\n  main: {{url: "{url}", roles: true}}\n'
            "merchants:\n" + "\n".join(entries) + "\n",
            encoding="utf-8",
        )
        started = time.perf_counter()
        assemble_platform(platform_file, environ=environ)
        print(f"assembled {options.merchants} merchants in {time.perf_counter() - started:.1f} s")
        with open_platform(platform_file, environ=environ) as platform:
            with TestClient(create_platform_app(platform)) as client:
                headers = {"Authorization": f"Bearer {KEY}"}
                assert client.get("/m/shop-0/store/catalog", headers=headers).status_code == 200
                gc.collect()
                first = resident_mib()
                # Python objects kept alive, too: resident memory can stay flat while freed arenas are reused.
                tracemalloc.start()
                for number in range(1, options.merchants):
                    assert client.get(f"/m/shop-{number}/store/catalog", headers=headers).status_code == 200
                gc.collect()
                kept, _peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                last = resident_mib()
            kept_per = kept / (1024 * 1024) / max(1, options.merchants - 1)
            print(f"Python memory kept per additional merchant: {kept_per:.2f} MiB")
            per = (last - first) / max(1, options.merchants - 1)
            print(f"resident memory: {first:.1f} MiB serving 1 merchant, {last:.1f} MiB serving {options.merchants}: "
                  f"{per:.2f} MiB per additional merchant")  # fmt: skip
            server = platform.placement.server(platform.manifest.databases["main"])
            print(f"connections held by this process: {server.pool.checkedin() + server.pool.checkedout()}")
            with server.connect() as connection:
                count = connection.execute(sa.text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'm_%'"))
                print(f"merchant schemas on the server: {count.scalar()}")


if __name__ == "__main__":
    main()
