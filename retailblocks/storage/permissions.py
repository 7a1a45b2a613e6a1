"""Table permissions: which tables a block may write and read, and the guard that checks every statement.

A block owns its tables (those its migrations create, and those named with its prefix) and declares the
core tables it reads. With the guard on (:func:`permissions_enforced`: the test kit, this repository's
tests, ``RETAILBLOCKS_ENFORCE_PERMISSIONS=1``), every statement sent on a unit of work's connection while a
block's hook runs (``ctx.current_block``) is read for the tables it writes and reads, and a write to a
table the block does not own, or a read of a core table it did not declare, raises
:class:`~retailblocks.errors.TableAccessDenied` before the statement reaches the database. The core's own
statements (``current_block`` is ``"core"`` or one of the core's blocks) are not checked.

The statement is read as text, whichever path it took (SQLAlchemy's execution or a
:class:`~retailblocks.storage.prepared.Prepared` statement, both announce it to ``before_cursor_execute``),
and what each text touches is kept, so a statement a flow sends many times is read once.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy import event

from retailblocks.errors import TableAccessDenied
from retailblocks.storage.unit_of_work import UNITS_BY_CONNECTION

__all__ = [
    "ENFORCE_ENV",
    "BlockTables",
    "TableGuard",
    "TableUse",
    "enforcing_permissions",
    "permissions_enforced",
    "tables_used",
]

#: The environment switch that turns the guard on for every stack assembled in the process.
ENFORCE_ENV = "RETAILBLOCKS_ENFORCE_PERMISSIONS"

#: The owner the guard reports for the core's tables.
CORE_OWNER = "core"

_forced: list[bool] = []
# Marks a statement not judged yet, in the verdicts (where None means allowed).
_UNSEEN = TableAccessDenied("not judged yet")


def permissions_enforced(environ: Mapping[str, str] | None = None) -> bool:
    """Whether stacks assembled now check their blocks' statements: inside :func:`enforcing_permissions`,
    as it says; otherwise when ``RETAILBLOCKS_ENFORCE_PERMISSIONS`` is set to anything but ``0``."""
    if _forced:
        return _forced[-1]
    value = (os.environ if environ is None else environ).get(ENFORCE_ENV, "")
    return value not in ("", "0")


@contextmanager
def enforcing_permissions(on: bool = True) -> Iterator[None]:
    """Stacks assembled inside this block check (``on``) or do not check their blocks' table access,
    whatever the environment says. For test kits and fixtures::

        @pytest.fixture(autouse=True)
        def _guarded():
            with enforcing_permissions():
                yield
    """
    _forced.append(on)
    try:
        yield
    finally:
        _forced.pop()


# -- reading a statement ---------------------------------------------------------------------------


@attrs.frozen
class TableUse:
    """The tables one statement (or one block's source) writes and reads, by lower-case name."""

    writes: frozenset[str] = frozenset()
    reads: frozenset[str] = frozenset()

    def __or__(self, other: TableUse) -> TableUse:
        return TableUse(self.writes | other.writes, self.reads | other.reads)


_TOKEN = re.compile(
    r"""
      (?P<skip>'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/)        # string literals and comments
    | (?P<name>(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*)
               (?:\s*\.\s*(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*))*)
    | (?P<punct>[(),;])
    """,
    re.VERBOSE | re.DOTALL,
)

_PART = re.compile(r'"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*')

# Words after which a name is not a table's alias but the next clause.
_CLAUSE_WORDS = frozenset(
    [
        "where",
        "join",
        "inner",
        "left",
        "right",
        "full",
        "outer",
        "cross",
        "natural",
        "on",
        "using",
        "group",
        "order",
        "limit",
        "offset",
        "having",
        "union",
        "except",
        "intersect",
        "for",
        "returning",
        "set",
        "values",
        "window",
        "lateral",
        "as",
        "select",
        "from",
        "into",
        "default",
    ]
)
# Functions whose parentheses hold a FROM that is no table: EXTRACT(year FROM at), SUBSTRING(s FROM 2).
_FROM_FUNCTIONS = frozenset({"extract", "substring", "substr", "trim", "position", "overlay"})
_DDL = frozenset({"create", "drop", "alter", "truncate"})


def _table_name(token: str) -> str:
    """The table of a possibly schema-qualified, possibly quoted name: its last part, unquoted, lower case."""
    last: str = _PART.findall(token)[-1]
    if last[:1] in ('"', "`", "["):
        last = last[1:-1].replace('""', '"')
    return last.lower()


def tables_used(sql: str) -> TableUse:
    """The tables ``sql`` writes (INSERT, UPDATE, DELETE, DDL) and reads (FROM, JOIN), by name.

    A reader of the statements blocks send, not a full SQL parser: it knows the clauses SQLAlchemy writes
    for SQLite and PostgreSQL and the plain SQL a block writes by hand. A name it cannot place is left out.
    """
    tokens: list[tuple[str, str]] = []  # (kind, text): kind "name" or "punct"
    for match in _TOKEN.finditer(sql):
        if match.lastgroup == "name":
            tokens.append(("name", match.group("name")))
        elif match.lastgroup == "punct":
            tokens.append(("punct", match.group("punct")))
    writes: set[str] = set()
    reads: set[str] = set()
    parens: list[bool] = []  # per open parenthesis: whether a FROM inside it names no table
    count = len(tokens)

    def word(index: int) -> str:
        if 0 <= index < count and tokens[index][0] == "name":
            return tokens[index][1].lower()
        return ""

    def table_at(index: int) -> str | None:
        if 0 <= index < count and tokens[index][0] == "name" and tokens[index][1].lower() not in _CLAUSE_WORDS:
            return _table_name(tokens[index][1])
        return None

    for index, (kind, text) in enumerate(tokens):
        if kind == "punct":
            if text == "(":
                parens.append(word(index - 1) in _FROM_FUNCTIONS)
            elif text == ")" and parens:
                parens.pop()
            continue
        lowered = text.lower()
        if lowered == "into":
            found = table_at(index + 1)
            if found:
                writes.add(found)
        elif lowered == "update":
            # ON CONFLICT DO UPDATE and SELECT … FOR UPDATE name no table of their own.
            if word(index - 1) not in ("do", "for"):
                found = table_at(index + 1)
                if found:
                    writes.add(found)
        elif lowered == "delete":
            if word(index + 1) == "from":
                found = table_at(index + 2)
                if found:
                    writes.add(found)
        elif lowered in ("table", "truncate") and (lowered == "truncate" or _after_ddl(tokens, index)):
            position = index + 1
            while word(position) in ("if", "not", "exists", "only", "table"):
                position += 1
            found = table_at(position)
            if found:
                writes.add(found)
        elif lowered == "join":
            found = table_at(index + 1)
            if found:
                reads.add(found)
        elif lowered == "from":
            if (parens and parens[-1]) or word(index - 1) == "distinct":
                continue
            position = index + 1
            while True:
                found = table_at(position)
                if found is None:
                    break
                reads.add(found)
                position += 1
                if word(position) == "as":
                    position += 1
                if table_at(position) is not None:  # an alias
                    position += 1
                if position < count and tokens[position] == ("punct", ","):
                    position += 1
                    continue
                break
    return TableUse(frozenset(writes), frozenset(reads))


def _after_ddl(tokens: list[tuple[str, str]], index: int) -> bool:
    """Whether the TABLE at ``index`` follows CREATE, DROP or ALTER (with TEMP, TEMPORARY, UNLOGGED…)."""
    position = index - 1
    while position >= 0 and tokens[position][0] == "name":
        lowered = tokens[position][1].lower()
        if lowered in _DDL:
            return True
        if lowered not in ("temp", "temporary", "unlogged", "global", "local", "virtual"):
            return False
        position -= 1
    return False


# -- what a block may touch ------------------------------------------------------------------------


@attrs.frozen
class BlockTables:
    """What one block may touch: the tables it owns (by name, and any named with ``prefix``) and the core
    tables it reads. ``declared`` says whether the block's class declared them or they were derived."""

    block: str
    owns: frozenset[str]
    prefix: str
    reads_core: frozenset[str]
    declared: bool = True

    def owns_table(self, table: str) -> bool:
        return table in self.owns or (bool(self.prefix) and table.startswith(self.prefix))


class TableGuard:
    """Checks the statements blocks send through their flow context's connection (see the module).

    ``blocks`` maps each block id the guard watches to what it may touch; ids it does not know (the core
    and the core's own blocks) are not checked. ``core_tables`` are the tables the core owns.
    """

    _KEPT = 4096

    def __init__(self, blocks: Mapping[str, BlockTables], core_tables: frozenset[str]):
        self.blocks = dict(blocks)
        self.core_tables = frozenset(name.lower() for name in core_tables)
        self._uses: dict[str, TableUse] = {}
        # Per watched block id, the verdict on each statement text seen: None (allowed) or the refusal.
        # The listener's whole work for a statement seen before is two dictionary look-ups.
        self._verdicts: dict[str, dict[str, TableAccessDenied | None]] = {block_id: {} for block_id in self.blocks}
        self._lock = threading.Lock()
        self._engines: list[sa.Engine] = []

    def owner(self, table: str) -> str | None:
        """Who owns ``table``: a block's name, ``"core"``, or None for a table nobody declares."""
        table = table.lower()
        if table in self.core_tables:
            return CORE_OWNER
        best: tuple[int, str] | None = None
        for tables in self.blocks.values():
            if table in tables.owns:
                return tables.block
            if tables.prefix and table.startswith(tables.prefix) and (best is None or len(tables.prefix) > best[0]):
                best = (len(tables.prefix), tables.block)
        return best[1] if best is not None else None

    def check(self, block_id: str, sql: str) -> None:
        """Raise TableAccessDenied if block ``block_id`` may not send ``sql``."""
        denied = self.verdict(block_id, sql)
        if denied is not None:
            raise TableAccessDenied(str(denied), block=denied.block, table=denied.table, access=denied.access)

    def verdict(self, block_id: str, sql: str) -> TableAccessDenied | None:
        """Why block ``block_id`` may not send ``sql``, or None if it may (or is not watched)."""
        verdicts = self._verdicts.get(block_id)
        if verdicts is None:
            return None
        found = verdicts.get(sql, _UNSEEN)
        if found is _UNSEEN:
            found = self._judge(block_id, sql)
            with self._lock:
                if len(verdicts) >= self._KEPT:
                    verdicts.clear()
                verdicts[sql] = found
        return found

    def _use(self, sql: str) -> TableUse:
        use = self._uses.get(sql)
        if use is None:
            use = tables_used(sql)
            with self._lock:
                if len(self._uses) >= self._KEPT:
                    self._uses.clear()
                self._uses[sql] = use
        return use

    def _judge(self, block_id: str, sql: str) -> TableAccessDenied | None:
        tables = self.blocks.get(block_id)
        if tables is None:
            return None
        use = self._use(sql)
        who = block_id if block_id == tables.block else f"{block_id} ({tables.block})"
        for table in sorted(use.writes):
            if tables.owns_table(table):
                continue
            owner = self.owner(table)
            if owner == CORE_OWNER:
                whose = f"the core table {table!r}"
                why = "the core's tables change only through the core's flows"
            elif owner is not None:
                whose = f"{table!r}, a table of block {owner!r}"
                why = "blocks talk through hooks and events, never through each other's tables"
            else:
                whose = f"{table!r}, a table it does not own"
                why = f"declare it in owns_tables on the block's class, or name it with the prefix {tables.prefix!r}"
            return TableAccessDenied(
                f"block {who!r} wrote to {whose}: a block writes only its own tables ({why})",
                block=block_id,
                table=table,
                access="write",
            )
        for table in sorted(use.reads):
            if table in tables.reads_core or tables.owns_table(table) or self.owner(table) != CORE_OWNER:
                continue
            granted = ", ".join(sorted(tables.reads_core)) or "none"
            return TableAccessDenied(
                f"block {who!r} read the core table {table!r}, which it does not declare: add {table!r} to "
                f"reads_core_tables on the block's class (it declares: {granted})",
                block=block_id,
                table=table,
                access="read",
            )
        return None

    # -- on an engine ------------------------------------------------------------------------------

    def _before_cursor_execute(self, connection: sa.Connection, _cursor: Any, statement: str, *_rest: Any) -> None:
        # Every statement of every flow passes here: the core's in two look-ups, a block's known one in three.
        uow = UNITS_BY_CONNECTION.get(connection)
        acting = uow.acting_block if uow is not None else None
        if acting is None:
            return
        verdicts = self._verdicts.get(acting)
        if verdicts is None:
            return
        denied = verdicts.get(statement, _UNSEEN)
        if denied is _UNSEEN:
            denied = self.verdict(acting, statement)
        if denied is not None:
            raise TableAccessDenied(str(denied), block=denied.block, table=denied.table, access=denied.access)

    def install(self, engine: sa.Engine) -> None:
        """Check the statements sent on ``engine``'s units of work from now on."""
        event.listen(engine, "before_cursor_execute", self._before_cursor_execute)
        self._engines.append(engine)

    def remove(self) -> None:
        for engine in self._engines:
            if event.contains(engine, "before_cursor_execute", self._before_cursor_execute):
                event.remove(engine, "before_cursor_execute", self._before_cursor_execute)
        self._engines.clear()
