"""Two merchants with different block sets on one platform, on SQLite files or PostgreSQL schemas."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from retailblocks.testing.databases import fresh_database, postgres_server_url
from tests.helpers import SHOP_MANIFEST

NORTH_ADMIN = "rb_sk_north_admin_0123456789abcdef"
NORTH_WEB = "rb_pk_north_web_0123456789abcdefgh"
SOUTH_ADMIN = "rb_sk_south_admin_0123456789abcdef"
SOUTH_WEB = "rb_pk_south_web_0123456789abcdefgh"
PLATFORM_READ = "rb_sk_platform_read_0123456789abcd"
PLATFORM_OPS = "rb_sk_platform_ops_0123456789abcde"
ENV = {
    "NORTH_ADMIN": NORTH_ADMIN,
    "NORTH_WEB": NORTH_WEB,
    "SOUTH_ADMIN": SOUTH_ADMIN,
    "SOUTH_WEB": SOUTH_WEB,
    "PLATFORM_READ": PLATFORM_READ,
    "PLATFORM_OPS": PLATFORM_OPS,
}

#: The full shop: inventory, card, stored value, loyalty, logistics, promotions.
NORTH = textwrap.dedent(SHOP_MANIFEST).replace("id: test-shop", "id: north").replace(
    'database: "DATABASE"\n', ""
) + textwrap.dedent("""
    api:
      keys:
        - {id: web, channel: web, key: "${NORTH_WEB}"}
        - {id: office, scopes: ["*"], key: "${NORTH_ADMIN}"}
    """)

#: A smaller shop: inventory and card only.
SOUTH = textwrap.dedent("""
    version: 1
    merchant: {id: south, name: South, currency: EUR}
    channels:
      - {id: web, type: online}
    catalog:
      - {sku: MILK, title: Milk, price: "1.29 EUR", category: dairy}
    blocks:
      - use: sql-inventory
        config:
          locations: [{id: shop, kind: store}]
          channels: {web: {locations: [shop]}}
      - use: sandbox-card
        config: {secret_key: sk_test_south}
    api:
      keys:
        - {id: web, channel: web, key: "${SOUTH_WEB}"}
        - {id: office, scopes: ["*"], key: "${SOUTH_ADMIN}"}
    """)


def write_platform(directory: Path, database: str, *, roles: bool = False) -> Path:
    """``platform.yaml`` with merchants north and south, on ``database`` (a PostgreSQL URL, else SQLite)."""
    for name, text in (("north", NORTH), ("south", SOUTH)):
        (directory / name).mkdir(parents=True, exist_ok=True)
        (directory / name / "blocks.yaml").write_text(text, encoding="utf-8")
    if database.startswith("postgresql"):
        entry = f'{{url: "{database}", roles: {"true" if roles else "false"}, pool_size: 4}}'
    else:
        entry = "{directory: data}"
    path = directory / "platform.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            platform: {{id: mall, name: The Mall}}
            databases:
              main: {entry}
            merchants:
              - {{id: north, manifest: north/blocks.yaml, database: main}}
              - {{id: south, manifest: south/blocks.yaml, database: main}}
            api:
              keys:
                - {{id: reader, scopes: ["platform:read"], key: "${{PLATFORM_READ}}"}}
                - {{id: ops, scopes: ["platform:write"], key: "${{PLATFORM_OPS}}"}}
            """),
        encoding="utf-8",
    )
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def platform_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The two-merchant platform, once on SQLite and once on PostgreSQL with a role per merchant."""
    if request.param == "sqlite":
        yield write_platform(tmp_path, "sqlite")
        return
    if postgres_server_url() is None:
        pytest.skip("set RETAILBLOCKS_TEST_POSTGRES_URL to run PostgreSQL tests")
    with fresh_database("postgresql", tmp_path) as url:
        yield write_platform(tmp_path, url, roles=True)
