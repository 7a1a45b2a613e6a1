"""Moving a merchant between the platform's databases: its rows all arrive; between PostgreSQL servers it keeps
serving while they are copied and answers 503 only for the switch (SQLite, or a paused copy asked for: for the
whole copy); a move that fails gives it back on its source, a move whose process died is finished by a second
run, and no replication slot is left behind either way."""

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
from retailblocks.platform.manifest import DatabaseServer
from retailblocks.platform.move import _conninfo, _replica_identity, _side, move_merchant
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


class Death(BaseException):
    """A move stopped at a step as if its process died there: not an error the move could clean up after."""


class Failure(Exception):
    """A step of a move failing (a server gone, say): the move cleans up after it."""


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


def replication_left(platform: Platform) -> list[str]:
    """Every replication slot, publication and subscription a move made that is still on either server."""
    left: list[str] = []
    for place in platform.manifest.databases.values():
        if place.directory is not None:
            continue
        with platform.placement.server(place).connect() as connection:
            for query in (
                "SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'rb\\_move\\_%' "
                "OR slot_name LIKE 'pg\\_%\\_sync\\_%'",
                "SELECT 'publication ' || pubname FROM pg_publication",
                "SELECT 'subscription ' || subname FROM pg_subscription",
            ):
                left += [f"{place.name}: {name}" for name in connection.execute(sa.text(query)).scalars()]
            connection.rollback()
    return sorted(set(left))


def is_sqlite(platform: Platform) -> bool:
    return platform.manifest.databases["main"].directory is not None


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
    # Between PostgreSQL servers with wal_level=logical (as CI starts them) the copy is online; a SQLite
    # file is copied paused, and the move says why.
    assert moved.online is not is_sqlite(platform)
    if is_sqlite(platform):
        assert moved.paused_copy_reason is not None and "SQLite" in moved.paused_copy_reason
    else:
        assert moved.paused_copy_reason is None
    assert replication_left(platform) == []
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


@pytest.mark.parametrize("died_at", ["copied", "verified"])
def test_a_move_cut_short_before_the_switch_is_finished_by_the_next_run(platform: Platform, died_at: str) -> None:
    north = platform.stack("north")
    receive(north, {"BEANS": 10})
    place_orders(north, 3, "before")
    before = rows_of(platform, "north", "main")

    def die(step: str) -> None:
        if step == died_at:
            raise Death(step)

    with pytest.raises(Death):
        move_merchant(platform, "north", "other", settle_seconds=0, step=die)
    # Nothing switched: the merchant lives on the source. An online move dead before its pause left it
    # serving (its replication still there); a paused one (or dead once paused) left it served as moving.
    assert platform.database_of("north", fresh=True) == "main"
    paused = is_sqlite(platform) or died_at == "verified"
    assert platform.statuses(fresh=True)["north"].value == ("moving" if paused else "active")
    if not is_sqlite(platform):
        assert replication_left(platform) != []
    with TestClient(create_platform_app(platform), raise_server_exceptions=False) as client:
        answer = client.get("/m/north/store/catalog", headers={"Authorization": f"Bearer {NORTH_WEB}"})
        if paused:
            assert answer.status_code == 503
            assert answer.headers["Retry-After"] and answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"].endswith("merchant-moving")
        else:
            assert answer.status_code == 200, answer.text
        assert client.get("/m/south/store/catalog", headers={"Authorization": f"Bearer {SOUTH_WEB}"}).status_code == 200
    if paused:
        with pytest.raises(InvalidInput, match="being moved"):
            pause_merchant(platform.manifest.path, "north", environ=ENV)
    with pytest.raises(InvalidInput, match="run `blocks platform move north --to other` to finish it first"):
        move_merchant(platform, "north", "main", settle_seconds=0)

    finished = move_merchant(platform, "north", "other", settle_seconds=0)

    assert finished.resumed and finished.rows["orders"] == 3
    assert rows_of(platform, "north", "other") == before
    assert not storage_exists(platform, "north", "main")
    assert platform.statuses(fresh=True)["north"].value == "active"
    assert replication_left(platform) == []
    assert audit(platform.stack("north")) == []


@pytest.mark.parametrize("failed_at", ["copied", "paused", "verified"])
def test_a_move_that_fails_leaves_the_merchant_served_from_its_source_with_nothing_left_behind(
    platform: Platform, failed_at: str
) -> None:
    north = platform.stack("north")
    receive(north, {"BEANS": 10})
    ordered = place_orders(north, 2, "before")
    pause_merchant(platform.manifest.path, "south", environ=ENV)

    def fail(step: str) -> None:
        if step == failed_at:
            raise Failure(step)

    for merchant in ("north", "south"):
        with pytest.raises(Failure):
            move_merchant(platform, merchant, "other", settle_seconds=0, step=fail)

    # Each is where it was, with the status it had (unpaused, or still paused by the operator), its
    # half-made copy and every replication slot, publication and subscription gone.
    assert platform.database_of("north", fresh=True) == "main" and platform.database_of("south") == "main"
    assert {k: v.value for k, v in platform.statuses(fresh=True).items()} == {"north": "active", "south": "paused"}
    assert not storage_exists(platform, "north", "other") and not storage_exists(platform, "south", "other")
    assert replication_left(platform) == []
    served = platform.stack("north")
    assert sorted(order.id for order in served.orders()) == sorted(ordered)
    ordered += place_orders(served, 1, "after-failure")
    # Moved afresh by a later run, with the order placed after the failure.
    moved = move_merchant(platform, "north", "other", settle_seconds=0)
    assert not moved.resumed
    assert sorted(order.id for order in platform.stack("north").orders()) == sorted(ordered)
    assert replication_left(platform) == []


def test_a_move_cut_short_after_the_switch_only_drops_the_source(platform: Platform) -> None:
    north = platform.stack("north")
    receive(north, {"BEANS": 10})
    place_orders(north, 2, "before")
    before = rows_of(platform, "north", "main")

    def crash_after_switch(step: str) -> None:
        if step == "switched":
            raise Death(step)

    with pytest.raises(Death):
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
        answered = moved.json()
        assert answered | {"rows": None, "paused_seconds": None, "paused_copy_reason": None} == {
            "id": "north", "from": "main", "to": "other", "rows": None, "resumed": False,
            "online": not is_sqlite(platform), "paused_seconds": None, "paused_copy_reason": None,
        }  # fmt: skip
        assert answered["paused_seconds"] > 0 and answered["rows"]["orders"] == 2
        catalog = client.get("/m/north/store/catalog", headers={"Authorization": f"Bearer {NORTH_WEB}"})
        assert catalog.status_code == 200, catalog.text
    assert sorted(order.id for order in platform.stack("north").orders()) == sorted(ordered)


@pytest.mark.parametrize("online", [True, False], ids=["online", "paused-copy"])
def test_orders_placed_through_the_server_while_it_moves_are_each_kept_once(
    platform: Platform, platform_path: Path, online: bool
) -> None:
    """A shopper keeps ordering through the platform's server, retrying each order on 503 with its
    Idempotency-Key, while another process moves the merchant (with the servers' real status cache): every
    acknowledged order is on the target, once, and nothing else is. Online, orders keep succeeding while the
    rows are copied (none is refused then) and the shopper meets 503 only once the move pauses for its switch."""
    if online and is_sqlite(platform):
        pytest.skip("a SQLite file is always copied paused (the paused-copy case)")
    receive(platform.stack("north"), {"BEANS": 2000}, locations=("dc", "store-a"))
    body = {
        "lines": [{"sku": "BEANS", "quantity": 1}],
        "payments": [{"method": "card", "details": {"card_number": "4242424242424242"}}],
        "fulfilment": {"kind": "pickup", "pickup_location": "store-a"},
    }
    acknowledged: list[str] = []
    answers: Counter[int] = Counter()
    # The move's phase as its steps report it: orders acknowledged and 503s met in each.
    phase = ["before"]
    placed_in: Counter[str] = Counter()
    refused_in: Counter[str] = Counter()
    failures: list[str] = []
    moved = threading.Event()
    after_move = 3
    with TestClient(create_platform_app(platform), raise_server_exceptions=False) as client:

        def shop() -> None:
            number, placed_after = 0, 0
            while placed_after < after_move and number < 1500 and not failures:
                headers = {"Authorization": f"Bearer {NORTH_WEB}", "Idempotency-Key": f"load-{number}"}
                while True:
                    answer = client.post("/m/north/store/orders", json=body, headers=headers)
                    answers[answer.status_code] += 1
                    if answer.status_code == 429:
                        # The key's rate limit (1,200 a minute): a shopper's app waits as it is told, same key.
                        time.sleep(float(answer.headers["Retry-After"]))
                        continue
                    if answer.status_code != 503:
                        break
                    refused_in[phase[0]] += 1
                    time.sleep(0.05)
                if answer.status_code != 201:
                    failures.append(f"{answer.status_code}: {answer.text}")
                    return
                acknowledged.append(answer.json()["id"])
                placed_in[phase[0]] += 1
                placed_after += moved.is_set()
                number += 1

        def step(name: str) -> None:
            if name == "copied" and online:
                # The copy is done and caught up, the merchant not paused yet: orders placed during the copy
                # are what proves it kept serving (waited for, bounded, should the copy have been quick).
                deadline = time.monotonic() + 30
                while placed_in["copying"] == 0 and time.monotonic() < deadline and not failures:
                    time.sleep(0.05)
            phase[0] = {"copied": "pausing", "switched": "after"}.get(name, phase[0])

        shopper = threading.Thread(target=shop)
        shopper.start()
        while len(acknowledged) < 3 and shopper.is_alive():
            time.sleep(0.05)
        phase[0] = "copying" if online else "pausing"
        with open_platform(platform_path, environ=ENV) as mover:
            move = move_merchant(mover, "north", "other", step=step, online=online)
        moved.set()
        shopper.join(timeout=120)
        # A retry of an acknowledged order after the move is answered from the copied idempotency record.
        while True:
            replay = client.post("/m/north/store/orders", json=body, headers={"Authorization": f"Bearer {NORTH_WEB}",
                                 "Idempotency-Key": "load-0"})  # fmt: skip
            if replay.status_code != 429:
                break
            time.sleep(float(replay.headers["Retry-After"]))
        assert replay.status_code == 201 and replay.json()["id"] == acknowledged[0]
    print(f"move online={move.online}: paused {move.paused_seconds:.2f} s; orders per phase {dict(placed_in)}, "
          f"503s per phase {dict(refused_in)}")  # fmt: skip
    assert not failures, failures
    assert move.online is online
    assert answers[503] > 0, "the shopper met the move's pause"
    if online:
        assert placed_in["copying"] > 0, "orders kept succeeding while the rows were copied"
        assert refused_in["copying"] == 0, "nothing was refused before the move paused for its switch"
    assert move.paused_seconds > 0
    assert len(set(acknowledged)) == len(acknowledged)
    assert sorted(order.id for order in platform.stack("north").orders()) == sorted(acknowledged)
    assert platform.database_of("north") == "other"
    assert audit(platform.stack("north")) == []
    assert replication_left(platform) == []


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
    # (Copied paused, the copy differs; online, the source schema cannot be published.)
    with pytest.raises(EnvironmentFailure, match=r"differs from 'main'|m_north"):
        move_merchant(platform, "north", "other", settle_seconds=0)
    assert platform.database_of("north", fresh=True) == "main"
    assert platform.statuses()["north"].value == "active"
    assert replication_left(platform) == []


@pytest.mark.postgres
def test_a_paused_copy_can_be_asked_for_and_the_cli_says_how_it_copied(platform: Platform, platform_path: Path) -> None:
    if is_sqlite(platform):
        pytest.skip("the choice is PostgreSQL's: a SQLite file is always copied paused")
    north = platform.stack("north")
    receive(north, {"BEANS": 5})
    ordered = place_orders(north, 2, "before")
    platform.close()
    outcome = blocks("platform", "move", "north", "--to", "other", "--paused", "--settle", "0", "-p",
                     str(platform_path), env=ENV)  # fmt: skip
    assert outcome.status == 0, outcome.stdout + outcome.stderr
    assert "copied paused (a paused copy was asked for)" in " ".join(outcome.stdout.split())
    outcome = blocks("platform", "move", "north", "--to", "main", "--settle", "0", "-p", str(platform_path), env=ENV)
    assert outcome.status == 0, outcome.stdout + outcome.stderr
    assert "copied online, writes paused" in " ".join(outcome.stdout.split())
    with open_platform(platform_path, environ=ENV) as reopened:
        assert sorted(order.id for order in reopened.stack("north").orders()) == sorted(ordered)
        assert reopened.database_of("north") == "main"
        assert replication_left(reopened) == []


@pytest.mark.postgres
def test_a_source_server_without_logical_replication_gets_the_paused_copy_and_says_why(platform: Platform) -> None:
    if is_sqlite(platform):
        pytest.skip("the choice is PostgreSQL's: a SQLite file is always copied paused")
    north = platform.stack("north")
    receive(north, {"BEANS": 5})
    ordered = place_orders(north, 2, "before")
    source = platform.placement.server(platform.manifest.databases["main"])

    def as_if_replica(
        _connection: sa.Connection, _cursor: object, statement: str, parameters: object, _context: object, _many: bool
    ) -> tuple[str, object]:
        # The source answers as a server started with the default wal_level would (a restart setting).
        return ("SELECT 'replica'" if statement == "SHOW wal_level" else statement), parameters

    sa.event.listen(source, "before_cursor_execute", as_if_replica, retval=True)
    try:
        moved = move_merchant(platform, "north", "other", settle_seconds=0)
    finally:
        sa.event.remove(source, "before_cursor_execute", as_if_replica)

    assert not moved.online
    assert moved.paused_copy_reason is not None and "wal_level=replica" in moved.paused_copy_reason
    assert "wal_level=replica" in moved.as_json()["paused_copy_reason"]
    assert sorted(order.id for order in platform.stack("north").orders()) == sorted(ordered)
    assert replication_left(platform) == []


@pytest.mark.postgres
def test_tables_without_a_primary_key_are_replicated_by_their_whole_row(tmp_path: Path) -> None:
    if postgres_server_url() is None:
        pytest.skip("set RETAILBLOCKS_TEST_POSTGRES_URL to run PostgreSQL tests")
    with fresh_database("postgresql", tmp_path) as url:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE SCHEMA m_west")
            connection.exec_driver_sql("CREATE TABLE m_west.keyed (id int PRIMARY KEY, note text)")
            connection.exec_driver_sql("CREATE TABLE m_west.bare (note text)")
            _replica_identity(connection, "m_west")
            found = dict(
                connection.exec_driver_sql(
                    "SELECT c.relname, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'm_west' AND c.relkind = 'r'"
                ).all()
            )
        engine.dispose()
    assert found == {"keyed": "d", "bare": "f"}


def test_the_target_reaches_the_source_with_the_platforms_address_and_libpq_keys_only() -> None:
    source = DatabaseServer(
        "main", url="postgresql+psycopg://ops:it's\\secret@db.internal:6543/shop?sslmode=require&pool_mode=session"
    )
    assert _conninfo(source) == (
        "host='db.internal' port='6543' user='ops' password='it\\'s\\\\secret' dbname='shop' "
        "sslmode='require' connect_timeout='10'"
    )
