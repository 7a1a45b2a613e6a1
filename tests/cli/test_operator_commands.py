"""What operators do from the command line that was a Python call only: issue a gift card, top up a wallet,
exchange points with a partner, undo a member merge (issue 11, item 19)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.harness import assembled_example, blocks

CARD = "card::card_number=4242424242424242"


@pytest.fixture
def lucky_coffee(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = assembled_example("lucky-coffee", tmp_path)
    monkeypatch.chdir(manifest.parent)
    return manifest


def ok_json(*args: str) -> Any:
    outcome = blocks(*args, "--json")
    assert outcome.status == 0, outcome.stdout + outcome.stderr
    return json.loads(outcome.stdout)


def buy(key: str, *identities: str) -> str:
    given = [a for identity in identities for a in ("--identity", identity)]
    order = ok_json("checkout", "--channel", "store-xuhui", "--item", "DRIP-10:1", "--pay", CARD, *given, "--key", key)
    member: str = order["member_id"]
    return member


def test_a_gift_card_is_issued_once_per_key_and_pays(lucky_coffee: Path) -> None:
    issued = ok_json("stored-value", "issue-gift-card", "50.00", "--key", "g1")
    assert issued["issued"] == issued["balance"] == {"amount": 5000, "currency": "CNY"}
    assert ok_json("stored-value", "issue-gift-card", "50.00", "--key", "g1")["gift_card"] == issued["gift_card"]
    assert blocks("stock", "receive", "DRIP-10", "xuhui", "5").status == 0
    gift_card = f"gift_card::code={issued['gift_card']}"
    paid = ok_json("checkout", "--channel", "store-xuhui", "--item", "DRIP-10:1", "--pay", gift_card, "--key", "o1")
    assert paid["payments"][0]["method"] == "gift_card"
    left = ok_json("stored-value", "balance", issued["gift_card"])["balance"]
    assert left == {"amount": 5000 - 4900, "currency": "CNY"}
    too_much = blocks("stored-value", "issue-gift-card", "5000.00", "--key", "g2", "--json")
    assert too_much.status == 2
    assert "at most" in json.loads(too_much.stdout)["error"]["message"]


def test_a_wallet_is_topped_up_and_points_exchanged_with_a_partner(lucky_coffee: Path) -> None:
    assert blocks("stock", "receive", "DRIP-10", "xuhui", "5").status == 0
    member = buy("o1", "phone:+8613800000001")
    topped = ok_json("stored-value", "top-up", member, "20.00", "--key", "t1")
    assert topped["balance"] == {"amount": 2000, "currency": "CNY"}
    assert ok_json("stored-value", "balance", member)["balance"] == topped["balance"]

    brought = ok_json("loyalty", "exchange", member, "metro-mall", "--in", "100", "--key", "x1")
    assert brought["points"] == 50  # metro-mall's rate is 50 %
    sent = ok_json("loyalty", "exchange", member, "metro-mall", "--out", "10", "--key", "x2")
    assert (sent["points"], sent["balance"]) == (-10, brought["balance"] - 10)
    neither = blocks("loyalty", "exchange", member, "metro-mall", "--key", "x3")
    assert neither.status == 2 and "--in" in neither.one_error_line()


def test_a_member_merge_is_undone(lucky_coffee: Path) -> None:
    assert blocks("stock", "receive", "DRIP-10", "xuhui", "5").status == 0
    survivor = buy("o1", "phone:+8613800000001")
    absorbed = buy("o2", "email:a@example.cn")
    assert buy("o3", "phone:+8613800000001", "email:a@example.cn") == survivor
    (merge,) = ok_json("loyalty", "merges", survivor)
    assert (merge["survivor"], merge["absorbed"], merge["reverted_at"]) == (survivor, absorbed, None)
    assert merge["spend_moved"] == {"amount": 4900, "currency": "CNY"}

    undone = ok_json("loyalty", "unmerge", merge["id"], "--reason", "two people")
    assert undone["reverted_at"] is not None
    assert ok_json("loyalty", "unmerge", merge["id"])["reverted_at"] == undone["reverted_at"]
    unknown = blocks("loyalty", "unmerge", "merge_nope")
    assert unknown.status == 2 and "merge_nope" in unknown.one_error_line()
