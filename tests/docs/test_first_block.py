"""docs/first-block.md runs as written: its files are extracted, "installed" and its order is taken.

Each code block of the guide that starts with ``# file: PATH`` is written to PATH in a fresh directory.
Installing is done the way an installer leaves a distribution behind — a ``.dist-info`` directory with
the entry points of the guide's ``pyproject.toml`` — so the core discovers the block exactly as it
discovers one installed with pip, without building a wheel. Then the guide's script runs in a process
of its own and must print what the guide says it prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "first-block.md"

_BLOCK = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.S | re.M)
_FILE = re.compile(r"^# file: (?P<path>\S+)\n")


def guide_files() -> dict[str, str]:
    files = {}
    for block in _BLOCK.finditer(GUIDE.read_text(encoding="utf-8")):
        named = _FILE.match(block["body"])
        if named:
            files[named["path"]] = block["body"]
    return files


def expected_output() -> str:
    texts = [block["body"] for block in _BLOCK.finditer(GUIDE.read_text(encoding="utf-8")) if block["lang"] == "text"]
    assert len(texts) == 1, "the guide shows the script's output in one ```text block"
    return texts[0]


def install(project: Path, into: Path) -> None:
    """Leave what an installer leaves: the distribution's metadata and its entry points."""
    metadata = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist_info = into / f"{metadata['name'].replace('-', '_')}-{metadata['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {metadata['name']}\nVersion: {metadata['version']}\n", encoding="utf-8"
    )
    points = ["[retailblocks]"]
    points += [f"{name} = {target}" for name, target in metadata["entry-points"]["retailblocks"].items()]
    (dist_info / "entry_points.txt").write_text("\n".join(points) + "\n", encoding="utf-8")


def test_the_guide_names_every_file_it_needs() -> None:
    assert set(guide_files()) == {
        "pyproject.toml",
        "house_account/tables.py",
        "house_account/__init__.py",
        "blocks.yaml",
        "take_an_order.py",
    }


def test_the_guide_block_assembles_and_takes_an_order(tmp_path: Path) -> None:
    for relative, text in guide_files().items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    install(tmp_path, tmp_path)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    checked = subprocess.run(
        [sys.executable, "-m", "retailblocks.cli", "assemble", "--check", "-m", "blocks.yaml"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "house-account" in checked.stdout
    ran = subprocess.run(
        [sys.executable, "take_an_order.py"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == expected_output()
