"""The reference blocks import only the core's public API: the modules declared here, names without ``_``.

A block that reaches into a private module or name breaks when the core reorganises itself; the
reference blocks are the examples third-party blocks copy, so they must show only what is promised.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The core modules a block may import from, and why each is public. The one place this is declared.
PUBLIC_MODULES: dict[str, str] = {
    "retailblocks": "Block, FlowContext, hookimpl, Capability, assemble…",
    "retailblocks.errors": "the error tree blocks raise and catch",
    "retailblocks.model": "the value types of the hook contracts",
    "retailblocks.model.limits": "the bounds blocks check their inputs against",
    "retailblocks.clock": "clocks and id factories",
    "retailblocks.context": "FlowContext",
    "retailblocks.lazy": "lazy_exports, for a block package's __init__",
    "retailblocks.hookspecs": "the hook contracts",
    "retailblocks.hookspecs.membership": "PartnerPointsMovement",
    "retailblocks.hookspecs.marketing": "MemberCoupon",
    "retailblocks.storage": "Prepared, PreparedQuery, insert_if_absent, KeyClaimer, read_only_connection…",
    "retailblocks.testing": "BlockHarness and the pytest plugin",
    "retailblocks.testing.conformance": "the contract suites a block runs",
    "retailblocks.cli.support": "options and output helpers for a block's commands",
    "retailblocks.manifest.readers": "suggestion, for config errors that suggest a spelling",
    "retailblocks.assembly.references": "unknown, for errors naming an unknown reference",
}

#: Names each public module must offer (beyond those the blocks import, which are checked too).
PROMISED: dict[str, tuple[str, ...]] = {
    "retailblocks.storage": (
        "ClaimOutcome",
        "InsertIfAbsent",
        "KeyClaim",
        "KeyClaimer",
        "Migration",
        "Prepared",
        "PreparedQuery",
        "UnitOfWork",
        "create_tables",
        "insert_if_absent",
        "json_encoder",
        "read_only_connection",
        "request_hash",
    ),
}


def block_sources() -> list[Path]:
    """Every module of every reference block's package (not its tests, which may test anything)."""
    return sorted(
        path
        for path in (ROOT / "plugins").glob("*/retailblocks_*/**/*.py")
        if "tests" not in path.relative_to(ROOT / "plugins").parts
    )


def core_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) for each import of a core module in ``path``; name None for ``import m``."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "retailblocks" or node.module.startswith("retailblocks."):
                found.extend((node.lineno, node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "retailblocks" or alias.name.startswith("retailblocks."):
                    found.append((node.lineno, alias.name, None))
    return found


def test_the_reference_blocks_are_found() -> None:
    packages = {path.relative_to(ROOT / "plugins").parts[0] for path in block_sources()}
    assert len(packages) >= 6, packages


def test_no_block_imports_a_private_core_module_or_name() -> None:
    problems = []
    for path in block_sources():
        for line, module, name in core_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if any(part.startswith("_") for part in module.split(".")):
                problems.append(f"{where}: private module {module}")
            elif module not in PUBLIC_MODULES:
                problems.append(f"{where}: {module} is not a public module (see PUBLIC_MODULES)")
            elif name is not None and name.startswith("_"):
                problems.append(f"{where}: private name {module}.{name}")
    assert problems == []


@pytest.mark.parametrize("module", sorted(PUBLIC_MODULES))
def test_public_modules_offer_the_names_blocks_import(module: str) -> None:
    loaded = importlib.import_module(module)
    wanted = set(PROMISED.get(module, ()))
    for path in block_sources():
        wanted.update(name for _line, imported, name in core_imports(path) if imported == module and name)
    missing = sorted(name for name in wanted if name != "*" and not hasattr(loaded, name))
    assert missing == []
    exported = getattr(loaded, "__all__", None)
    if exported is not None and module == "retailblocks.storage":
        assert set(PROMISED[module]) <= set(exported)


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "block.py"
    sample.write_text(
        "from retailblocks.storage.prepared import _compile\n"
        "from retailblocks.storage import _INSERTS\n"
        "def later():\n    import retailblocks._private\n"
    )
    imports = core_imports(sample)
    assert imports == [
        (1, "retailblocks.storage.prepared", "_compile"),
        (2, "retailblocks.storage", "_INSERTS"),
        (4, "retailblocks._private", None),
    ]
