"""``blocks demo`` promises a reproducible day: by default it runs one worker, and two runs of one seed on
fresh stacks agree on every figure but the timings, whatever token each run's keys and ids carry."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from retailblocks import assemble
from retailblocks.cli.simulation_commands import DEMO_EXAMPLE, EXAMPLES, demo
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.simulation import RetailDay, load_profile, summarize


def test_the_demo_runs_one_worker_unless_told_otherwise() -> None:
    workers = next(option for option in demo.params if option.name == "workers")
    assert workers.default == 1
    assert "reproducible" in (demo.help or "")


def a_day(directory: Path, *, seed: int, run: str, orders: int) -> dict[str, Any]:
    """The demo's day, as ``blocks demo`` runs it, on a fresh copy of its example."""
    directory.mkdir()
    for item in (EXAMPLES / DEMO_EXAMPLE).iterdir():
        if item.is_file():
            shutil.copy2(item, directory / item.name)
    manifest = directory / "blocks.yaml"
    profile = load_profile(None, manifest)
    clock = ManualClock(profile.opening())
    stack = assemble(manifest, clock=clock, ids=RandomIds(seed, namespace=f"s{seed}{run}"))
    try:
        day = RetailDay(stack, profile, seed=seed, clock=clock, run=run)
        day.open_store()
        summary = summarize(stack, day.run(orders))
    finally:
        stack.close()
    for timing in ("seconds", "orders_per_second"):
        summary.pop(timing)
    return summary


def test_two_days_of_one_seed_agree(tmp_path: Path) -> None:
    first = a_day(tmp_path / "first", seed=7, run="aaaa1111", orders=60)
    second = a_day(tmp_path / "second", seed=7, run="ffff0000", orders=60)
    assert first["ok"], first["invariants"]
    assert first == second
