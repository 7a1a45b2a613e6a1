"""The documentation site builds with ``mkdocs build --strict``: every page in the nav exists, every link
resolves and every reference page's ``::: module`` is generated from the code without a warning."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs and mkdocstrings[python] are not installed (they are in the dev dependency group: uv sync)",
)


@needs_mkdocs
def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)]
    built = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    hooks = (site / "reference" / "hooks" / "index.html").read_text(encoding="utf-8")
    assert "payment_authorize" in hooks and "stack_routes" in hooks
    toolkit = (site / "reference" / "toolkit" / "index.html").read_text(encoding="utf-8")
    assert "outside_connection" in toolkit and "insert_if_absent" in toolkit
    assert (site / "first-block" / "index.html").is_file()


def test_every_docs_page_is_in_the_site_nav() -> None:
    """A page left out of the nav is built but unreachable: every Markdown file under docs/ is listed."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md"))
    assert [page for page in pages if f" {page}" not in nav] == []
