"""The demo's example ships inside the package, so an installed wheel runs ``blocks demo``; the repository's
``examples/lucky-coffee`` is the same directory, not a second copy that could drift.

(.ci/run builds the wheels, installs them into a fresh virtual environment and runs the demo from outside
the repository; this checks the layout that makes that work, quickly.)
"""

from __future__ import annotations

from pathlib import Path

import retailblocks
from retailblocks.cli.simulation_commands import DEMO_EXAMPLE, EXAMPLES

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGE = Path(retailblocks.__file__).resolve().parent


def test_the_demo_reads_its_example_from_inside_the_package() -> None:
    assert EXAMPLES.is_relative_to(PACKAGE)
    assert (EXAMPLES / DEMO_EXAMPLE / "blocks.yaml").is_file()
    assert (EXAMPLES / DEMO_EXAMPLE / "simulation.yaml").is_file()


def test_the_repository_example_is_the_packaged_one() -> None:
    assert (REPOSITORY / "examples" / DEMO_EXAMPLE).resolve() == (EXAMPLES / DEMO_EXAMPLE).resolve()


def test_the_declared_licence_is_there() -> None:
    text = (REPOSITORY / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
