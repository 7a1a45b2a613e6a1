"""Run every mutant against the kit and report which the kit kills: ``uv run python -m tests.kit.kill_rate``.

A mutant is a ``Mutant<What>`` class in ``tests/kit/mutants/mutant_<area>.py``: a contract configured on a
reference block with one deliberate bug (its docstring says which). Each runs in its own pytest process,
once per database (SQLite, and PostgreSQL when ``RETAILBLOCKS_TEST_POSTGRES_URL`` names a server), with
``-x``: the kit kills it when that run fails, and the first failing test is reported.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from retailblocks.testing.databases import POSTGRES_ENV, REQUIRE_POSTGRES_ENV

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = Path(__file__).resolve().parent / "mutants"
#: A mutant run that takes longer than this is reported as not killed (a hang is not a kill).
RUN_TIMEOUT_SECONDS = 300


@attrs.frozen
class Mutant:
    module: Path
    name: str
    bug: str

    @property
    def node_id(self) -> str:
        return f"{self.module.relative_to(ROOT)}::{self.name}"


@attrs.frozen
class Outcome:
    mutant: Mutant
    database: str
    killed: bool
    detail: str


def find_mutants(directory: Path = MUTANTS) -> list[Mutant]:
    """Every ``Mutant*`` class of every ``mutant_*.py``, read without importing them."""
    found = []
    for module in sorted(directory.glob("mutant_*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Mutant"):
                bug = (ast.get_docstring(node) or "").strip().splitlines()
                found.append(Mutant(module, node.name, bug[0] if bug else ""))
    return found


def databases() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


def run(mutant: Mutant, database: str) -> Outcome:
    """Run the mutant's contract on ``database``; killed when the run fails (pytest exit status 1)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        mutant.node_id,
        "-p",
        "no:cacheprovider",
        "-q",
        "-x",
        "-rfE",
        "--no-header",
        "-o",
        "python_classes=Mutant",
        "-k",
        database,
    ]
    environ = {**os.environ, REQUIRE_POSTGRES_ENV: "1" if database == "postgresql" else "0"}
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        return Outcome(mutant, database, False, f"no verdict in {RUN_TIMEOUT_SECONDS}s")
    if done.returncode == 1:
        return Outcome(mutant, database, True, _first_failure(done.stdout))
    if done.returncode == 0:
        return Outcome(mutant, database, False, "every test passed")
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    return Outcome(mutant, database, False, f"pytest exited {done.returncode}: {' / '.join(tail)}")


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            kind, _, rest = line.partition(" ")
            test = rest.split(" - ", 1)[0].rsplit("::", 1)[-1]
            return f"{kind.lower()}: {test}"
    return "failed"


def run_all(mutants: Sequence[Mutant], on: Sequence[str], workers: int = 2) -> list[Outcome]:
    """Every mutant on every database, ``workers`` pytest processes at a time (the CI machine has 2 cores)."""
    jobs = [(mutant, database) for mutant in mutants for database in on]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: run(*job), jobs))


def table(outcomes: Sequence[Outcome]) -> str:
    rows = [("mutant", "bug", "database", "verdict", "first failing test")]
    rows += [
        (o.mutant.name, o.mutant.bug, o.database, "killed" if o.killed else "SURVIVED", o.detail) for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    for database in dict.fromkeys(o.database for o in outcomes):
        ran = [o for o in outcomes if o.database == database]
        killed = sum(o.killed for o in ran)
        lines.append(f"kill rate on {database}: {killed}/{len(ran)} ({100 * killed / len(ran):.0f}%)")
    return "\n".join(lines)


def main() -> int:
    outcomes = run_all(find_mutants(), databases())
    print(table(outcomes))
    return 0 if all(o.killed for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
