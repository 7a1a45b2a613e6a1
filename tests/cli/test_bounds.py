"""``blocks`` answers values beyond model.limits with one line and exit status 2, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retailblocks.model.limits import MAX_AMOUNT, MAX_QUANTITY
from tests.cli.harness import Outcome, blocks, copy_example

TEST_CARD = "card::card_number=4242424242424242"


@pytest.fixture
def shop(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str | None]]:
    """The corner shop on the database under test, its bread at the largest price there is."""
    manifest = copy_example("corner-shop", tmp_path)
    monkeypatch.chdir(manifest.parent)
    text = manifest.read_text(encoding="utf-8")
    text = text.replace("channels:\n", "database: ${SHOP_DATABASE}\nchannels:\n", 1)
    text = text.replace('price: "3.90 EUR"', f'price: "{MAX_AMOUNT // 100}.00 EUR"')
    manifest.write_text(text, encoding="utf-8")
    env: dict[str, str | None] = {"SHOP_DATABASE": database_url}
    assert blocks("assemble", "-m", manifest, env=env).status == 0  # operator commands open only an assembled stack
    return str(manifest), env


def refused(outcome: Outcome, *words: str) -> str:
    assert outcome.status == 2, outcome.stdout + outcome.stderr
    line = outcome.one_error_line()
    for word in words:
        assert word in line, line
    return line


def on_hand(shop: tuple[str, dict[str, str | None]], sku: str) -> int:
    m, env = shop
    outcome = blocks("stock", "levels", "-m", m, "--sku", sku, "--json", env=env)
    assert outcome.status == 0, outcome.stderr
    return sum(row["on_hand"] for row in json.loads(outcome.stdout))


def test_stock_beyond_max_quantity_is_refused_with_on_hand_unchanged(shop: tuple[str, dict[str, str | None]]) -> None:
    m, env = shop
    assert blocks("stock", "receive", "-m", m, "MILK-1L", "shop", str(MAX_QUANTITY), env=env).status == 0
    refused(blocks("stock", "receive", "-m", m, "MILK-1L", "shop", "1", env=env), str(MAX_QUANTITY))
    refused(blocks("stock", "adjust", "-m", m, "MILK-1L", "shop", "1", "--reason", "found", env=env), str(MAX_QUANTITY))
    for huge in (str(2**31), str(2**63 - 1), str(2**63), "9" * 5000):
        refused(blocks("stock", "receive", "-m", m, "BREAD", "shop", huge, env=env))
        refused(blocks("stock", "adjust", "-m", m, "BREAD", "shop", f"-{huge}", "--reason", "lost", env=env))
        refused(blocks("stock", "count", "-m", m, "BREAD", "shop", huge, env=env))
    assert on_hand(shop, "MILK-1L") == MAX_QUANTITY
    assert on_hand(shop, "BREAD") == 0
    audit = blocks("audit", "-m", m, env=env)
    assert audit.status == 0, audit.stderr


def test_stock_text_with_nul_is_refused(shop: tuple[str, dict[str, str | None]]) -> None:
    m, env = shop
    refused(blocks("stock", "receive", "-m", m, "BR\x00EAD", "shop", "1", env=env), "SKU")
    refused(blocks("stock", "receive", "-m", m, "BREAD", "shop", "1", "--reason", "a\x00b", env=env), "reason")
    refused(blocks("stock", "adjust", "-m", m, "BREAD", "shop", "1", "--reason", "x" * 501, env=env), "reason")
    refused(blocks("stock", "levels", "-m", m, "--sku", "BR\x00EAD", env=env), "SKU")
    assert on_hand(shop, "BREAD") == 0


def test_checkout_beyond_the_bounds_is_refused_and_records_nothing(shop: tuple[str, dict[str, str | None]]) -> None:
    m, env = shop
    assert blocks("stock", "receive", "-m", m, "BREAD", "shop", "20000", env=env).status == 0
    checkout = ("checkout", "-m", m, "--channel", "shop", "--pay", TEST_CARD)
    # 10 000 loaves at the largest price come to 10**19 cents, past 2**63 - 1.
    for quantity in ("2", "10000"):
        refused(blocks(*checkout, "--item", f"BREAD:{quantity}", "--key", f"k{quantity}", env=env), "minor units")
    for quantity in (str(MAX_QUANTITY + 1), "9" * 5000, "²"):
        refused(blocks(*checkout, "--item", f"MILK-1L:{quantity}", "--key", "k", env=env), "quantity")
    refused(blocks(*checkout, "--item", "MILK\x00:1", "--key", "k", env=env), "SKU")
    refused(blocks(*checkout, "--item", "MILK-1L:1", "--key", "k\x00", env=env), "key")
    refused(blocks(*checkout, "--item", "MILK-1L:1", "--key", "k", "--identity", "phone:+86\x00", env=env), "identity")
    refused(blocks(*checkout, "--item", "MILK-1L:1", "--key", "k", "--coupon", "A\x00", env=env), "coupon")
    too_much = f"card:{MAX_AMOUNT}.00:card_number=4242424242424242"
    refused(blocks(*checkout[:5], "--pay", too_much, "--item", "MILK-1L:1", "--key", "k", env=env), "minor units")
    refused(blocks(*checkout[:5], "--pay", "card::card_number=4\x002", "--item", "MILK-1L:1", "--key", "k", env=env))
    listed = blocks("orders", "-m", m, "--json", env=env)
    assert listed.status == 0 and json.loads(listed.stdout) == []
    assert on_hand(shop, "BREAD") == 20000


def test_order_commands_check_their_arguments(shop: tuple[str, dict[str, str | None]]) -> None:
    m, env = shop
    assert blocks("stock", "receive", "-m", m, "MILK-1L", "shop", "5", env=env).status == 0
    placed = blocks(
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
        "k",
        "--json",
        env=env,
    )
    assert placed.status == 0, placed.stderr
    order_id = json.loads(placed.stdout)["id"]
    for line in (f"0:{2**63}", "0:" + "9" * 5000, "0:²"):
        refused(blocks("refund", "-m", m, order_id, "--line", line, "--key", "r", env=env), "--line")
    refused(blocks("refund", "-m", m, order_id, "--line", f"{2**63}:1", "--key", "r", env=env), "no line")
    refused(blocks("refund", "-m", m, order_id, "--line", "0:1", "--key", "r\x00", env=env), "key")
    refused(blocks("refund", "-m", m, "ord\x00", "--key", "r", env=env), "order")
    refused(blocks("cancel", "-m", m, "ord\x00", env=env), "order")
    refused(blocks("cancel", "-m", m, order_id, "--reason", "x\x00", env=env), "reason")
    refused(blocks("orders", "-m", m, "--channel", "s\x00", env=env), "channel")
    refused(blocks("events", "-m", m, "--order", "o\x00", env=env), "order")
    refused(blocks("events", "-m", m, "--type", "o\x00", env=env), "type")
    listed = blocks("orders", "-m", m, "--json", env=env)
    assert [order["status"] for order in json.loads(listed.stdout)] == ["fulfilled"]
