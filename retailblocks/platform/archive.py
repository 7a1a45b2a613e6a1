"""A merchant's data written out before its storage is dropped: one JSON Lines file per table.

Each row is a JSON object of its columns (times in ISO 8601, bytes in base64, other values as text); the
directory also holds ``archive.json`` naming the merchant, the time and each table's row count, written
last, so an archive without it is incomplete. Files are fsynced before anything is dropped.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from retailblocks.clock import Clock
from retailblocks.errors import EnvironmentFailure
from retailblocks.platform.placement import quoted, schema_engine


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return value


def _target(directory: str | os.PathLike[str], merchant_id: str, clock: Clock) -> Path:
    stamp = clock.now().strftime("%Y%m%dT%H%M%S%fZ")
    target = Path(directory) / f"{merchant_id}-{stamp}"
    try:
        target.mkdir(parents=True, exist_ok=False)
    except OSError as error:
        raise EnvironmentFailure(f"cannot create the archive {target}: {error.strerror or error}") from None
    return target


def _write_tables(engine: sa.Engine, tables: list[str], target: Path, merchant_id: str, clock: Clock) -> dict[str, int]:
    counts: dict[str, int] = {}
    with engine.connect() as connection:
        # One snapshot for every table (the merchant is paused; this makes sure of it all the same).
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        for table in sorted(tables):
            result = connection.exec_driver_sql(f"SELECT * FROM {quoted(table)}")
            columns = list(result.keys())
            count = 0
            with open(target / f"{table}.jsonl", "w", encoding="utf-8") as stream:
                for row in result:
                    record = {column: _value(value) for column, value in zip(columns, row, strict=True)}
                    stream.write(json.dumps(record, sort_keys=True, default=str) + "\n")
                    count += 1
                stream.flush()
                os.fsync(stream.fileno())
            counts[table] = count
        connection.rollback()
    summary = {"merchant": merchant_id, "archived_at": clock.now().isoformat(), "rows": counts}
    with open(target / "archive.json", "w", encoding="utf-8") as stream:
        stream.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    return counts


def remove_schema(
    server: sa.Engine,
    schema: str,
    merchant_id: str,
    directory: str | os.PathLike[str],
    clock: Clock,
    *,
    role: bool,
) -> tuple[Path | None, Mapping[str, int]]:
    with server.connect() as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        tables = [
            str(name)
            for name in connection.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
            ).scalars()
        ]
        connection.rollback()
    target: Path | None = None
    counts: dict[str, int] = {}
    if exists is not None:
        target = _target(directory, merchant_id, clock)
        counts = _write_tables(schema_engine(server, schema, role=role), tables, target, merchant_id, clock)
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted(schema)} CASCADE")
        if role:
            found = connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": schema}).first()
            if found is not None:
                connection.exec_driver_sql(f"DROP ROLE {quoted(schema)}")
    return target, counts


def remove_sqlite(
    file: Path, merchant_id: str, directory: str | os.PathLike[str], clock: Clock
) -> tuple[Path | None, Mapping[str, int]]:
    if not file.exists():
        return None, {}
    from retailblocks.storage.engine import create_engine

    engine = create_engine(f"sqlite:///{file}")
    try:
        tables = [name for name in sa.inspect(engine).get_table_names() if not name.startswith("sqlite_")]
        target = _target(directory, merchant_id, clock)
        counts = _write_tables(engine, tables, target, merchant_id, clock)
    finally:
        engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)
    return target, counts
