"""The checkout benchmark, as its README gives it, on a machine with no PostgreSQL server.

It must print the SQLite figures it could measure and say in one line that PostgreSQL was skipped, not die
with a traceback after the SQLite part.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "checkout_throughput.py"
TINY = ["--orders", "2", "--warmup", "0", "--passes", "1", "--threads", "1", "--workload", "hot-sku"]


def closed_port() -> int:
    # A port that was free a moment ago: bound, read, released; nothing listens on it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAILBLOCKS_")}
    env["RETAILBLOCKS_BENCH_POSTGRES_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/postgres"
    return subprocess.run(
        [sys.executable, str(BENCHMARK), *TINY, *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_sqlite_figures_are_printed_and_postgresql_is_named_as_skipped() -> None:
    run = run_benchmark()
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "sqlite     hot-sku" in run.stdout
    skipped = [line for line in run.stdout.splitlines() if "skipped" in line]
    assert len(skipped) == 1
    assert skipped[0].startswith("postgresql skipped: no server at postgresql+psycopg://postgres@127.0.0.1:")


def test_only_postgresql_without_a_server_says_so_and_fails() -> None:
    run = run_benchmark("--database", "postgresql")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stdout.strip().startswith("postgresql skipped: no server at")
