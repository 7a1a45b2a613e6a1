"""Who may call the admin API: every admin route, asked without a key, with a store key, and with admin
keys whose scopes do not cover it."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.http import create_app
from retailblocks.manifest.api import ADMIN_AREAS
from retailblocks.stack import assemble
from tests.helpers import SHOP_MANIFEST, write_manifest
from tests.http.conftest import ADMIN_KEY, KEYS_ENV, WEB_KEY, bearer

READER_KEY = "rb_sk_reader_0123456789abcdefghij"
ORDERS_KEY = "rb_sk_orders_0123456789abcdefghij"
SECTION = """
api:
  keys:
    - {id: web-shop, channel: web, key: "${WEB_KEY}"}
    - {id: back-office, scopes: ["*"], key: "${ADMIN_KEY}"}
    - {id: reader, scopes: [READ_SCOPES], key: "${READER_KEY}"}
    - {id: order-desk, scopes: ["orders:write"], key: "${ORDERS_KEY}"}
""".replace("READ_SCOPES", ", ".join(f'"{area}:read"' for area in ADMIN_AREAS))


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    manifest = write_manifest(tmp_path, database_url, textwrap.dedent(SHOP_MANIFEST) + SECTION)
    environ = {**KEYS_ENV, "READER_KEY": READER_KEY, "ORDERS_KEY": ORDERS_KEY}
    with (
        assemble(
            manifest, clock=ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)), ids=RandomIds(0), environ=environ
        ) as stack,
        TestClient(create_app(stack), raise_server_exceptions=False) as test_client,
    ):
        yield test_client


def admin_operations() -> list[tuple[str, str, str]]:
    """(method, path with its parameters filled in, area) of every admin operation the OpenAPI document lists."""
    document = create_app(manifest="unused.yaml").openapi()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path), path.split("/")[2])
        for path, operations in document["paths"].items()
        if path.startswith("/admin/")
        for method in operations
    ]


OPERATIONS = admin_operations()


def test_every_admin_route_belongs_to_an_area_with_a_scope() -> None:
    assert OPERATIONS
    assert {area for _, _, area in OPERATIONS} <= set(ADMIN_AREAS)
    assert {"orders", "stock", "flows", "events"} <= {area for _, _, area in OPERATIONS}


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    body = {} if method == "POST" else None
    response = client.request(method, path, json=body, headers={**headers, "Idempotency-Key": "scope-test"})
    if response.status_code in (401, 403):
        assert response.headers["content-type"] == "application/problem+json"
    return response.status_code


@pytest.mark.parametrize(("method", "path", "area"), OPERATIONS)
def test_no_key_is_401_and_a_store_key_is_403(client: TestClient, method: str, path: str, area: str) -> None:
    assert call(client, method, path, {}) == 401
    assert call(client, method, path, bearer("rb_sk_unknown_0123456789abcdefghij")) == 401
    assert call(client, method, path, bearer(WEB_KEY)) == 403


@pytest.mark.parametrize(("method", "path", "area"), OPERATIONS)
def test_a_key_without_the_areas_scope_is_403(client: TestClient, method: str, path: str, area: str) -> None:
    reader = call(client, method, path, bearer(READER_KEY))
    if method == "GET":
        assert reader not in (401, 403)
    else:
        assert reader == 403  # read scopes never write
    orders_desk = call(client, method, path, bearer(ORDERS_KEY))
    if area == "orders":
        assert orders_desk not in (401, 403)
    else:
        assert orders_desk == 403
    assert call(client, method, path, bearer(ADMIN_KEY)) not in (401, 403)


def test_every_admin_operation_documents_its_answer_and_its_errors() -> None:
    document = create_app(manifest="unused.yaml").openapi()
    for path, operations in document["paths"].items():
        if not path.startswith("/admin/"):
            continue
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            success = next(code for code in operation["responses"] if code.startswith("2"))
            schema = operation["responses"][success]["content"]["application/json"]["schema"]
            assert "$ref" in schema, where
            assert {"401", "403", "422", "429"} <= set(operation["responses"]), where
            if method == "post":
                assert "400" in operation["responses"], where
                headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
                assert "Idempotency-Key" in headers, where
