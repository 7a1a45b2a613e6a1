"""A stack with store and admin keys, served in-process through the ASGI app."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.http import create_app
from retailblocks.manifest.api import key_digest
from retailblocks.stack import Stack, assemble
from tests.helpers import SHOP_MANIFEST, receive, write_manifest

WEB_KEY = "rb_pk_web_0123456789abcdefghij"
MARKET_KEY = "rb_pk_market_0123456789abcdefgh"
ADMIN_KEY = "rb_sk_admin_0123456789abcdefghij"
REVOKED_KEY = "rb_pk_revoked_0123456789abcdefg"
WEB_SERVER_KEY = "rb_sk_webserver_0123456789abcdef"
SESSION_SECRET = "a-session-secret-of-at-least-32-characters"
SLOW_KEY = "rb_pk_slow_0123456789abcdefghijk"
KEYS_ENV = {
    "WEB_KEY": WEB_KEY,
    "MARKET_KEY": MARKET_KEY,
    "ADMIN_KEY": ADMIN_KEY,
    "WEB_SERVER_KEY": WEB_SERVER_KEY,
    "SESSION_SECRET": SESSION_SECRET,
    "SLOW_KEY": SLOW_KEY,
}

API_SECTION = f"""
api:
  max_body_bytes: 4096
  session_secret: ${{SESSION_SECRET}}
  keys:
    - {{id: web-server, channel: web, key: "${{WEB_SERVER_KEY}}", signs_in_shoppers: true}}
    - {{id: web-shop, channel: web, key: "${{WEB_KEY}}", rate_per_minute: 6000, cors: ["https://shop.example.com"]}}
    - {{id: marketplace, channel: market, key: "${{MARKET_KEY}}", rate_per_minute: 6000}}
    - {{id: slow-web, channel: web, key: "${{SLOW_KEY}}", rate_per_minute: 60}}
    - {{id: back-office, scopes: ["*"], key: "${{ADMIN_KEY}}"}}
    - {{id: old-web, channel: web, key: "sha256:{key_digest(REVOKED_KEY)}", revoked: true}}
"""


def api_stack(directory: Path, database_url: str, *, stock: int = 10) -> Stack:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    manifest = write_manifest(directory, database_url, textwrap.dedent(SHOP_MANIFEST) + API_SECTION)
    stack = assemble(manifest, clock=clock, ids=RandomIds(0), environ=KEYS_ENV)
    if stock:
        receive(stack, dict.fromkeys(stack.catalog, stock), locations=("dc", "store-a"))
    return stack


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    with api_stack(tmp_path, database_url) as running:
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack), raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
