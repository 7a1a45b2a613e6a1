"""Blocks' table permissions at assembly: what each block owns and may read, what its code uses, and the
guard a stack installs when permissions are enforced (see :mod:`retailblocks.storage.permissions`).

``blocks assemble`` reports, for each block of the manifest, the tables it owns and the core tables it
declares it reads, beside what a scan of its code finds it writing and reading: statements built at import
time (:class:`~retailblocks.storage.Prepared`, :class:`~retailblocks.storage.InsertIfAbsent`,
:class:`~retailblocks.storage.KeyClaimer`), SQL written as text, and the core's table objects it imports.
What the scan finds outside the declaration is a finding, not a refusal: the guard refuses it in tests.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from retailblocks.hookspecs.blocks import Block
from retailblocks.storage import InsertIfAbsent, KeyClaimer, Prepared
from retailblocks.storage.migrations import SCHEMA_TABLE, Migration
from retailblocks.storage.permissions import CORE_OWNER, BlockTables, TableGuard, TableUse, tables_used

if TYPE_CHECKING:
    from retailblocks.assembly.plan import Plan

__all__ = [
    "BlockPermissions",
    "block_permissions",
    "block_tables",
    "class_permissions",
    "core_tables",
    "describe_permissions",
    "scan_block",
    "table_guard",
    "tables_dict",
]


def _migration_tables(migrations: Iterable[Migration]) -> frozenset[str]:
    return frozenset(name.lower() for migration in migrations for name in getattr(migration, "tables", ()))


def _migrations_of(plugin: object) -> list[Migration]:
    function = getattr(plugin, "stack_migrations", None)
    return list(function()) if callable(function) else []


def core_tables(the_plan: Plan) -> frozenset[str]:
    """The tables the core and its own blocks (fusion, connectors) create, and the schema versions table."""
    from retailblocks.assembly.plan import CORE_BLOCK_IDS

    found = {SCHEMA_TABLE.name}
    for block_id in CORE_BLOCK_IDS:
        plugin = the_plan.plugin_manager.get_plugin(block_id)
        if plugin is not None:
            found |= _migration_tables(_migrations_of(plugin))
    return frozenset(found)


def block_tables(block: Block) -> BlockTables:
    """What ``block`` may touch: its declared tables and those its migrations create, its prefix, the
    core tables it declares it reads."""
    cls = type(block)
    owns = {name.lower() for name in cls.owns_tables or ()} | _migration_tables(_migrations_of(block))
    return BlockTables(
        block=cls.name,
        owns=frozenset(owns),
        prefix=f"{block.table_prefix}_".lower(),
        reads_core=frozenset(name.lower() for name in cls.reads_core_tables or ()),
        declared=cls.reads_core_tables is not None,
    )


def table_guard(the_plan: Plan) -> TableGuard:
    """The guard for the plan's blocks (the core's own blocks are not watched)."""
    return TableGuard(
        {assembled.entry.id: block_tables(assembled.instance) for assembled in the_plan.blocks},
        core_tables(the_plan),
    )


# -- what a block's code uses ----------------------------------------------------------------------


@attrs.frozen
class CodeUse:
    """What a scan of a block's modules found: tables written and read, and table objects referenced."""

    use: TableUse
    referenced: frozenset[str]


_SQL_TEXT = re.compile(r"^\s*(select|insert|update|delete|with|replace)\b", re.IGNORECASE)


def _modules_of(cls: type[Block]) -> list[ModuleType]:
    """The loaded modules of the package that holds the block's module (importing more could run a test
    helper's imports): ``acme_qr`` for ``acme_qr.block``."""
    package = cls.__module__.rpartition(".")[0] or cls.__module__
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None and (name == package or name.startswith(f"{package}."))
    ]


def _statement_use(statement: Any) -> TableUse:
    try:
        return tables_used(str(statement.compile(dialect=sqlite.dialect())))
    except Exception:  # a statement only its own database compiles: judged by the guard at run time
        return TableUse()


def _source_use(module: ModuleType) -> TableUse:
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError, ValueError):
        return TableUse()
    found = TableUse()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_TEXT.match(node.value):
            found = found | tables_used(node.value)
    return found


_SCANNED: dict[type[Block], CodeUse] = {}


def scan_block(cls: type[Block]) -> CodeUse:
    """What the block's loaded modules write, read and reference (kept per class: code does not change)."""
    found = _SCANNED.get(cls)
    if found is None:
        found = _SCANNED[cls] = _scan(cls)
    return found


def _scan(cls: type[Block]) -> CodeUse:
    use = TableUse()
    referenced: set[str] = set()
    for module in _modules_of(cls):
        use = use | _source_use(module)
        for value in list(vars(module).values()):
            if isinstance(value, Prepared):
                use = use | _statement_use(value.statement)
            elif isinstance(value, InsertIfAbsent):
                use = use | TableUse(writes=frozenset({value.table.name.lower()}))
            elif isinstance(value, KeyClaimer):
                name = value.insert.table.name.lower()
                use = use | TableUse(writes=frozenset({name}), reads=frozenset({name}))
            elif isinstance(value, sa.Table):
                referenced.add(value.name.lower())
    return CodeUse(use, frozenset(referenced))


# -- the report ------------------------------------------------------------------------------------


@attrs.frozen
class BlockPermissions:
    """One block's permissions as assembly reports them, with what its code was found to do outside them."""

    block_id: str
    tables: BlockTables
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    findings: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**tables_dict(self.tables), "code_writes": list(self.writes), "code_reads": list(self.reads)}


def tables_dict(tables: BlockTables) -> dict[str, Any]:
    """A block's permissions as data: what the lock records (the code's scan is not: it depends on which
    of the block's modules a process has loaded)."""
    return {
        "declared": tables.declared,
        "owns": sorted(tables.owns),
        "owns_prefix": tables.prefix,
        "reads_core": sorted(tables.reads_core),
    }


def block_permissions(the_plan: Plan) -> list[BlockPermissions]:
    """Each manifest block's permissions, declared against used, in manifest order."""
    guard = table_guard(the_plan)
    reports = []
    for assembled in the_plan.blocks:
        block_id = assembled.entry.id
        tables = guard.blocks[block_id]
        code = scan_block(type(assembled.instance))
        reports.append(
            BlockPermissions(
                block_id=block_id,
                tables=tables,
                writes=tuple(sorted(code.use.writes)),
                reads=tuple(sorted(code.use.reads)),
                findings=tuple(_findings(guard, block_id, tables, code)),
            )
        )
    return reports


def _whose(guard: TableGuard, table: str) -> str:
    owner = guard.owner(table)
    if owner == CORE_OWNER:
        return f"the core table {table!r}"
    if owner is not None:
        return f"{table!r}, a table of block {owner!r}"
    return f"{table!r}, which it does not own"


def _findings(guard: TableGuard, block_id: str, tables: BlockTables, code: CodeUse) -> list[str]:
    findings = []
    if not tables.declared:
        findings.append(
            "declares no table permissions: taken to own the tables its migrations create and those named "
            f"{tables.prefix}*, and to read no core table; declare reads_core_tables (and owns_tables) on its class"
        )
    for table in sorted(tables.owns):
        owner = guard.owner(table)
        if owner not in (None, tables.block):
            findings.append(f"declares it owns {_whose(guard, table)}")
    for table in sorted(tables.reads_core):
        if guard.owner(table) != CORE_OWNER:
            findings.append(f"declares it reads {table!r}, which is no core table")
    for table in sorted(code.use.writes):
        if not tables.owns_table(table):
            findings.append(f"writes {_whose(guard, table)}")
    core_read = {t for t in code.use.reads | code.referenced if guard.owner(t) == CORE_OWNER}
    for table in sorted(core_read - tables.reads_core - code.use.writes):
        findings.append(f"reads the core table {table!r} without declaring it in reads_core_tables")
    return findings


def class_permissions(cls: type[Block]) -> dict[str, Any]:
    """A block class's declared permissions, as ``blocks plugins`` shows them (nothing is instantiated:
    tables its migrations create are known only once it is assembled)."""
    # Block.table_prefix is the instance's; a class names its tables the same way from its name.
    prefix = f"{cls.name.replace('-', '_')}_" if cls.name else ""
    return {
        "declared": cls.reads_core_tables is not None,
        "owns": sorted(cls.owns_tables or ()),
        "owns_prefix": prefix,
        "reads_core": sorted(cls.reads_core_tables or ()) if cls.reads_core_tables is not None else None,
    }


def describe_permissions(permissions: dict[str, Any]) -> tuple[str, str]:
    """What a block may do with tables, in two short texts: what it owns (``sql_inventory_* (7 tables)``)
    and the core tables it reads (``orders, order_lines``, ``none``, or ``undeclared``)."""
    owns: Sequence[str] = permissions["owns"]
    prefix: str = permissions["owns_prefix"]
    if not owns:
        owned = f"{prefix}*"
    elif all(name.startswith(prefix) for name in owns):
        owned = f"{prefix}* ({len(owns)} table{'s' if len(owns) != 1 else ''})"
    else:
        owned = ", ".join(owns)
    if not permissions["declared"]:
        return owned, "undeclared"
    return owned, ", ".join(permissions["reads_core"] or ()) or "none"
