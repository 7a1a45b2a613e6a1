"""A platform: its manifest, each merchant's isolated storage, its operations and its one server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from retailblocks.errors import UnknownObject
from retailblocks.http.platform import create_platform_app
from retailblocks.manifest import ManifestError
from retailblocks.platform.manifest import load_platform
from retailblocks.platform.operations import (
    Platform,
    add_merchant,
    assemble_platform,
    check_platform,
    list_platform,
    open_platform,
    pause_merchant,
    resume_merchant,
)
from retailblocks.platform.placement import schema_engine
from tests.cli.harness import blocks
from tests.helpers import CARD_OK, cart, receive
from tests.platform.conftest import (
    ENV,
    NORTH_ADMIN,
    NORTH_WEB,
    PLATFORM_OPS,
    PLATFORM_READ,
    SOUTH_ADMIN,
    SOUTH_WEB,
    write_platform,
)

# --- the manifest ----------------------------------------------------------------------------------------------


def test_problems_are_reported_at_their_line_and_column_all_at_once(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    path.write_text(
        "platform: {id: mall, name: Mall}\n"
        "databases:\n"
        "  main: {directory: data}\n"
        "merchants:\n"
        "  - {id: north, manifest: n/blocks.yaml, database: main}\n"
        "  - {id: north, manifest: s/blocks.yaml, database: main}\n"
        "  - {id: Bad_Id, manifest: s/blocks.yaml, database: main}\n"
        "  - {id: west, manifest: w/blocks.yaml, database: mian, status: sleeping}\n",
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as caught:
        load_platform(path, {})
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}:6:10: merchants[1].id: duplicate merchant id 'north' (first declared at line 5:10)"
    assert lines[1].startswith(f"{path}:7:10: merchants[2].id: a merchant id is lower-case letters")
    assert lines[2].startswith(f"{path}:8:51: merchants[3].database: unknown database 'mian'; did you mean 'main'?")


def test_a_key_in_clear_text_and_an_unknown_scope_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    base = "platform: {id: mall, name: Mall}\ndatabases: {main: {directory: d}}\nmerchants: []\n"
    path.write_text(base + "api: {keys: [{id: ops, scopes: ['platform:write'], key: hunter2hunter2}]}\n")
    with pytest.raises(ManifestError, match="a key in clear text is refused") as caught:
        load_platform(path, {})
    assert "hunter2" not in str(caught.value)
    path.write_text(base + "api: {keys: [{id: ops, scopes: ['orders:write'], key: '${K}'}]}\n")
    with pytest.raises(ManifestError, match="expected one of 'platform:read'"):
        load_platform(path, {"K": "k" * 30})
    path.write_text(base + "api: {keys: [{id: ops, scopes: ['platform:read'], key: '${K}'}]}\n")
    (key,) = load_platform(path, {"K": "k" * 30}).keys
    assert key.allows("platform", "read") and not key.allows("platform", "write") and "k" * 30 not in repr(key)


def test_a_merchant_whose_own_manifest_names_another_id_is_refused(tmp_path: Path) -> None:
    path = write_platform(tmp_path, "sqlite")
    path.write_text(path.read_text().replace("id: south,", "id: sud,"), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"merchant 'sud' .* is 'south' in its own manifest"):
        check_platform(path, environ=ENV)


def test_the_cli_reports_a_bad_platform_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text(
        "platform: {id: mall}\ndatabases: {main: {directory: d}}\nmerchants: []\n", encoding="utf-8"
    )
    outcome = blocks("platform", "check", "-p", str(tmp_path / "platform.yaml"))
    assert outcome.status == 2
    assert (
        outcome.one_error_line() == f"error: {tmp_path / 'platform.yaml'}:1:11: platform: missing required key 'name'"
    )


# --- assembling: each merchant its own blocks, its own storage -------------------------------------------------------


@pytest.fixture
def platform(platform_path: Path) -> Iterator[Platform]:
    assemble_platform(platform_path, environ=ENV)
    with open_platform(platform_path, environ=ENV) as opened:
        yield opened


def test_merchants_with_different_blocks_are_assembled_side_by_side(platform_path: Path) -> None:
    assembled = {m.id: m for m in assemble_platform(platform_path, environ=ENV)}
    assert set(assembled["north"].blocks) == {"inventory", "card", "stored-value", "loyalty", "logistics", "promotions"}
    assert assembled["south"].blocks == ("sql-inventory", "sandbox-card")
    assert (platform_path.parent / "north" / "blocks.lock").exists()
    assert (platform_path.parent / "south" / "blocks.lock").exists()
    listed = {m.id: m.status for m in list_platform(platform_path, environ=ENV)}
    assert listed == {"north": "active", "south": "active"}
    # Assembling again migrates nothing and keeps the statuses.
    assert {m.id: m.status for m in assemble_platform(platform_path, environ=ENV)} == listed


def test_each_merchants_rows_stay_in_its_own_storage(platform: Platform) -> None:
    north, south = platform.stack("north"), platform.stack("south")
    receive(north, {"BEANS": 5})
    order = north.checkout(cart(("BEANS", 1)), key="k1")
    assert [o.id for o in north.orders()] == [order.id]
    assert south.orders() == []
    with pytest.raises(UnknownObject):
        south.order(order.id)
    if north.engine.dialect.name == "sqlite":
        assert Path(str(north.engine.url.database)).name == "north.db"
        assert Path(str(south.engine.url.database)).name == "south.db"
        return
    assert north.engine.pool is south.engine.pool, "one pool per database server"
    with north.engine.connect() as connection:
        owners = connection.execute(
            sa.text("SELECT schemaname FROM pg_tables WHERE tablename = 'orders' ORDER BY 1")
        ).scalars()
        assert list(owners) == ["m_north", "m_south"]
        assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 1


@pytest.mark.postgres
def test_a_query_for_another_merchants_schema_fails_in_the_database(platform: Platform) -> None:
    north, south = platform.stack("north"), platform.stack("south")
    if north.engine.dialect.name != "postgresql":
        pytest.skip("schemas and roles are PostgreSQL's")
    with north.context() as ctx:
        assert ctx.db.execute(sa.text("SELECT current_user")).scalar() == "m_north"
    for query in ("SELECT count(*) FROM m_south.orders", "SELECT count(*) FROM public.pg_class"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), north.context() as ctx:
            ctx.db.execute(sa.text(query.replace("public.pg_class", "m_south.retailblocks_schema")))
    # Nor can a merchant hand itself another's privileges: it owns its schema, nothing more.
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), south.context() as ctx:
        ctx.db.execute(sa.text("GRANT USAGE ON SCHEMA m_north TO m_south"))


@pytest.mark.postgres
def test_the_scope_is_per_transaction_so_a_shared_connection_carries_nothing_over(platform: Platform) -> None:
    north = platform.stack("north")
    if north.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's search path")
    server = platform.placement.server(platform.manifest.databases["main"])
    south = schema_engine(server, "m_south", role=True)
    # More than psycopg's prepare threshold (5): a prepared statement is planned again for each schema.
    for _ in range(8):
        for engine, expected in ((north.engine, 0), (south, 0)):
            with engine.begin() as connection:
                assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar() == expected
    receive(north, {"BEANS": 5})
    north.checkout(cart(("BEANS", 1)), key="k1")
    for _ in range(8):
        for engine, expected in ((north.engine, 1), (south, 0)):
            with engine.begin() as connection:
                assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar() == expected
    with server.connect() as connection:
        assert connection.execute(sa.text("SELECT current_user")).scalar() != "m_north"
        assert "m_" not in str(connection.execute(sa.text("SHOW search_path")).scalar())


# --- serving ---------------------------------------------------------------------------------------------------------


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_platform_app(platform), raise_server_exceptions=False) as test_client:
        yield test_client


def test_each_merchant_is_served_under_its_path_to_its_own_keys_only(platform: Platform, client: TestClient) -> None:
    north = client.get("/m/north/store/catalog", headers=bearer(NORTH_WEB))
    assert north.status_code == 200, north.text
    assert {p["sku"] for p in north.json()["products"]} == {"BEANS", "MUG", "TEA"}
    south = client.get("/m/south/store/catalog", headers=bearer(SOUTH_WEB))
    assert {p["sku"] for p in south.json()["products"]} == {"MILK"}
    for path, key in (("/m/south/store/catalog", NORTH_WEB), ("/m/north/admin/orders", SOUTH_ADMIN)):
        refused = client.get(path, headers=bearer(key))
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"


def test_another_merchants_order_is_not_found(platform: Platform, client: TestClient) -> None:
    north = platform.stack("north")
    receive(north, {"BEANS": 5})
    order = north.checkout(cart(("BEANS", 1)), key="k1")
    assert client.get(f"/m/north/admin/orders/{order.id}", headers=bearer(NORTH_ADMIN)).status_code == 200
    missing = client.get(f"/m/south/admin/orders/{order.id}", headers=bearer(SOUTH_ADMIN))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_an_orders_idempotency_row_is_kept_in_its_merchants_storage(platform: Platform, client: TestClient) -> None:
    # The row is written apart from the checkout's transactions; on PostgreSQL it must still land in the
    # merchant's schema (a statement outside the merchant's scoped transaction would land elsewhere).
    receive(platform.stack("north"), {"BEANS": 5})
    body = {
        "lines": [{"sku": "BEANS", "quantity": 1}],
        "payments": [{"method": "card", "details": {"card_number": CARD_OK}}],
        "fulfilment": {"kind": "carry_out"},
    }
    headers = {**bearer(NORTH_WEB), "Idempotency-Key": "order-1"}
    first = client.post("/m/north/store/orders", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = client.post("/m/north/store/orders", json=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    north, south = platform.stack("north"), platform.stack("south")
    with north.engine.begin() as connection:
        kept = connection.execute(sa.text("SELECT idempotency_key, state FROM http_requests")).all()
    assert [tuple(row) for row in kept] == [("order-1", "done")]
    with south.engine.begin() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM http_requests")).scalar() == 0
    if north.engine.dialect.name == "postgresql":
        with north.engine.begin() as connection:
            owners = connection.execute(
                sa.text("SELECT schemaname FROM pg_tables WHERE tablename = 'http_requests' ORDER BY 1")
            ).scalars()
            assert list(owners) == ["m_north", "m_south"]


def test_an_unknown_merchant_is_404_and_a_paused_one_503(platform_path: Path, client: TestClient) -> None:
    unknown = client.get("/m/nowhere/store/catalog", headers=bearer(NORTH_WEB))
    assert (unknown.status_code, unknown.json()["type"].rsplit(":", 1)[-1]) == (404, "unknown-merchant")
    assert client.get("/store/catalog", headers=bearer(NORTH_WEB)).status_code == 404
    pause_merchant(platform_path, "south", environ=ENV)
    client.app.platform.statuses(fresh=True)  # type: ignore[attr-defined]  # no waiting out the cache
    paused = client.get("/m/south/store/catalog", headers=bearer(SOUTH_WEB))
    assert paused.status_code == 503
    assert paused.headers["content-type"] == "application/problem+json"
    assert "paused" in paused.json()["detail"]
    assert client.get("/m/north/store/catalog", headers=bearer(NORTH_WEB)).status_code == 200
    resume_merchant(platform_path, "south", environ=ENV)
    client.app.platform.statuses(fresh=True)  # type: ignore[attr-defined]
    assert client.get("/m/south/store/catalog", headers=bearer(SOUTH_WEB)).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_every_route_of_one_merchant_refuses_the_other_merchants_keys(client: TestClient) -> None:
    """Each route of the API (from its OpenAPI document, path parameters filled in), called on north with
    south's store and admin keys."""
    from retailblocks.http.app import openapi_document

    open_routes = {"/healthz", "/readyz", "/openapi.json"}
    tried = 0
    for route, operations in openapi_document()["paths"].items():
        if route in open_routes:
            continue
        path = "/m/north" + route.replace("{", "").replace("}", "")
        for method in operations:
            for key in (SOUTH_WEB, SOUTH_ADMIN):
                answer = client.request(method, path, headers={**bearer(key), "Idempotency-Key": "k"}, json={})
                assert answer.status_code == 401, f"{method} {route} with south's key: {answer.status_code}"
                tried += 1
    assert tried > 40


def test_removing_a_merchant_archives_its_rows_before_dropping_its_storage(
    platform: Platform, platform_path: Path, tmp_path: Path
) -> None:
    north = platform.stack("north")
    receive(north, {"BEANS": 5})
    order = north.checkout(cart(("BEANS", 1)), key="k1")
    platform.close()
    outcome = blocks("platform", "remove", "north", "-p", str(platform_path), "--archive", str(tmp_path / "gone"),
                     "--json", env=ENV)  # fmt: skip
    assert outcome.status == 0, outcome.stdout + outcome.stderr
    removal = json.loads(outcome.stdout)
    archived = Path(removal["archive"])
    assert removal["rows"]["orders"] == 1
    (row,) = [json.loads(line) for line in (archived / "orders.jsonl").read_text().splitlines()]
    assert row["id"] == order.id
    assert json.loads((archived / "archive.json").read_text())["rows"] == removal["rows"]
    assert {m.id: m.status for m in list_platform(platform_path, environ=ENV)} == {
        "north": "unassembled",
        "south": "active",
    }
    with open_platform(platform_path, environ=ENV) as reopened:
        database = reopened.manifest.databases["main"]
        if database.directory is not None:
            assert not (database.directory / "north.db").exists()
        else:
            with reopened.placement.server(database).connect() as connection:
                schemas = connection.execute(sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'm_%'"))
                assert set(schemas.scalars()) == {"m_south"}
                assert connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = 'm_north'")).first() is None
    # Again (as after a crash once everything was dropped): nothing left to archive, no earlier archive touched.
    again = blocks("platform", "remove", "north", "-p", str(platform_path), "--archive", str(tmp_path / "gone"),
                   "--json", env=ENV)  # fmt: skip
    assert again.status == 0 and json.loads(again.stdout)["archive"] is None
    assert (archived / "orders.jsonl").exists()


def test_platform_keys_list_pause_and_resume_merchants_and_nothing_else(client: TestClient) -> None:
    listed = client.get("/platform/merchants", headers=bearer(PLATFORM_READ))
    assert listed.status_code == 200, listed.text
    assert {m["id"]: m["status"] for m in listed.json()["merchants"]} == {"north": "active", "south": "active"}
    assert client.post("/platform/merchants/south/pause", headers=bearer(PLATFORM_READ)).status_code == 403
    assert client.get("/platform/merchants", headers=bearer(NORTH_ADMIN)).status_code == 401
    assert client.get("/m/north/admin/orders", headers=bearer(PLATFORM_OPS)).status_code == 401
    paused = client.post("/platform/merchants/south/pause", headers=bearer(PLATFORM_OPS))
    assert paused.json() == {"id": "south", "status": "paused", "database": "main"}
    assert client.get("/m/south/store/catalog", headers=bearer(SOUTH_WEB)).status_code == 503
    assert client.post("/platform/merchants/south/resume", headers=bearer(PLATFORM_OPS)).status_code == 200
    assert client.get("/m/south/store/catalog", headers=bearer(SOUTH_WEB)).status_code == 200
    unknown = client.post("/platform/merchants/nowhere/pause", headers=bearer(PLATFORM_OPS))
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"


def test_a_merchant_added_while_serving_is_served_without_a_restart(
    platform_path: Path, platform: Platform, client: TestClient
) -> None:
    assert client.get("/readyz").status_code == 200
    assert client.get("/m/west/store/catalog", headers=bearer(SOUTH_WEB)).status_code == 404
    west = platform_path.parent / "west"
    west.mkdir()
    (west / "blocks.yaml").write_text((platform_path.parent / "south" / "blocks.yaml").read_text().replace(
        "id: south", "id: west"), encoding="utf-8")  # fmt: skip
    south = "  - {id: south, manifest: south/blocks.yaml, database: main}\n"
    text = platform_path.read_text(encoding="utf-8")
    platform_path.write_text(text.replace(south, south + south.replace("south", "west")), encoding="utf-8")
    assert add_merchant(platform_path, "west", environ=ENV).status == "active"
    served = client.get("/m/west/store/catalog", headers=bearer(SOUTH_WEB))
    assert served.status_code == 200, served.text
    assert client.get("/m/south/store/catalog", headers=bearer(SOUTH_WEB)).status_code == 200
