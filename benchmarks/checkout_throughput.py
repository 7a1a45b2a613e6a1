"""Checkout throughput on SQLite and PostgreSQL, against a raw-driver floor measured in the same run.

Usage::

    uv run python benchmarks/checkout_throughput.py [--orders N] [--database sqlite|postgresql|both] [--json]

For each database and each workload (``many-skus``: 200 SKUs, carts of 1-3 lines; ``hot-sku``: every cart
buys the same SKU) the benchmark

1. runs ``stack.checkout(...)`` single-threaded over a stack with every reference block, capturing every
   statement and transaction boundary the engine hands to the DB-API driver (the sandbox card gateway's own
   connections included);
2. replays exactly that statement stream with the raw driver (``sqlite3`` / ``psycopg``) on one connection,
   against a copy of the same seeded starting state, timing only the replay: the floor;
3. checks the replay was faithful (every table of both databases holds the same rows);
4. runs the checkouts again with the hook relay instrumented, for the share of time spent in hook dispatch;
5. optionally runs the checkouts with two threads.

Nothing is asserted about time: the figures are printed (and returned as JSON with ``--json``). See
``benchmarks/README.md`` for the method and how to read the output.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
import yaml
from dispatch_probe import Calibration, DispatchProbe, calibrate, corrected_dispatch
from sqltrace import (
    Comparison,
    StatementRecorder,
    Trace,
    collector_paused,
    compare_databases,
    replay_postgres,
    replay_sqlite,
)

from retailblocks import assemble
from retailblocks.assembly.discovery import TRACE_ENV
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.errors import BusinessRejection
from retailblocks.hookspecs import inventory
from retailblocks.model import Address, Cart, CartLine, Fulfilment, FulfilmentKind, Identity, PaymentRequest
from retailblocks.stack import Stack

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:54329/postgres"
POSTGRES_URL_ENV = "RETAILBLOCKS_BENCH_POSTGRES_URL"

SKU_COUNT = 200
HOT_SKU = "SKU-000"
LOCATIONS = ("dc", "store-a")
CARD_OK = "4242424242424242"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# Goals from issue 3: checkout at no less than half the floor; dispatch under 2% (PostgreSQL) / 5% (SQLite).
RATIO_GOAL = 0.5
DISPATCH_GOAL = {"sqlite": 0.05, "postgresql": 0.02}


# -- the merchant -----------------------------------------------------------------------------------


def manifest_data(database_url: str) -> dict[str, Any]:
    """Every reference block a checkout goes through, and a generated catalog of ``SKU_COUNT`` SKUs."""
    categories = ("beans", "tea", "merch", "snacks")
    catalog = [
        {
            "sku": f"SKU-{n:03d}",
            "title": f"Product {n}",
            # Prices from 9.90 to 208.90: some carts pass the free-shipping threshold, most do not.
            "price": f"{9.9 + (n * 37) % 200:.2f} CNY",
            "category": categories[n % len(categories)],
            "weight": f"{100 + (n * 53) % 900}g",
        }
        for n in range(SKU_COUNT)
    ]
    return {
        "version": 1,
        "merchant": {"id": "bench-shop", "name": "Bench Shop", "currency": "CNY"},
        "database": database_url,
        "channels": [
            {"id": "web", "type": "online"},
            {"id": "store-a", "type": "store", "location": "store-a"},
        ],
        "catalog": catalog,
        "blocks": [
            {
                "use": "sql-inventory",
                "id": "inventory",
                "config": {
                    "locations": [
                        {"id": "dc", "kind": "warehouse", "latitude": 31.37, "longitude": 121.26},
                        {"id": "store-a", "kind": "store", "latitude": 31.19, "longitude": 121.44},
                    ],
                    "channels": {"web": {"locations": list(LOCATIONS)}},
                },
            },
            {"use": "sandbox-card", "id": "card", "config": {"secret_key": "sk_test_benchmark"}},
            {
                "use": "loyalty",
                "config": {
                    "points_value": "1.00 CNY",
                    "tiers": [
                        {"name": "base", "threshold": "0.00 CNY"},
                        {"name": "gold", "threshold": "500.00 CNY"},
                    ],
                },
            },
            {
                "use": "logistics",
                "config": {
                    "zones": [{"id": "cn", "countries": ["CN"]}],
                    "carriers": [
                        {
                            "id": "sf",
                            "name": "SF",
                            "options": [
                                {
                                    "id": "sf-std",
                                    "name": "Standard",
                                    "zones": ["cn"],
                                    "rates": [{"price": "10.00 CNY"}],
                                    "free_over": "200.00 CNY",
                                }
                            ],
                        }
                    ],
                    "locations": [
                        {"id": "dc", "latitude": 31.37, "longitude": 121.26},
                        {"id": "store-a", "latitude": 31.19, "longitude": 121.44},
                    ],
                    "pickup_locations": ["store-a"],
                },
            },
            {
                "use": "promotions",
                "config": {
                    "promotions": [
                        {"id": "tea-10", "categories": ["tea"], "value_type": "percentage", "value": 10},
                        {
                            "id": "save5",
                            "code": "SAVE5",
                            "target": "order",
                            "allocation": "across",
                            "value_type": "fixed",
                            "value": "5.00 CNY",
                        },
                    ]
                },
            },
        ],
        "routing": {"payment": {"card": "card", "points": "loyalty"}},
    }


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    make_cart: Callable[[random.Random], Cart]


def _cart(rng: random.Random, lines: Sequence[tuple[str, int]]) -> Cart:
    # Half the shoppers are members (identify/enrol, then earn points), one in ten brings a coupon.
    member = rng.random() < 0.5
    return Cart(
        channel="web",
        lines=tuple(CartLine(sku, quantity) for sku, quantity in lines),
        payments=(PaymentRequest("card", None, {"card_number": CARD_OK}),),
        identities=(Identity("phone", f"1380000{rng.randrange(2000):04d}"),) if member else (),
        fulfilment=Fulfilment(
            FulfilmentKind.DELIVERY, Address(country="CN", region="Shanghai", latitude=31.2, longitude=121.45)
        ),
        coupons=("SAVE5",) if rng.random() < 0.1 else (),
    )


def _many_skus_cart(rng: random.Random) -> Cart:
    skus = rng.sample(range(SKU_COUNT), rng.randint(1, 3))
    return _cart(rng, [(f"SKU-{n:03d}", rng.randint(1, 2)) for n in skus])


def _hot_sku_cart(rng: random.Random) -> Cart:
    return _cart(rng, [(HOT_SKU, rng.randint(1, 2))])


WORKLOADS = (
    Workload("many-skus", f"{SKU_COUNT} SKUs, carts of 1-3 lines", _many_skus_cart),
    Workload("hot-sku", f"every cart buys {HOT_SKU}", _hot_sku_cart),
)


def carts_for(workload: Workload, count: int, seed: int) -> list[tuple[str, Cart]]:
    """The same ``count`` (key, cart) pairs for every pass of one workload."""
    rng = random.Random(f"{seed}:{workload.name}")
    return [(f"{workload.name}-{n}", workload.make_cart(rng)) for n in range(count)]


# -- databases --------------------------------------------------------------------------------------


class Databases(Protocol):
    """Where the benchmark's databases live: one seeded original and throwaway copies of it."""

    kind: str

    def seed_url(self) -> str: ...

    def copy(self, label: str) -> str:
        """A new database holding exactly the seeded state; returns its SQLAlchemy URL."""
        ...

    def raw_target(self, url: str) -> str:
        """What the raw driver connects to for ``url``: a file path or a libpq conninfo."""
        ...

    def close(self) -> None: ...


class SqliteDatabases:
    kind = "sqlite"

    def __init__(self, directory: Path):
        self.directory = directory
        self.seed = directory / "seed.db"

    def seed_url(self) -> str:
        return f"sqlite:///{self.seed}"

    def copy(self, label: str) -> str:
        # Fold the WAL into the main file first, so copying the one file copies the whole state.
        with sqlite3.connect(self.seed) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        target = self.directory / f"{label}.db"
        shutil.copyfile(self.seed, target)
        return f"sqlite:///{target}"

    def raw_target(self, url: str) -> str:
        return str(sa.make_url(url).database)

    def close(self) -> None:
        """Delete the seed and every copy (each with its WAL and shared-memory files) as soon as the
        database kind is done, rather than when the whole run's temporary directory goes."""
        for path in self.directory.glob("*.db*"):
            path.unlink(missing_ok=True)


class PostgresDatabases:
    kind = "postgresql"

    def __init__(self, server_url: str):
        self.server = sa.make_url(server_url)
        self.prefix = f"rb_bench_{uuid.uuid4().hex[:8]}"
        self.admin = sa.create_engine(self.server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.created: list[str] = []
        self.seed = self._create(f"{self.prefix}_seed")

    def _create(self, name: str, template: str | None = None) -> str:
        with self.admin.connect() as connection:
            suffix = f' TEMPLATE "{template}"' if template else ""
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{suffix}')
        self.created.append(name)
        return name

    def _url(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def seed_url(self) -> str:
        return self._url(self.seed)

    def copy(self, label: str) -> str:
        # A template copy is a file-level copy of the seeded database: same rows, same sequence positions.
        return self._url(self._create(f"{self.prefix}_{label.replace('-', '_')}", template=self.seed))

    def raw_target(self, url: str) -> str:
        return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as connection:
            for name in reversed(self.created):
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()


# -- running checkouts ------------------------------------------------------------------------------


@dataclass
class Settings:
    orders: int
    warmup: int
    seed: int
    threads: int
    passes: int
    profile: bool
    work: Path
    profile_dir: Path | None = None


class Bench:
    """One database kind: seeds it once, then runs every pass for every workload on fresh copies."""

    def __init__(self, databases: Databases, settings: Settings):
        self.databases = databases
        self.settings = settings
        self.manifests = settings.work / f"manifests-{databases.kind}"
        self.manifests.mkdir(parents=True, exist_ok=True)
        # Without the relay's trace switch, whatever the caller's environment says.
        self.environ = {k: v for k, v in os.environ.items() if k != TRACE_ENV}

    @contextmanager
    def stack(self, url: str, label: str) -> Iterator[tuple[Stack, ManualClock]]:
        path = self.manifests / f"{label}.yaml"
        path.write_text(yaml.safe_dump(manifest_data(url), sort_keys=False), encoding="utf-8")
        clock = ManualClock(START)
        stack = assemble(path, environ=self.environ, clock=clock, ids=RandomIds(self.settings.seed))
        try:
            yield stack, clock
        finally:
            stack.close()

    def seed(self) -> None:
        """Create the schema and put plenty of stock of every SKU at both locations."""
        per_location = max(10_000, 3 * (self.settings.orders + self.settings.warmup))
        with self.stack(self.databases.seed_url(), "seed") as (stack, _clock), stack.context(flow="seed") as ctx:
            for location in LOCATIONS:
                for sku in stack.catalog:
                    stack.hooks.call(
                        inventory.inventory_adjust,
                        ctx,
                        sku,
                        location,
                        per_location,
                        "received",
                        f"seed-{sku}-{location}",
                    )

    def checkouts(self, stack: Stack, clock: ManualClock, carts: Sequence[tuple[str, Cart]]) -> Counter[str]:
        """Place the carts one after the other; returns outcomes (all "placed" unless something is off)."""
        outcomes: Counter[str] = Counter()
        for key, cart in carts:
            clock.advance(timedelta(seconds=1))
            try:
                stack.checkout(cart, key=key)
                outcomes["placed"] += 1
            except BusinessRejection as rejection:
                outcomes[rejection.cause] += 1
        return outcomes

    def run_workload(self, workload: Workload, calibration: Calibration) -> WorkloadResult:
        settings = self.settings
        carts = carts_for(workload, settings.warmup + settings.orders, settings.seed)
        warm, measured = carts[: settings.warmup], carts[settings.warmup :]
        result = WorkloadResult(database=self.databases.kind, workload=workload.name, description=workload.description)

        # 1. Checkouts, single worker, with every driver call captured (for the floor; timed in 1b).
        url = self.databases.copy(f"{workload.name}-checkout")
        with self.stack(url, f"{workload.name}-checkout") as (stack, clock):
            with StatementRecorder(stack.engine) as recorder:
                self.checkouts(stack, clock, warm)
                recorder.mark_start()
                with collector_paused():
                    started = time.perf_counter()
                    outcomes = self.checkouts(stack, clock, measured)
                    wall = time.perf_counter() - started
            trace = recorder.trace
        result.outcomes = dict(outcomes)
        result.checkout_wall_seconds = wall
        result.capture_overhead_seconds = trace.overhead

        counts = trace.counts()
        result.statements_per_checkout = counts["statements"] / settings.orders
        result.transactions_per_checkout = counts["transactions"] / settings.orders
        result.trace_counts = counts
        result.overlapping_transactions = trace.overlapping

        # 1b and 2, in turns: a timed checkout pass, then a timed replay (the floor), ``passes`` times.
        # The checkout figure comes from passes with nothing of the benchmark attached (the recorder's body
        # is measurable, SQLAlchemy's calls into it are not). The fastest pass counts on each side: a shared
        # machine only ever adds time. Taking turns spreads a busy spell over both sides rather than over
        # whichever ran during it. Every pass must leave the recorded pass's database (same carts, seeded
        # ids and clock), and the replay must too.
        identical = True
        for attempt in range(settings.passes):
            timed_url = self.databases.copy(f"{workload.name}-timed{attempt}")
            with self.stack(timed_url, f"{workload.name}-timed{attempt}") as (stack, clock):
                self.checkouts(stack, clock, warm)
                with collector_paused():
                    cpu_started = time.process_time()
                    started = time.perf_counter()
                    timed_outcomes = self.checkouts(stack, clock, measured)
                    result.checkout_seconds_all.append(time.perf_counter() - started)
                    result.checkout_cpu_seconds_all.append(time.process_time() - cpu_started)
            identical = identical and compare_databases(url, timed_url).identical and timed_outcomes == outcomes

            floor_url = self.databases.copy(f"{workload.name}-floor{attempt}")
            replayed = self._replay(trace, floor_url)
            result.floor_seconds_all.append(replayed.seconds)
            result.floor_cpu_seconds_all.append(replayed.cpu_seconds)
            result.replay_connections = replayed.connections
            result.replay_errors.extend(replayed.errors)
            if attempt == 0:
                # 3. Faithful? The replayed database must hold exactly what the checkouts left.
                result.verification = _verification(compare_databases(url, floor_url))
        result.checkout_seconds = min(result.checkout_seconds_all)
        result.checkout_cpu_seconds = min(result.checkout_cpu_seconds_all)
        result.timed_pass_identical = identical
        result.floor_seconds = min(result.floor_seconds_all)
        result.floor_cpu_seconds = min(result.floor_cpu_seconds_all)

        # 4. Hook dispatch, on its own pass so the probe's wrappers do not slow the throughput figure.
        dispatch_url = self.databases.copy(f"{workload.name}-dispatch")
        with (
            self.stack(dispatch_url, f"{workload.name}-dispatch") as (stack, clock),
            DispatchProbe(stack.hooks) as probe,
        ):
            self.checkouts(stack, clock, warm)
            probe.reset()
            with collector_paused():
                started = time.perf_counter()
                self.checkouts(stack, clock, measured)
                probe_wall = time.perf_counter() - started
            figures = probe.figures()
        bias = figures.dispatch - corrected_dispatch(figures, calibration)
        result.hook_calls_per_checkout = figures.impl_calls / settings.orders
        result.dispatch_seconds = figures.dispatch - bias
        result.dispatch_raw_seconds = figures.dispatch
        result.dispatch_pass_seconds = probe_wall - bias
        result.implementation_seconds = figures.implementation

        # 5. Optional: the same checkouts from several threads (the floor stays single-connection).
        if settings.threads > 1:
            threads_url = self.databases.copy(f"{workload.name}-threads")
            with self.stack(threads_url, f"{workload.name}-threads") as (stack, clock):
                self.checkouts(stack, clock, warm)
                with collector_paused():
                    started = time.perf_counter()
                    with ThreadPoolExecutor(settings.threads) as pool:
                        list(pool.map(lambda item: self.checkouts(stack, clock, [item]), measured))
                    result.threaded_seconds = time.perf_counter() - started

        if settings.profile:
            result.profile = self._profile(workload, warm, measured)
        return result

    def _replay(self, trace: Trace, url: str) -> Any:
        target = self.databases.raw_target(url)
        return replay_sqlite(trace, target) if self.databases.kind == "sqlite" else replay_postgres(trace, target)

    def _profile(
        self, workload: Workload, warm: Sequence[tuple[str, Cart]], measured: Sequence[tuple[str, Cart]]
    ) -> str:
        """cProfile of the measured checkouts: the top functions by own time and by cumulative time."""
        url = self.databases.copy(f"{workload.name}-profile")
        profiler = cProfile.Profile()
        with self.stack(url, f"{workload.name}-profile") as (stack, clock):
            self.checkouts(stack, clock, warm)
            profiler.enable()
            self.checkouts(stack, clock, measured)
            profiler.disable()
        out = io.StringIO()
        if self.settings.profile_dir is not None:
            self.settings.profile_dir.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(self.settings.profile_dir / f"{self.databases.kind}-{workload.name}.pstats")
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        return out.getvalue()


def _verification(comparison: Comparison) -> dict[str, Any]:
    return {
        "identical": comparison.identical,
        "tables": comparison.tables,
        "rows": comparison.rows,
        "differing_tables": comparison.differing,
    }


@dataclass
class WorkloadResult:
    database: str
    workload: str
    description: str
    outcomes: dict[str, int] = field(default_factory=dict)
    checkout_wall_seconds: float = 0.0
    capture_overhead_seconds: float = 0.0
    timed_pass_identical: bool = False
    checkout_seconds: float = 0.0
    checkout_cpu_seconds: float = 0.0
    checkout_seconds_all: list[float] = field(default_factory=list)
    checkout_cpu_seconds_all: list[float] = field(default_factory=list)
    floor_seconds: float = 0.0
    floor_cpu_seconds: float = 0.0
    floor_seconds_all: list[float] = field(default_factory=list)
    floor_cpu_seconds_all: list[float] = field(default_factory=list)
    statements_per_checkout: float = 0.0
    transactions_per_checkout: float = 0.0
    trace_counts: dict[str, int] = field(default_factory=dict)
    overlapping_transactions: bool = False
    replay_connections: int = 0
    replay_errors: list[str] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    hook_calls_per_checkout: float = 0.0
    dispatch_seconds: float = 0.0
    dispatch_raw_seconds: float = 0.0
    dispatch_pass_seconds: float = 0.0
    implementation_seconds: float = 0.0
    threaded_seconds: float | None = None
    profile: str | None = None

    def figures(self, orders: int, threads: int) -> dict[str, Any]:
        checkout_rate = orders / self.checkout_seconds
        floor_rate = orders / self.floor_seconds
        share = self.dispatch_seconds / self.dispatch_pass_seconds if self.dispatch_pass_seconds else 0.0
        return {
            "checkout_orders_per_second": checkout_rate,
            "floor_orders_per_second": floor_rate,
            "ratio": checkout_rate / floor_rate,
            "ratio_goal_met": checkout_rate / floor_rate >= RATIO_GOAL,
            "checkout_ms_per_order": 1000 * self.checkout_seconds / orders,
            "floor_ms_per_order": 1000 * self.floor_seconds / orders,
            "floor_ms_per_order_median": 1000 * statistics.median(self.floor_seconds_all) / orders,
            "checkout_ms_per_order_median": 1000 * statistics.median(self.checkout_seconds_all) / orders,
            "ratio_of_medians": statistics.median(self.floor_seconds_all)
            / statistics.median(self.checkout_seconds_all),
            # This process's CPU only: the whole cost on SQLite, the client side on PostgreSQL.
            "checkout_cpu_ms_per_order": 1000 * self.checkout_cpu_seconds / orders,
            "floor_cpu_ms_per_order": 1000 * self.floor_cpu_seconds / orders,
            "cpu_ratio": self.floor_cpu_seconds / self.checkout_cpu_seconds if self.checkout_cpu_seconds else 0.0,
            "dispatch_share": share,
            "dispatch_goal": DISPATCH_GOAL[self.database],
            "dispatch_goal_met": share < DISPATCH_GOAL[self.database],
            "dispatch_us_per_hook_call": (
                1e6 * self.dispatch_seconds / (self.hook_calls_per_checkout * orders)
                if self.hook_calls_per_checkout
                else 0.0
            ),
            "threaded_orders_per_second": (
                orders / self.threaded_seconds if self.threaded_seconds is not None else None
            ),
            "threads": threads if self.threaded_seconds is not None else None,
        }


# -- output -----------------------------------------------------------------------------------------


def render(results: Sequence[WorkloadResult], settings: Settings, calibration: Calibration) -> str:
    lines = [
        f"checkout throughput: {settings.orders} measured orders per workload after {settings.warmup} warm-up, "
        f"single worker; floor = the captured driver calls replayed with the raw driver; the fastest of "
        f"{settings.passes} timed passes counts on each side",
        "",
    ]
    header = (
        f"{'database':<11}{'workload':<11}{'checkout/s':>11}{'floor/s':>10}{'ratio':>8}"
        f"{'stmts/co':>10}{'txns/co':>9}{'hooks/co':>10}{'dispatch':>10}"
    )
    if settings.threads > 1:
        header += f"{f'{settings.threads} thr/s':>10}"
    lines += [header, "-" * len(header)]
    for result in results:
        f = result.figures(settings.orders, settings.threads)
        row = (
            f"{result.database:<11}{result.workload:<11}{f['checkout_orders_per_second']:>11.1f}"
            f"{f['floor_orders_per_second']:>10.1f}{f['ratio']:>7.2f}x"
            f"{result.statements_per_checkout:>10.1f}{result.transactions_per_checkout:>9.1f}"
            f"{result.hook_calls_per_checkout:>10.1f}{100 * f['dispatch_share']:>9.2f}%"
        )
        if f["threaded_orders_per_second"] is not None:
            row += f"{f['threaded_orders_per_second']:>10.1f}"
        lines.append(row)
    lines.append("")
    for result in results:
        f = result.figures(settings.orders, settings.threads)
        check = result.verification
        faithful = check.get("identical") and not result.replay_errors and result.outcomes.get("placed")
        lines.append(
            f"{result.database}/{result.workload}: {f['checkout_ms_per_order']:.2f} ms per checkout vs "
            f"{f['floor_ms_per_order']:.2f} ms floor (medians of the passes: {f['checkout_ms_per_order_median']:.2f} "
            f"vs {f['floor_ms_per_order_median']:.2f} ms, ratio {f['ratio_of_medians']:.2f}x); "
            f"timed without the recorder (the recorded pass: "
            f"{1000 * result.checkout_wall_seconds / settings.orders:.2f} ms, "
            f"{1000 * result.capture_overhead_seconds / settings.orders:.3f} ms of it in the recorder; "
            f"databases {'IDENTICAL' if result.timed_pass_identical else 'DIFFERENT'})"
        )
        lines.append(
            f"  this process's CPU: {f['checkout_cpu_ms_per_order']:.2f} ms per checkout vs "
            f"{f['floor_cpu_ms_per_order']:.2f} ms floor (CPU ratio {f['cpu_ratio']:.2f}x"
            + (
                "; all the work on SQLite, insensitive to other load)"
                if result.database == "sqlite"
                else "; client side only, the server's work is not in it)"
            )
        )
        lines.append(
            f"  goals: ratio {f['ratio']:.2f} {'>=' if f['ratio_goal_met'] else '<'} {RATIO_GOAL} "
            f"[{'met' if f['ratio_goal_met'] else 'NOT met'}]; dispatch {100 * f['dispatch_share']:.2f}% "
            f"{'<' if f['dispatch_goal_met'] else '>='} {100 * f['dispatch_goal']:.0f}% "
            f"[{'met' if f['dispatch_goal_met'] else 'NOT met'}] "
            f"({f['dispatch_us_per_hook_call']:.1f} us per hook call; raw probe figure "
            f"{1000 * result.dispatch_raw_seconds / settings.orders:.3f} ms/order)"
        )
        counts = result.trace_counts
        lines.append(
            f"  per checkout: {counts['statements'] / settings.orders:.1f} statements, "
            f"{counts['transactions'] / settings.orders:.1f} transactions "
            f"({counts['commits'] / settings.orders:.1f} commit, {counts['rollbacks'] / settings.orders:.1f} "
            f"rollback), {counts['transaction_control_statements'] / settings.orders:.1f} transaction-control "
            f"statements; outcomes {result.outcomes}"
        )
        lines.append(
            f"  replay {'FAITHFUL' if faithful else 'NOT FAITHFUL'}: {check.get('tables')} tables, "
            f"{check.get('rows')} rows identical to the checkout database"
            + (f"; differing tables: {check['differing_tables']}" if check.get("differing_tables") else "")
            + (
                f"; {len(result.replay_errors)} driver errors, first: {result.replay_errors[0]}"
                if result.replay_errors
                else ""
            )
            + f"; {result.replay_connections} connection(s)"
            + ("; transactions overlapped across connections" if result.overlapping_transactions else "")
        )
    lines.append("")
    lines.append(
        f"dispatch probe calibration: {1e9 * calibration.per_entry:.0f} ns per hook call, "
        f"{1e9 * calibration.per_nested:.0f} ns per nested relay hop (subtracted)"
    )
    for result in results:
        if result.profile:
            lines += ["", f"== profile {result.database}/{result.workload} ==", result.profile]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=300, help="measured orders per workload per database")
    parser.add_argument("--warmup", type=int, default=20, help="orders placed before measuring (default 20)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL),
        help=f"server to create throwaway databases on (default ${POSTGRES_URL_ENV} or {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument("--workload", choices=[w.name for w in WORKLOADS], action="append", help="default: all")
    parser.add_argument("--threads", type=int, default=2, help="also time N threads (1 to skip; default 2)")
    parser.add_argument(
        "--passes",
        "--replays",
        type=int,
        default=3,
        help="timed passes of the checkouts and of the floor's replay; the fastest of each counts (default 3)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="append a cProfile of each checkout pass")
    parser.add_argument(
        "--profile-dir", type=Path, help="with --profile: also write each pass's pstats file into this directory"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.warmup < 0 or args.passes < 1:
        parser.error("--orders and --passes must be at least 1, --warmup at least 0")

    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    workloads = [w for w in WORKLOADS if not args.workload or w.name in args.workload]
    calibration = calibrate()
    results: list[WorkloadResult] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rb-bench-") as tmp:
        settings = Settings(
            args.orders, args.warmup, args.seed, args.threads, args.passes, args.profile, Path(tmp), args.profile_dir
        )
        for kind in kinds:
            try:
                databases: Databases = (
                    SqliteDatabases(Path(tmp)) if kind == "sqlite" else PostgresDatabases(args.postgres_url)
                )
            except sa.exc.OperationalError as error:
                # No server to create databases on (none running, or refused): the other kind's figures
                # still stand, and are printed; this one is named as skipped, with the driver's first line.
                reason = str(error.orig or error).strip().splitlines()[0]
                skipped.append(f"{kind} skipped: no server at {_shown(args.postgres_url)} ({reason})")
                continue
            try:
                bench = Bench(databases, settings)
                bench.seed()
                for workload in workloads:
                    print(f"[bench] {kind} {workload.name} ...", file=sys.stderr, flush=True)
                    results.append(bench.run_workload(workload, calibration))
            finally:
                databases.close()

    if args.json:
        payload = {
            "settings": {k: v for k, v in asdict(settings).items() if k != "work"},
            "calibration": asdict(calibration),
            "skipped": skipped,
            "results": [
                {**{k: v for k, v in asdict(r).items() if k != "profile"}, **r.figures(args.orders, args.threads)}
                for r in results
            ],
        }
        print(json.dumps(payload, indent=2))
    else:
        if results:
            print(render(results, settings, calibration))
        for line in skipped:
            print(line)
    # Something measured is a success; a run that could measure nothing at all is not.
    return 0 if results else 1


def _shown(url: str) -> str:
    """The server's URL without its password, for messages."""
    return sa.make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
