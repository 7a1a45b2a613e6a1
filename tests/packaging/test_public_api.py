"""The reference blocks use only the core's public API: the modules declared here, the names each
exports (``__all__`` where a module has one, never a name with ``_``), and no private attribute of a
core object (``money._same``) nor the core's side of a public one (``ctx.uow``).

A block that reaches into a private module or name breaks when the core reorganises itself; the
reference blocks are the examples third-party blocks copy, so they must show only what is promised.
docs/block-toolkit.md lists the same modules for authors.
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
    "retailblocks.hookspecs.blocks": "Block, NoConfig, secret_field",
    "retailblocks.hookspecs.inventory": "the inventory contract",
    "retailblocks.hookspecs.payment": "the payment contract",
    "retailblocks.hookspecs.membership": "the membership contract: PartnerPointsMovement",
    "retailblocks.hookspecs.logistics": "the logistics contract",
    "retailblocks.hookspecs.marketing": "the marketing contract: MemberCoupon",
    "retailblocks.hookspecs.lifecycle": "the lifecycle hooks; unknown() and NAME_KINDS for stack_check",
    "retailblocks.storage": "Prepared, PreparedQuery, insert_if_absent, KeyClaimer, read_only_connection…",
    "retailblocks.testing": "BlockHarness and the pytest plugin",
    "retailblocks.testing.conformance": "the contract suites a block runs",
    "retailblocks.cli.support": "options and output helpers for a block's commands (its __all__)",
}

#: Packages whose every module without a leading ``_`` is public (the contracts and the test kit).
PUBLIC_PACKAGES = ("retailblocks.hookspecs", "retailblocks.testing")

#: Public attributes of core objects that are the core's side of them, and what a block uses instead.
CORE_ONLY_ATTRIBUTES: dict[str, str] = {
    "uow": "ctx.db, ctx.read_only_connection(), ctx.outside_connection() or ctx.outside_engine()",
}


def is_public_module(module: str) -> bool:
    if any(part.startswith("_") for part in module.split(".")):
        return False
    return module in PUBLIC_MODULES or any(module.startswith(f"{package}.") for package in PUBLIC_PACKAGES)


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
            elif not is_public_module(module):
                problems.append(f"{where}: {module} is not a public module (see PUBLIC_MODULES)")
            elif name is not None and name.startswith("_"):
                problems.append(f"{where}: private name {module}.{name}")
            elif name is not None and name != "*" and not is_exported(module, name):
                problems.append(f"{where}: {module}.{name} is not in the module's __all__")
    assert problems == []


def is_exported(module: str, name: str) -> bool:
    """Whether ``module`` offers ``name`` publicly: in its ``__all__`` when it has one (a public
    submodule counts too)."""
    loaded = importlib.import_module(module)
    exported = getattr(loaded, "__all__", None)
    return exported is None or name in exported or is_public_module(f"{module}.{name}")


def private_attributes(path: Path) -> list[tuple[int, str]]:
    """(line, expression) for each private attribute read on anything but the code's own ``self``/``cls``
    (``line.unit_price._same``), and each core-only attribute (``ctx.uow``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Attribute):
            continue
        own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
        private = node.attr.startswith("_") and not (node.attr.startswith("__") and node.attr.endswith("__"))
        if (private and not own) or node.attr in CORE_ONLY_ATTRIBUTES:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_block_touches_a_private_attribute_of_a_core_object() -> None:
    problems = []
    for path in block_sources():
        for line, expression in private_attributes(path):
            attribute = expression.rsplit(".", 1)[1]
            instead = CORE_ONLY_ATTRIBUTES.get(attribute)
            hint = f": use {instead}" if instead else ""
            problems.append(f"{path.relative_to(ROOT)}:{line}: {expression}{hint}")
    assert problems == []


def test_the_check_sees_private_attributes(tmp_path: Path) -> None:
    sample = tmp_path / "block.py"
    sample.write_text(
        "def hook(self, ctx, money):\n"
        "    money._same(money)\n"
        "    self._gateway()\n"
        "    engine = ctx.uow.engine\n"
        "    return money.__class__\n"
    )
    assert private_attributes(sample) == [(2, "money._same"), (4, "ctx.uow")]


def test_the_check_refuses_a_module_outside_the_public_list() -> None:
    assert is_public_module("retailblocks.hookspecs.payment")
    assert is_public_module("retailblocks.testing.conformance")
    assert not is_public_module("retailblocks.hookspecs._markers")
    assert not is_public_module("retailblocks.assembly.references")
    assert not is_public_module("retailblocks.manifest.readers")
    assert not is_exported("retailblocks.cli.support", "assemble_stack")
    assert is_exported("retailblocks.storage", "insert_if_absent")


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


def test_every_reference_block_names_its_tables_with_its_table_prefix() -> None:
    """``Block.table_prefix`` is the one naming rule: each table a reference block declares starts with it."""
    from importlib.metadata import entry_points

    import sqlalchemy as sa

    checked = 0
    for point in entry_points(group="retailblocks"):
        block_class = point.load()
        package = block_class.__module__.split(".")[0]
        if not package.startswith("retailblocks_"):
            continue
        # table_prefix reads only the class's name, so no configuration is needed to ask it.
        prefix = object.__new__(block_class).table_prefix
        module = importlib.import_module(f"{package}.tables")
        tables = [value for value in vars(module).values() if isinstance(value, sa.Table)]
        assert tables, package
        assert [table.name for table in tables if not table.name.startswith(f"{prefix}_")] == []
        checked += 1
    assert checked >= 6
