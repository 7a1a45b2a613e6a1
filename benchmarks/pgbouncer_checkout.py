"""In-process checkouts per second on PostgreSQL, directly and through PgBouncer in transaction mode.

Usage::

    eval "$(bash .ci/start-postgres.sh)"; eval "$(bash .ci/start-pgbouncer.sh)"
    uv run python benchmarks/pgbouncer_checkout.py [--orders N] [--threads T] [--passes P]
                                                   [--pgbouncer URL]

Each pass measures both sides on fresh copies of one seeded database (the ``many-skus`` workload of
checkout_throughput.py: every reference block, 200 SKUs), alternating which goes first: ``T`` threads share
the same ``N`` carts. Through PgBouncer every transaction also sends ``SET LOCAL lock_timeout`` and no
statement is prepared on the server (see docs/scaling.md); this shows what that costs. Nothing is asserted:
on a shared machine, only the ratio within one run means anything. The server is
RETAILBLOCKS_BENCH_POSTGRES_URL (default: the CI server on 127.0.0.1:54329); the pooler is ``--pgbouncer``
(default: RETAILBLOCKS_TEST_PGBOUNCER_URL, what .ci/start-pgbouncer.sh exports).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory

import sqlalchemy as sa
from checkout_throughput import DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV, WORKLOADS, PostgresDatabases, carts_for
from http_checkout import STORE_KEY, stock_up, write_manifest

from retailblocks import assemble


def rate(manifest: Path, carts: list[tuple[str, object]], threads: int) -> float:
    with assemble(manifest, environ={"BENCH_STORE_KEY": STORE_KEY}) as stack:
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for outcome in [pool.submit(stack.checkout, cart, key=key) for key, cart in carts]:
                outcome.result()
        return len(carts) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=150)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--pgbouncer", default=os.environ.get("RETAILBLOCKS_TEST_PGBOUNCER_URL"))
    options = parser.parse_args()
    if not options.pgbouncer:
        parser.error("give --pgbouncer URL or set RETAILBLOCKS_TEST_PGBOUNCER_URL (.ci/start-pgbouncer.sh)")
    carts = carts_for(WORKLOADS[0], options.orders, seed=7)
    databases = PostgresDatabases(os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    figures: dict[str, list[float]] = {"direct": [], "pgbouncer": []}
    try:
        with TemporaryDirectory() as temporary:
            for number in range(options.passes):
                sides = ["direct", "pgbouncer"] if number % 2 == 0 else ["pgbouncer", "direct"]
                for side in sides:
                    url = databases.copy(f"{side}-{number}")
                    if side == "pgbouncer":
                        url = (
                            sa.make_url(options.pgbouncer)
                            .set(database=sa.make_url(url).database)
                            .render_as_string(hide_password=False)
                        )
                    directory = Path(temporary) / f"{side}-{number}"
                    directory.mkdir()
                    manifest = write_manifest(directory, url)
                    stock_up(manifest)
                    figures[side].append(rate(manifest, carts, options.threads))
                    print(f"pass {number + 1} {side:9}: {figures[side][-1]:7.1f} checkouts/s", flush=True)
    finally:
        databases.close()
    direct, pooled = max(figures["direct"]), max(figures["pgbouncer"])
    print(
        f"best of {options.passes}: direct {direct:.1f}/s, through PgBouncer {pooled:.1f}/s "
        f"(ratio {pooled / direct:.2f}); {options.orders} orders, {options.threads} threads"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
