"""What the publishing tests share: the core's and the reference blocks' wheels, built once, and throwaway
virtual environments to install them (and the blocks under test) into — never the repository's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.cli.harness import REPOSITORY


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.skip("uv is not installed (pip install uv)")
    return found


def run(
    command: Sequence[str | os.PathLike[str]],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "BLOCKS_MANIFEST")}
    environment.update({"COLUMNS": "200", "NO_COLOR": "1"})
    environment.update(env or {})
    completed = subprocess.run(
        [os.fspath(part) for part in command],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return completed


def ok(completed: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert completed.returncode == 0, f"{completed.args} failed:\n{completed.stdout}\n{completed.stderr}"
    assert "Traceback" not in completed.stdout + completed.stderr, completed.stderr
    return completed


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of wheels: the core and the seven reference blocks, built from this checkout."""
    directory = tmp_path_factory.mktemp("wheelhouse")
    ok(run([uv(), "build", "--wheel", "--all-packages", "--out-dir", directory], cwd=REPOSITORY))
    return directory


def wheel_of(wheelhouse: Path, distribution: str) -> Path:
    (wheel,) = wheelhouse.glob(distribution.replace("-", "_") + "-*.whl")
    return wheel


def fresh_venv(directory: Path, wheelhouse: Path, distributions: Sequence[str]) -> Path:
    """A new virtual environment under ``directory`` with the core and ``distributions`` installed from the
    wheelhouse (their other dependencies from the usual index); returns its ``bin`` directory."""
    venv = directory / "venv"
    ok(run([uv(), "venv", "--quiet", "--python", sys.executable, venv], cwd=directory))
    wheels = [wheel_of(wheelhouse, "retailblocks"), *(wheel_of(wheelhouse, d) for d in distributions)]
    python = venv / "bin" / "python"
    ok(run([uv(), "pip", "install", "--quiet", "--python", python, "--find-links", wheelhouse, *wheels], cwd=directory))
    return venv / "bin"
