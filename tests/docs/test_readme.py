"""The README's Python example runs as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert blocks, "the README lost its Python example"
    shutil.copytree(
        ROOT / "examples" / "corner-shop",
        tmp_path / "examples" / "corner-shop",
        ignore=shutil.ignore_patterns(".blocks", "blocks.lock"),
    )
    script = tmp_path / "readme_example.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("rejected:") and "MILK-1L" in lines[0]
    assert lines[1].endswith("fulfilled 9.09 EUR")
    assert lines[2] == "3.90 EUR"
