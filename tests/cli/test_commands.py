"""The ``blocks`` command doing its job: assemble, plugins, schema, and an order through the stack.

Exit status, as documented in :mod:`retailblocks.cli`: 0 ok, 2 invalid input, 1 a failure of the
environment, 3 a valid request the stack rejected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from retailblocks import CORE_API_VERSION
from retailblocks.assembly.discovery import api_incompatibility
from retailblocks.hookspecs import REQUIRED_HOOKS, Capability
from tests.cli.harness import EXAMPLE_MANIFESTS, Outcome, blocks, blocks_process, copy_example, tree

CARD_SECRET = "sk_test_SECRETVALUE123"
REFERENCE_BLOCKS = {
    "sql-inventory": "retailblocks-sql-inventory",
    "sandbox-card": "retailblocks-sandbox-card",
    "stored-value": "retailblocks-stored-value",
    "loyalty": "retailblocks-loyalty",
    "logistics": "retailblocks-logistics",
    "promotions": "retailblocks-promotions",
    "reach-sandbox": "retailblocks-reach-sandbox",
}
TEST_CARD = "card::card_number=4242424242424242"


def ok(outcome: Outcome) -> Outcome:
    assert outcome.status == 0, outcome.stderr
    assert "Traceback" not in outcome.stdout + outcome.stderr
    return outcome


@pytest.fixture
def lucky_coffee(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = copy_example("lucky-coffee", tmp_path)
    monkeypatch.chdir(manifest.parent)
    return manifest


@pytest.fixture
def corner_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = copy_example("corner-shop", tmp_path)
    monkeypatch.chdir(manifest.parent)
    return manifest


@pytest.fixture
def assembled_corner_shop(corner_shop: Path) -> Path:
    """The corner shop once ``blocks assemble`` ran: operator commands open only an assembled stack."""
    ok(blocks("assemble", "-m", corner_shop))
    return corner_shop


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def read_lock(manifest: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((manifest.parent / "blocks.lock").read_text(encoding="utf-8"))
    return data


# --- blocks assemble ------------------------------------------------------------------------------------------


def test_assemble_prints_the_stack_and_writes_the_lock_beside_the_manifest(lucky_coffee: Path) -> None:
    outcome = ok(
        blocks_process(
            "assemble", "-m", lucky_coffee, cwd=lucky_coffee.parent, env={"LUCKY_COFFEE_CARD_KEY": CARD_SECRET}
        )
    )

    for shown in ("Lucky Coffee", "sql-inventory", "retailblocks-sandbox-card", "inventory_reserve", "gift_card"):
        assert shown in outcome.stdout
    assert f"wrote {lucky_coffee.parent / 'blocks.lock'}" in outcome.stdout
    assert CARD_SECRET not in outcome.stdout + outcome.stderr
    assert outcome.stderr == ""
    lock = read_lock(lucky_coffee)
    assert lock["merchant"] == {"id": "lucky-coffee", "name": "Lucky Coffee", "currency": "CNY"}
    assert lock["core"]["distribution"] == "retailblocks"
    by_id = {block["id"]: block for block in lock["blocks"]}
    assert list(by_id) == ["inventory", "card", "stored-value", "loyalty", "messages", "logistics", "promotions"]
    for block in lock["blocks"]:
        assert block["distribution"] == REFERENCE_BLOCKS[block["use"]]
        assert block["version"] == metadata.version(block["distribution"])
        assert block["capabilities"]
        assert len(block["config_fingerprint"]) == 64
    assert by_id["inventory"]["capabilities"] == ["inventory"]
    assert by_id["card"]["config"]["secret_key"] == "***"
    routing = lock["routing"]
    assert routing["payment_methods"] == {
        "card": "card",
        "gift_card": "stored-value",
        "marketplace": "connectors",
        "points": "loyalty",
        "wallet": "stored-value",
    }
    assert routing["hooks"]["inventory_reserve"]["blocks"] == ["inventory"]
    assert routing["hooks"]["marketing_adjustments"]["dispatch"] != routing["hooks"]["inventory_reserve"]["dispatch"]
    assert (lucky_coffee.parent / ".blocks" / "lucky-coffee.db").is_file()


def test_no_secret_reaches_the_output_the_lock_or_the_database(lucky_coffee: Path) -> None:
    outcome = ok(blocks("assemble", "-m", lucky_coffee, "--json", env={"LUCKY_COFFEE_CARD_KEY": CARD_SECRET}))
    ok(blocks("plugins", "--json", env={"LUCKY_COFFEE_CARD_KEY": CARD_SECRET}))

    assert CARD_SECRET not in outcome.stdout + outcome.stderr
    written = {path: data for path, data in tree(lucky_coffee.parent).items() if data is not None}
    assert any(path.startswith(".blocks/") for path in written), "the database was prepared"
    for path, data in written.items():
        assert CARD_SECRET.encode() not in data, f"the secret was written to {path}"


def test_the_fingerprint_follows_the_configuration_secrets_included(lucky_coffee: Path) -> None:
    def fingerprints(key: str) -> dict[str, str]:
        ok(blocks("assemble", "-m", lucky_coffee, env={"LUCKY_COFFEE_CARD_KEY": key}))
        return {block["id"]: block["config_fingerprint"] for block in read_lock(lucky_coffee)["blocks"]}

    first, again, rotated = fingerprints(CARD_SECRET), fingerprints(CARD_SECRET), fingerprints("sk_test_ROTATED")

    assert first == again
    assert rotated["card"] != first["card"]
    assert {k: v for k, v in rotated.items() if k != "card"} == {k: v for k, v in first.items() if k != "card"}


def test_json_output_is_the_lock(lucky_coffee: Path) -> None:
    outcome = ok(blocks("assemble", "-m", lucky_coffee, "--json"))
    assert json.loads(outcome.stdout) == read_lock(lucky_coffee)


def test_the_lock_is_an_ordinary_readable_file(corner_shop: Path, usual_umask: None) -> None:
    ok(blocks("assemble", "-m", corner_shop))
    mode = (corner_shop.parent / "blocks.lock").stat().st_mode & 0o777
    assert mode == 0o644
    assert not [p for p in corner_shop.parent.iterdir() if p.name.startswith(".blocks.lock.")]


def test_assembling_again_changes_nothing(corner_shop: Path) -> None:
    ok(blocks("assemble", "-m", corner_shop))
    first = read_lock(corner_shop)
    ok(blocks("assemble", "-m", corner_shop))
    assert read_lock(corner_shop) == first


def test_check_validates_and_writes_nothing(lucky_coffee: Path) -> None:
    before = tree(lucky_coffee.parent)
    outcome = ok(blocks("assemble", "-m", lucky_coffee, "--check"))
    assert "is valid (checked only: nothing written)" in outcome.stdout
    assert "Lucky Coffee" in outcome.stdout
    assert tree(lucky_coffee.parent) == before


def test_assemble_takes_blocks_yaml_of_the_current_directory_by_default(corner_shop: Path) -> None:
    outcome = ok(blocks("assemble"))
    assert "Corner Shop" in outcome.stdout
    assert (corner_shop.parent / "blocks.lock").is_file()


@pytest.mark.parametrize("manifest", EXAMPLE_MANIFESTS, ids=lambda p: p.parent.name)
def test_every_example_assembles_with_the_real_command(manifest: Path, tmp_path: Path) -> None:
    copied = copy_example(manifest.parent.name, tmp_path)
    outcome = ok(blocks_process("assemble", "-m", copied.name, cwd=copied.parent))
    assert "stack assembled" in outcome.stdout
    assert (copied.parent / "blocks.lock").is_file()


def test_a_markup_like_name_is_printed_as_written(corner_shop: Path) -> None:
    text = corner_shop.read_text(encoding="utf-8")
    corner_shop.write_text(text.replace("name: Corner Shop", 'name: "[/bold] Corner [red]Shop"'), encoding="utf-8")
    outcome = ok(blocks("assemble", "-m", corner_shop, "--check"))
    assert "[/bold] Corner [red]Shop" in outcome.stdout


# --- blocks plugins -------------------------------------------------------------------------------------------


def test_plugins_lists_the_six_reference_blocks() -> None:
    listed = {entry["name"]: entry for entry in json.loads(ok(blocks("plugins", "--json")).stdout)}

    assert set(REFERENCE_BLOCKS) <= set(listed)
    for name, distribution in REFERENCE_BLOCKS.items():
        entry = listed[name]
        assert "error" not in entry
        assert entry["distribution"] == distribution
        assert entry["version"] == metadata.version(distribution)
        assert api_incompatibility(entry["core_api"], CORE_API_VERSION) is None
        assert entry["capabilities"]
        for capability in entry["capabilities"]:
            assert REQUIRED_HOOKS[Capability(capability)] <= set(entry["hooks"]), (name, capability)
    assert listed["sandbox-card"]["payment_methods"] == ["card"]


def test_plugins_as_a_table() -> None:
    outcome = ok(blocks("plugins"))
    for name in REFERENCE_BLOCKS:
        assert name in outcome.stdout


def test_only_the_named_blocks_are_loaded_when_asked() -> None:
    listed = json.loads(ok(blocks("plugins", "--json", env={"RETAILBLOCKS_BLOCKS": "loyalty"})).stdout)
    assert [entry["name"] for entry in listed] == ["loyalty"]


# --- blocks schema --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    outcome = blocks("schema")
    assert outcome.status == 0, outcome.stderr
    data: dict[str, Any] = json.loads(outcome.stdout)
    return data


def test_schema_is_json_schema_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("manifest", EXAMPLE_MANIFESTS, ids=lambda p: p.parent.name)
def test_every_example_manifest_validates_against_the_schema(schema: dict[str, Any], manifest: Path) -> None:
    document = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    errors = [error.message for error in Draft202012Validator(schema).iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda m: m | {"chanels": m["channels"]}, "chanels"),
        (lambda m: m | {"merchant": m["merchant"] | {"colour": "red"}}, "colour"),
        (lambda m: m | {"blocks": [m["blocks"][0] | {"cofig": {}}, *m["blocks"][1:]]}, "cofig"),
        (
            lambda m: (
                m | {"blocks": [m["blocks"][0] | {"config": m["blocks"][0]["config"] | {"reservaton_ttl": "1m"}}]}
            ),
            "reservaton_ttl",
        ),
        (lambda m: m | {"channels": [{"id": "x", "type": "moon"}]}, "moon"),
        (lambda m: {k: v for k, v in m.items() if k != "blocks"}, "blocks"),
    ],
    ids=["top-level key", "merchant key", "block key", "block config key", "channel type", "no blocks"],
)
def test_a_broken_manifest_fails_the_schema(schema: dict[str, Any], edit: Any, where: str) -> None:
    example = yaml.safe_load((EXAMPLE_MANIFESTS[0].parent / "blocks.yaml").read_text(encoding="utf-8"))
    errors = [error.message for error in Draft202012Validator(schema).iter_errors(edit(example))]
    assert errors
    assert any(where in message for message in errors), errors


def test_schema_can_be_written_to_a_file(tmp_path: Path, schema: dict[str, Any]) -> None:
    target = tmp_path / "blocks.schema.json"
    ok(blocks("schema", "--output", target))
    assert json.loads(target.read_text(encoding="utf-8")) == schema


# --- orders through the stack ---------------------------------------------------------------------------------


def test_an_order_on_the_corner_shop(assembled_corner_shop: Path) -> None:
    m = str(assembled_corner_shop)
    received = ok(blocks("stock", "receive", "-m", m, "MILK-1L", "shop", "10"))
    assert "on hand now 10" in received.stdout

    placed = json.loads(
        ok(
            blocks(
                "checkout",
                "-m",
                m,
                "--channel",
                "shop",
                "--item",
                "MILK-1L:2",
                "--pay",
                TEST_CARD,
                "--key",
                "k-1",
                "--json",
            )
        ).stdout
    )
    assert placed["channel"] == "shop"
    assert placed["lines"][0]["quantity"] == 2
    again = json.loads(
        ok(
            blocks(
                "checkout",
                "-m",
                m,
                "--channel",
                "shop",
                "--item",
                "MILK-1L:2",
                "--pay",
                TEST_CARD,
                "--key",
                "k-1",
                "--json",
            )
        ).stdout
    )
    assert again["id"] == placed["id"], "the same idempotency key places one order"

    orders = json.loads(ok(blocks("orders", "-m", m, "--json")).stdout)
    assert [order["id"] for order in orders] == [placed["id"]]
    assert orders[0]["total"] == {"amount": 258, "currency": "EUR"}

    events = [json.loads(line) for line in ok(blocks("events", "-m", m, "--json")).stdout.splitlines()]
    assert "order.created" in {event["type"] for event in events}
    assert all(event["order_id"] in (None, placed["id"]) for event in events)

    recovered = json.loads(ok(blocks("recover", "-m", m, "--json")).stdout)
    assert recovered["stuck"] == []
    assert recovered["events_failed"] == 0

    refunded = ok(blocks("refund", "-m", m, placed["id"], "--key", "r-1", "--json"))
    assert json.loads(refunded.stdout)["refunded"]


def test_a_rejected_order_exits_3(assembled_corner_shop: Path) -> None:
    outcome = blocks(
        "checkout",
        "-m",
        assembled_corner_shop,
        "--channel",
        "shop",
        "--item",
        "BREAD:1",
        "--pay",
        TEST_CARD,
        "--key",
        "k-oos",
    )
    assert outcome.status == 3
    line = outcome.one_error_line()
    assert "out_of_stock" in line


def test_version_and_help() -> None:
    assert ok(blocks("--version")).stdout.startswith("blocks, version ")
    helped = ok(blocks("--help")).stdout
    for command in ("assemble", "plugins", "schema", "checkout", "orders", "events", "recover", "stock"):
        assert command in helped


# --- on every database ----------------------------------------------------------------------------------------


def test_an_order_through_the_command_on_each_database(corner_shop: Path, database_url: str) -> None:
    """The manifest's database comes from the environment; SQLite and PostgreSQL behave alike."""
    text = corner_shop.read_text(encoding="utf-8")
    corner_shop.write_text(text.replace("channels:\n", "database: ${SHOP_DATABASE}\nchannels:\n", 1), encoding="utf-8")
    env = {"SHOP_DATABASE": database_url}
    m = str(corner_shop)

    lock_database = json.loads(ok(blocks("assemble", "-m", m, "--json", env=env)).stdout)["database"]
    ok(blocks("stock", "receive", "-m", m, "BREAD", "shop", "3", env=env))
    placed = ok(
        blocks("checkout", "-m", m, "--channel", "web", "--item", "BREAD:3", "--pay", TEST_CARD, "--key", "k", env=env)
    )
    sold_out = blocks(
        "checkout", "-m", m, "--channel", "web", "--item", "BREAD:1", "--pay", TEST_CARD, "--key", "k2", env=env
    )

    assert lock_database.split(":")[0] == database_url.split(":")[0]
    assert "11.70 EUR" in placed.stdout
    assert sold_out.status == 3
