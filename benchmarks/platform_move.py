"""How long `blocks platform move` pauses a merchant's writes: the online move (logical replication) against
the paused copy, for a merchant with N orders, between two PostgreSQL servers.

    eval "$(RB_PG_PORT=54329 bash .ci/start-postgres.sh)"
    eval "$(RB_PG_PORT=54330 bash .ci/start-postgres.sh | sed s/_URL=/_URL_2=/)"
    uv run python benchmarks/platform_move.py --orders 200

The merchant is the tests' full shop (inventory, card, stored value, loyalty, logistics, promotions). It is
moved to the second server online, then back with the paused copy, each with ``--settle`` seconds of
settle (default 0: the figures are the work the pause waits for; a served platform adds the settle, 5 s by
default). The online move's copy runs while the merchant serves, so only its pause is printed for both.
Wall-clock figures on a shared machine move by tens of percent: compare runs made side by side.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from retailblocks.platform.move import move_merchant
from retailblocks.platform.operations import assemble_platform, open_platform
from retailblocks.testing.databases import fresh_database
from tests.helpers import cart, receive
from tests.platform.conftest import ENV, write_platform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--settle", type=float, default=0.0)
    args = parser.parse_args()
    second = os.environ.get("RETAILBLOCKS_TEST_POSTGRES_URL_2")
    if not second:
        raise SystemExit("set RETAILBLOCKS_TEST_POSTGRES_URL_2 to a second PostgreSQL server")
    with tempfile.TemporaryDirectory() as scratch, fresh_database("postgresql", Path(scratch)) as url:
        name = f"rb_bench_move_{os.getpid()}"
        admin = sa.create_engine(second, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            other = sa.make_url(second).set(database=name).render_as_string(hide_password=False)
            path = write_platform(Path(scratch), url, roles=True)
            text = path.read_text(encoding="utf-8")
            at = text.index("merchants:")
            path.write_text(f'{text[:at].rstrip()}\n  other: {{url: "{other}", roles: true, pool_size: 4}}\n'
                            f"{text[at:]}", encoding="utf-8")  # fmt: skip
            assemble_platform(path, environ=ENV)
            with open_platform(path, environ=ENV) as platform:
                north = platform.stack("north")
                receive(north, {"BEANS": args.orders + 10})
                started = time.perf_counter()
                for number in range(args.orders):
                    north.checkout(cart(("BEANS", 1)), key=f"bench-{number}")
                print(f"{args.orders} orders placed in {time.perf_counter() - started:.1f} s")
                for target, online in (("other", True), ("main", False)):
                    started = time.perf_counter()
                    moved = move_merchant(platform, "north", target, settle_seconds=args.settle, online=online)
                    total = time.perf_counter() - started
                    how = "online" if moved.online else f"paused copy ({moved.paused_copy_reason})"
                    print(
                        f"{moved.source} → {moved.target} {how}: {sum(moved.rows.values())} rows in "
                        f"{len(moved.rows)} tables; writes paused {moved.paused_seconds:.2f} s "
                        f"(settle {args.settle:g} s included), whole move {total:.2f} s"
                    )
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


if __name__ == "__main__":
    main()
