"""The core's floors (pyproject.toml's import-linter contract, docs/architecture.md) hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_floors_run_one_way() -> None:
    lint_imports = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint_imports).exists():
        pytest.fail("lint-imports is not installed: `uv sync` installs the dev group that has it")
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", ["retailblocks.model", "retailblocks.errors", "retailblocks.clock"])
def test_the_ground_floor_loads_no_framework(module: str) -> None:
    """Value types are for everyone (a channel's client, a block's tests): importing them must not pull in
    the plugin system or the database toolkit."""
    probe = (
        f"import sys, {module}; "
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'pluggy', 'sqlalchemy', 'sqlmodel'}); "
        "print(','.join(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""
