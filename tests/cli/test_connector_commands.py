"""``blocks marketplace-orders`` and ``blocks listings``: the connectors' operations from a terminal."""

from __future__ import annotations

import json
from pathlib import Path

from retailblocks.assembly.lockfile import write_lock
from retailblocks.stack import plan
from tests.cli.harness import blocks
from tests.connectors.test_marketplace import MARKET_MANIFEST
from tests.helpers import make_stack, write_manifest

DELIVERY = {"kind": "delivery", "address": {"country": "CN", "region": "Shanghai"}}


def assembled(tmp_path: Path) -> Path:
    with make_stack(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", text=MARKET_MANIFEST, stock=3):
        pass
    manifest = write_manifest(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", MARKET_MANIFEST)
    write_lock(plan(manifest))
    return manifest


def test_a_file_of_marketplace_orders_is_imported_once_and_its_bad_lines_said_where(tmp_path: Path) -> None:
    manifest = assembled(tmp_path)
    orders = tmp_path / "orders.jsonl"
    orders.write_text(
        "\n".join(
            [
                json.dumps({"order_number": "TM-1", "lines": [{"sku": "MUG", "quantity": 1}], "fulfilment": DELIVERY}),
                "{not json",
                json.dumps({"order_number": "TM-2", "lines": [{"sku": "MUG", "quantity": 0}]}),
                json.dumps({"order_number": "TM-3", "lines": [{"sku": "TEA", "quantity": 2}], "fulfilment": DELIVERY}),
            ]
        ),
        encoding="utf-8",
    )
    first = blocks("marketplace-orders", "-m", manifest, orders, "--channel", "market", "--json")
    assert first.status == 2
    outcome = json.loads(first.stdout)
    assert [o["order_number"] for o in outcome["imported"]] == ["TM-1", "TM-3"]
    assert [b["line"] for b in outcome["bad"]] == [2, 3]
    assert f"{orders}:2: not JSON" in first.stderr and f"{orders}:3: lines.0.quantity" in first.stderr
    assert "Traceback" not in first.stderr
    again = blocks("marketplace-orders", "-m", manifest, orders, "--channel", "market", "--json")
    assert [o["order_id"] for o in json.loads(again.stdout)["imported"]] == [o["order_id"] for o in outcome["imported"]]
    listed = blocks("orders", "-m", manifest, "--json")
    assert len(json.loads(listed.stdout)) == 2


def test_an_order_beyond_stock_is_refused_with_its_line_and_a_web_channel_is_not_a_marketplace(tmp_path: Path) -> None:
    manifest = assembled(tmp_path)
    orders = tmp_path / "orders.jsonl"
    orders.write_text(
        json.dumps({"order_number": "TM-9", "lines": [{"sku": "BEANS", "quantity": 50}], "fulfilment": DELIVERY}),
        encoding="utf-8",
    )
    refused = blocks("marketplace-orders", "-m", manifest, orders, "--channel", "market")
    assert refused.status == 3 and f"{orders}:1:" in refused.stderr
    wrong = blocks("marketplace-orders", "-m", manifest, orders, "--channel", "web")
    assert wrong.status == 2 and "only a marketplace's orders are imported" in wrong.stderr
    missing = blocks("marketplace-orders", "-m", manifest, tmp_path / "nope.jsonl", "--channel", "market")
    assert missing.one_error_line().endswith("nope.jsonl: no such file")


def test_listings_show_a_channels_feed_and_publish_its_changes_once(tmp_path: Path) -> None:
    manifest = assembled(tmp_path)
    shown = blocks("listings", "show", "market", "-m", manifest, "--json")
    assert shown.status == 0 and json.loads(shown.stdout) == {
        "channel": "market",
        "sellable": {"BEANS": 3, "MUG": 3, "TEA": 3},
    }
    published = blocks("listings", "publish", "-m", manifest, "--json")
    assert len(json.loads(published.stdout)["published"]) == 3
    assert json.loads(blocks("listings", "publish", "-m", manifest, "--json").stdout)["published"] == []
    unknown = blocks("listings", "show", "mall", "-m", manifest)
    assert "unknown channel 'mall'" in unknown.one_error_line()
