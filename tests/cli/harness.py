"""Running the ``blocks`` command in tests, and checking what it said and what it left on disk.

:func:`blocks` runs it in this process through click's ``CliRunner`` (fast, for the bulk of the cases);
:func:`blocks_process` runs the real thing, ``python -m retailblocks.cli``, in a child process, so the
tests also see what an operator's terminal sees: the exit status, stdout and stderr of a real process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs
from click.testing import CliRunner

from retailblocks.cli import cli

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "examples"
EXAMPLE_MANIFESTS = sorted(EXAMPLES.glob("*/blocks.yaml"))

#: Variables that change what the command does; a test states the ones it wants and never inherits them.
_INFLUENTIAL = ("RETAILBLOCKS_BLOCKS", "RETAILBLOCKS_TRACE", "RETAILBLOCKS_DEBUG", "BLOCKS_MANIFEST")


@attrs.frozen
class Outcome:
    """What one run of ``blocks`` did: its exit status and everything it printed."""

    status: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def one_error_line(self) -> str:
        """The single line on stderr; fails unless there is exactly one, it starts with ``error:`` and
        nothing anywhere looks like a traceback."""
        assert "Traceback" not in self.stdout + self.stderr, self.stderr
        assert len(self.error_lines) == 1, f"expected one line on stderr, got:\n{self.stderr}"
        line = self.error_lines[0]
        assert line.startswith("error: "), line
        return line


def blocks(*args: str | os.PathLike[str], env: Mapping[str, str | None] | None = None) -> Outcome:
    """Run ``blocks ARGS`` in this process (through click's test runner) in the current directory."""
    environment: dict[str, str | None] = dict.fromkeys(_INFLUENTIAL)
    environment.update(env or {})
    result = CliRunner().invoke(cli, [os.fspath(a) for a in args], env=environment, prog_name="blocks")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"blocks {args} raised {result.exception!r} instead of reporting it") from (
            result.exception
        )
    return Outcome(result.exit_code, result.stdout, result.stderr)


def blocks_process(
    *args: str | os.PathLike[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Outcome:
    """Run ``python -m retailblocks.cli ARGS`` as a child process in ``cwd``."""
    environment = {k: v for k, v in os.environ.items() if k not in _INFLUENTIAL}
    environment.update({"COLUMNS": "200", "NO_COLOR": "1"})
    environment.update(env or {})
    completed = subprocess.run(
        [sys.executable, "-m", "retailblocks.cli", *(os.fspath(a) for a in args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(completed.returncode, completed.stdout, completed.stderr)


def tree(root: Path) -> dict[str, bytes | None]:
    """Everything under ``root``: each file's bytes, and ``None`` for each directory (or other entry)."""
    snapshot: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        snapshot[relative] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return snapshot


def copy_example(name: str, into: Path) -> Path:
    """Copy ``examples/<name>/`` into ``into`` and return the copied ``blocks.yaml``."""
    target = into / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns(".blocks", "blocks.lock"))
    return target / "blocks.yaml"


def assembled_example(name: str, into: Path) -> Path:
    """:func:`copy_example`, then ``blocks assemble``: operator commands open only an assembled stack."""
    manifest = copy_example(name, into)
    outcome = blocks("assemble", "-m", manifest)
    assert outcome.status == 0, outcome.stderr
    return manifest
