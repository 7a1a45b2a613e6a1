"""pytest fixtures for block authors and for the core's own tests.

``database_url`` runs a test once on SQLite and once on PostgreSQL (when ``RETAILBLOCKS_TEST_POSTGRES_URL``
names a server; with ``RETAILBLOCKS_REQUIRE_POSTGRES=1`` a missing server fails instead of skipping).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from retailblocks.testing.databases import (
    POSTGRES_ENV,
    REQUIRE_POSTGRES_ENV,
    fresh_database,
    postgres_server_url,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, once per supported database kind."""
    kind = request.param
    if kind == "postgresql" and postgres_server_url() is None:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_ENV} is not set")
        pytest.skip(f"set {POSTGRES_ENV} to run PostgreSQL tests")
    with fresh_database(kind, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """The URL of an empty SQLite database, for tests that need only one."""
    with fresh_database("sqlite", tmp_path) as url:
        yield url


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL server")
    config.addinivalue_line("markers", "slow: a long stress test")
