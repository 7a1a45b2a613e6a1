"""``blocks demo --http``: the same retail day through the wire — ``blocks serve`` in its own processes, the
shoppers in client processes, the back office over ``/admin`` — with the same summary and invariants."""

from __future__ import annotations

import json
from pathlib import Path

from retailblocks.manifest.api import key_digest
from retailblocks.model import Channel, ChannelType
from retailblocks.simulation.wire import Keys, api_section
from tests.cli.harness import blocks


def run_demo(tmp_path: Path, *arguments: str) -> dict[str, object]:
    result = blocks("demo", "--orders", "40", "--seed", "7", "--json", *arguments)
    assert result.status == 0, result.stderr
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def test_the_day_through_the_wire_places_what_the_day_in_process_places(tmp_path: Path) -> None:
    served = run_demo(tmp_path, "--http", "2", "--workers", "2")
    assert served["ok"], served["invariants"]
    assert served["served_by_workers"] == 2 and served["workers"] == 2
    in_process = run_demo(tmp_path)
    # Forty shoppers over 100 units: no two race for the last one, so the outcomes do not depend on which
    # client process or server worker went first, and the wire changes nothing the shoppers see.
    for figure in ("orders_attempted", "orders_placed", "rejections", "orders_by_channel", "revenue"):
        assert served[figure] == in_process[figure], figure
    features = served["features"]
    assert isinstance(features, dict) and features["payments authorized"] > 0 and features["shipments booked"] > 0


def test_the_keys_the_day_gives_its_clients_are_written_only_as_digests() -> None:
    channels = [Channel("web", ChannelType.ONLINE), Channel("store-1", ChannelType.STORE, location="s1")]
    keys = Keys.new(channels)
    section = api_section(channels, keys)
    assert keys.admin not in section and all(key not in section for key in keys.store.values())
    assert f"sha256:{key_digest(keys.store['store-1'])}" in section and f"sha256:{key_digest(keys.admin)}" in section
