"""Moving a merchant between the platform's databases: its rows all arrive, a crash is finished by a second run,
and it answers 503 meanwhile."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from retailblocks.errors import EnvironmentFailure, InvalidInput, UnknownObject
from retailblocks.flows.audit import audit_flows
from retailblocks.flows.capabilities import block_findings
from retailblocks.fusion.statements import audit_statements
from retailblocks.http.platform import create_platform_app
from retailblocks.platform.move import _side, move_merchant
from retailblocks.platform.operations import (
    Platform,
    assemble_platform,
    list_platform,
    open_platform,
    pause_merchant,
)
from retailblocks.stack import Stack
from retailblocks.testing.databases import REQUIRE_POSTGRES_ENV, fresh_database, postgres_server_url
from tests.cli.harness import blocks
from tests.helpers import cart, receive
from tests.platform.conftest import ENV, NORTH_WEB, PLATFORM_OPS, SOUTH_WEB, write_platform

SECOND_SERVER_ENV = "RETAILBLOCKS_TEST_POSTGRES_URL_2"


class Crash(Exception):
    """A move stopped at a step, as if its process died there."""


@pytest.fixture
def second_database() -> Iterator[str]:
    """A fresh database on the second PostgreSQL server."""
    server = os.environ.get(SECOND_SERVER_ENV)
    if not server:
        if os.environ.get(REQUIRE_POSTGRES_ENV):
            pytest.fail(f"{REQUIRE_POSTGRES_ENV} is set but {SECOND_SERVER_ENV} is not: CI starts a second server")
        pytest.skip(f"set {SECOND_SERVER_ENV} to a second PostgreSQL server to run the two-server move")
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def platform_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """North and south on database ``main``, and an empty database ``other``: two SQLite directories, or
    two PostgreSQL servers (a role per merchant)."""
    if request.param == "sqlite":
        path = write_platform(tmp_path, "sqlite")
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("  main: {directory: data}\n", "  main: {directory: data}\n  other: "
                                     "{directory: data-2}\n"), encoding="utf-8")  # fmt: skip
        yield path
        return
    if postgres_server_url() is None:
        pytest.skip("set RETAILBLOCKS_TEST_POSTGRES_URL to run PostgreSQL tests")
    second = request.getfixturevalue("second_database")
    with fresh_database("postgresql", tmp_path) as url:
        path = write_platform(tmp_path, url, roles=True)
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.startswith("  main: "))
        lines.insert(at + 1, f'  other: {{url: "{second}", roles: true, pool_size: 4}}\n')
        path.write_text("".join(lines), encoding="utf-8")
        yield path


@pytest.fixture
def platform(platform_path: Path) -> Iterator[Platform]:
    assemble_platform(platform_path, environ=ENV)
    with open_platform(platform_path, environ=ENV) as opened:
        yield opened


def rows_of(platform: Platform, merchant_id: str, database: str) -> dict[str, list[str]]:
    """Every table's rows of the merchant on ``database``, each as text, sorted."""
    side = _side(platform, platform.manifest.merchant(merchant_id), database)
    found: dict[str, list[str]] = {}
    with side.engine.connect() as connection:
        for table in side.tables():
            rows = connection.exec_driver_sql(f"SELECT * FROM {side.name(table.name)}")
            found[table.name] = sorted(repr(tuple(row)) for row in rows)
        connection.rollback()
    return found


def storage_exists(platform: Platform, merchant_id: str, database: str) -> bool:
    place = platform.manifest.databases[database]
    if place.directory is not None:
        return (place.directory / f"{merchant_id}.db").exists()
    with platform.placement.server(place).connect() as connection:
        schema = platform.manifest.merchant(merchant_id).schema
        found = connection.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        connection.rollback()
    return found is not None


def audit(stack: Stack) -> list[str]:
    """What `blocks audit` checks; the names of the invariants that do not hold."""
    findings = [*audit_flows(stack), *audit_statements(stack)]
    with stack.context(flow="audit", read_only=True) as ctx:
        findings += [finding for _block, finding in block_findings(stack.hooks, ctx)]
    return [finding.name + ": " + finding.detail for finding in findings if not finding.ok]


def place_orders(stack: Stack, count: int, prefix: str) -> list[str]:
    return [stack.checkout(cart(("BEANS", 1)), key=f"{prefix}-{n}").id for n in range(count)]


def test_a_moved_merchant_has_every_row_and_the_other_merchant_is_untouched(platform: Platform) -> None:
    north, south = platform.stack("north"), platform.stack("south")
    receive(north, {"BEANS": 20})
    ordered = place_orders(north, 4, "before")
    receive(south, {"MILK": 5}, locations=("shop",))
    south.checkout(cart(("MILK", 1), delivery=False), key="south-1")
    before = rows_of(platform, "north", "main")
    south_before = rows_of(platform, "south", "main")
    assert len(before["orders"]) == 4 and len(south_before["orders"]) == 1

    moved = move_merchant(platform, "north", "other", settle_seconds=0)

    assert (moved.source, moved.target, moved.resumed) == ("main", "other", False)
    assert moved.rows["orders"] == 4
    assert rows_of(platform, "north", "other") == before
    assert not storage_exists(platform, "north", "main") and storage_exists(platform, "north", "other")
    assert rows_of(platform, "south", "main") == south_before
    assert platform.database_of("north") == "other" and platform.database_of("south") == "main"
    listed = {m.id: (m.status, m.database) for m in list_platform(platform.manifest.path, environ=ENV)}
    assert listed == {"north": ("active", "other"), "south": ("active", "main")}
    # Served from the target now: the same orders, audits that hold, and a new order with a fresh id.
    moved_north = platform.stack("north")
    assert moved_north is not north
    assert sorted(order.id for order in moved_north.orders()) == sorted(ordered)
    assert audit(moved_north) == []
    after = place_orders(moved_north, 1, "after")
    assert after[0] not in ordered
    assert audit(moved_north) == []


def test_a_move_cut_short_before_the_switch_is_finished_by_the_next_run(platform: Platform) -> None:
    north = platform.stack("north")
    receive(north, {"BEANS": 10})
    place_orders(north, 3, "before")
    before = rows_of(platform, "north", "main")

    def crash_after_copy(step: str) -> None:
        if step == "copied":
            raise Crash(step)

    with pytest.raises(Crash):
        move_merchant(platform, "north", "other", settle_seconds=0, step=crash_after_copy)
    # Nothing switched: the merchant lives on the source, is served as moving, and keeps its status.
    assert platform.database_of("north", fresh=True) == "main"
    assert platform.statuses(fresh=True)["north"].value == "moving"
    with TestClient(create_platform_app(platform), raise_server_exceptions=False) as client:
        answer = client.get("/m/north/store/catalog", headers={"Authorization": f"Bearer {NORTH_WEB}"})
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] and answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("merchant-moving")
        assert client.get("/m/south/store/catalog", headers={"Authorization": f"Bearer {SOUTH_WEB}"}).status_code == 200
    with pytest.raises(InvalidInput, match="being moved"):
        pause_merchant(platform.manifest.path, "north", environ=ENV)
    with pytest.raises(InvalidInput, match="run `blocks platform move north --to other` to finish it first"):
        move_merchant(platform, "north", "main", settle_seconds=0)

    finished = move_merchant(platform, "north", "other", settle_seconds=0)

    assert finished.resumed and finished.rows["orders"] == 3
    assert rows_of(platform, "north", "other") == before
    assert not storage_exists(platform, "north", "main")
    assert platform.statuses(fresh=True)["north"].value == "active"
    assert audit(platform.stack("north")) == []


def test_a_move_cut_short_after_the_switch_only_drops_the_source(platform: Platform) -> None:
    north = platform.stack("north")
    receive(north, {"BEANS": 10})
    place_orders(north, 2, "before")
    before = rows_of(platform, "north", "main")

    def crash_after_switch(step: str) -> None:
        if step == "switched":
            raise Crash(step)

    with pytest.raises(Crash):
        move_merchant(platform, "north", "other", settle_seconds=0, step=crash_after_switch)
    # Switched: served from the target, active; the source is still there, serving nothing.
    assert platform.database_of("north", fresh=True) == "other"
    assert platform.statuses()["north"].value == "active"
    assert storage_exists(platform, "north", "main")
    assert len(platform.stack("north").orders()) == 2
    with pytest.raises(InvalidInput, match="left to drop"):
        move_merchant(platform, "north", "main", settle_seconds=0)

    finished = move_merchant(platform, "north", "other", settle_seconds=0)

    assert finished.resumed and finished.rows == {}
    assert not storage_exists(platform, "north", "main")
    assert rows_of(platform, "north", "other") == before
    # And back again: a merchant may return to a database it left.
    back = move_merchant(platform, "north", "main", settle_seconds=0)
    assert back.target == "main" and rows_of(platform, "north", "main") == before


def test_moving_where_it_lives_or_to_an_unknown_place_is_refused(platform: Platform, platform_path: Path) -> None:
    with pytest.raises(InvalidInput, match="already lives on database 'main'"):
        move_merchant(platform, "north", "main", settle_seconds=0)
    with pytest.raises(UnknownObject, match="no database 'elsewhere'"):
        move_merchant(platform, "north", "elsewhere", settle_seconds=0)
    with pytest.raises(UnknownObject, match="no merchant 'west'"):
        move_merchant(platform, "west", "other", settle_seconds=0)
    platform.close()
    for args, expected in (
        (("nowhere", "--to", "other"), "no merchant 'nowhere'"),
        (("north", "--to", "elsewhere"), "no database 'elsewhere'"),
        (("north", "--to", "main"), "already lives on database 'main'"),
    ):
        outcome = blocks("platform", "move", *args, "-p", str(platform_path), env=ENV)
        assert outcome.status == 2, outcome.stdout + outcome.stderr
        assert expected in outcome.one_error_line()
    assert {m.id: m.status for m in list_platform(platform_path, environ=ENV)} == {"north": "active", "south": "active"}


def test_the_platform_route_moves_a_merchant_for_a_write_key(platform: Platform) -> None:
    north = platform.stack("north")
    receive(north, {"BEANS": 5})
    ordered = place_orders(north, 2, "before")
    with TestClient(create_platform_app(platform), raise_server_exceptions=False) as client:
        catalog = client.get("/m/north/store/catalog", headers={"Authorization": f"Bearer {NORTH_WEB}"})
        assert catalog.status_code == 200
        missing = client.post("/platform/merchants/north/move", headers={"Authorization": f"Bearer {PLATFORM_OPS}"})
        assert missing.status_code == 400
        moved = client.post(
            "/platform/merchants/north/move?to=other", headers={"Authorization": f"Bearer {PLATFORM_OPS}"}
        )
        assert moved.status_code == 200, moved.text
        assert moved.json() | {"rows": None} == {"id": "north", "from": "main", "to": "other", "rows": None,
                                                 "resumed": False}  # fmt: skip
        catalog = client.get("/m/north/store/catalog", headers={"Authorization": f"Bearer {NORTH_WEB}"})
        assert catalog.status_code == 200, catalog.text
    assert sorted(order.id for order in platform.stack("north").orders()) == sorted(ordered)


def test_orders_placed_through_the_server_while_it_moves_are_each_kept_once(
    platform: Platform, platform_path: Path
) -> None:
    """A shopper keeps ordering through the platform's server, retrying each order on 503 with its
    Idempotency-Key, while another process moves the merchant (with the servers' real status cache): every
    acknowledged order is on the target, once, and nothing else is."""
    receive(platform.stack("north"), {"BEANS": 400}, locations=("dc", "store-a"))
    body = {
        "lines": [{"sku": "BEANS", "quantity": 1}],
        "payments": [{"method": "card", "details": {"card_number": "4242424242424242"}}],
        "fulfilment": {"kind": "pickup", "pickup_location": "store-a"},
    }
    acknowledged: list[str] = []
    answers: Counter[int] = Counter()
    failures: list[str] = []
    moved = threading.Event()
    after_move = 3
    with TestClient(create_platform_app(platform), raise_server_exceptions=False) as client:

        def shop() -> None:
            number, placed_after = 0, 0
            while placed_after < after_move and number < 300 and not failures:
                headers = {"Authorization": f"Bearer {NORTH_WEB}", "Idempotency-Key": f"load-{number}"}
                while True:
                    answer = client.post("/m/north/store/orders", json=body, headers=headers)
                    answers[answer.status_code] += 1
                    if answer.status_code != 503:
                        break
                    time.sleep(0.05)
                if answer.status_code != 201:
                    failures.append(f"{answer.status_code}: {answer.text}")
                    return
                acknowledged.append(answer.json()["id"])
                placed_after += moved.is_set()
                number += 1

        shopper = threading.Thread(target=shop)
        shopper.start()
        while len(acknowledged) < 3 and shopper.is_alive():
            time.sleep(0.05)
        with open_platform(platform_path, environ=ENV) as mover:
            move_merchant(mover, "north", "other")
        moved.set()
        shopper.join(timeout=120)
        # A retry of an acknowledged order after the move is answered from the copied idempotency record.
        replay = client.post("/m/north/store/orders", json=body, headers={"Authorization": f"Bearer {NORTH_WEB}",
                             "Idempotency-Key": "load-0"})  # fmt: skip
        assert replay.status_code == 201 and replay.json()["id"] == acknowledged[0]
    assert not failures, failures
    assert answers[503] > 0, "the shopper met the move"
    assert len(set(acknowledged)) == len(acknowledged)
    assert sorted(order.id for order in platform.stack("north").orders()) == sorted(acknowledged)
    assert platform.database_of("north") == "other"
    assert audit(platform.stack("north")) == []


def test_a_paused_merchant_stays_paused_after_its_move_and_a_missing_source_is_not_switched_to(
    platform: Platform,
) -> None:
    pause_merchant(platform.manifest.path, "south", environ=ENV)
    move_merchant(platform, "south", "other", settle_seconds=0)
    assert platform.statuses(fresh=True)["south"].value == "paused"
    assert platform.database_of("south") == "other"
    # North's storage lost behind the platform's back: the copy would be empty, so nothing is switched.
    place = platform.manifest.databases["main"]
    if place.directory is not None:
        platform.placement.forget(platform.manifest.merchant("north"))
        (place.directory / "north.db").unlink()
    else:
        with platform.placement.server(place).begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA m_north CASCADE")
    with pytest.raises(EnvironmentFailure, match="differs from 'main'"):
        move_merchant(platform, "north", "other", settle_seconds=0)
    assert platform.database_of("north", fresh=True) == "main"
    assert platform.statuses()["north"].value == "moving"
