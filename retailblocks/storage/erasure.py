"""Pseudonymising rows: every text a personal identifier appears in gets the identifier's token instead.

Erasing a member (``retailblocks.fusion.privacy``) hands each block the identifiers the member was known
by and the token that replaces each; a block calls :func:`pseudonymise` on its own tables, and the core on
its own (the outbox's event payloads, orders' details, the timeline, stored HTTP answers). Only text is
touched: string columns, and the strings anywhere inside JSON documents, so ids, amounts and ledger rows
stay exactly as they were and every balance still adds up.

An identifier is replaced wherever it occurs inside a text, not only where it is the whole text: an event
says ``"phone:+8613800000000"``, a saga's error may quote an address. The rows are found by the database
(``LIKE`` on the column read as text, for the identifier as it is and as JSON escapes it), so a table of
millions of rows is read only where a match is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

__all__ = ["pseudonymise", "replace_in"]


def replace_in(value: Any, replacements: Mapping[str, str]) -> Any:
    """``value`` (a string, or a JSON tree of lists, dicts and scalars) with every identifier replaced."""
    if isinstance(value, str):
        # Longest first, so an identifier that contains another is replaced whole.
        for old in sorted(replacements, key=len, reverse=True):
            if old in value:
                value = value.replace(old, replacements[old])
        return value
    if isinstance(value, list):
        return [replace_in(item, replacements) for item in value]
    if isinstance(value, dict):
        return {replace_in(key, replacements): replace_in(item, replacements) for key, item in value.items()}
    return value


def _patterns(replacements: Mapping[str, str]) -> list[str]:
    found: set[str] = set()
    for old in replacements:
        for form in (old, json.dumps(old)[1:-1]):
            escaped = form.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            found.add(f"%{escaped}%")
    return sorted(found)


def _is_text(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, (sa.String, sa.JSON)) or isinstance(
        getattr(column.type, "impl", None), (sa.String, sa.JSON)
    )


def pseudonymise(db: sa.Connection, tables: Iterable[sa.Table], replacements: Mapping[str, str]) -> int:
    """Replace every identifier in ``replacements`` by its token in every text column of ``tables``
    (primary keys included: an identity keyed by its value gets the token as its key). Returns the rows
    changed; running it again changes none. Identifiers shorter than 3 characters are refused: they
    would match inside unrelated text."""
    wanted = {old: new for old, new in replacements.items() if old and old != new}
    if any(len(old) < 3 for old in wanted):
        raise ValueError("an identifier to pseudonymise must be at least 3 characters long")
    if not wanted:
        return 0
    patterns = _patterns(wanted)
    changed = 0
    for table in tables:
        columns = [column for column in table.columns if _is_text(column)]
        if not columns:
            continue
        keys = list(table.primary_key.columns) or list(table.columns)
        condition = sa.or_(
            *(sa.cast(column, sa.Text).like(pattern, escape="\\") for column in columns for pattern in patterns)
        )
        rows = db.execute(sa.select(*table.columns).where(condition)).mappings().all()
        for row in rows:
            new_values: dict[str, Any] = {}
            for column in columns:
                current = row[column.name]
                if current is None:
                    continue
                replaced = replace_in(current, wanted)
                if replaced != current:
                    new_values[column.name] = replaced
            if not new_values:
                continue
            where = [key == row[key.name] for key in keys]
            db.execute(table.update().where(*where).values(**new_values))
            changed += 1
    return changed
