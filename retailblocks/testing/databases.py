"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

POSTGRES_ENV = "RETAILBLOCKS_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "RETAILBLOCKS_REQUIRE_POSTGRES"


def postgres_server_url() -> str | None:
    """The PostgreSQL server tests may create databases on (``postgresql+psycopg://…/postgres``)."""
    return os.environ.get(POSTGRES_ENV) or None


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """Yield the URL of an empty database of ``kind`` ("sqlite" or "postgresql"), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / f'test-{uuid.uuid4().hex[:8]}.db'}"
        return
    server = postgres_server_url()
    if server is None:
        raise RuntimeError(f"set {POSTGRES_ENV} to a PostgreSQL server URL to run PostgreSQL tests")
    name = f"rb_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
