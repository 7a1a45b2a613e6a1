"""An order whose lines leave in several ways, as the CLI prints it: its groups in the table and in the
JSON of ``blocks refund``."""

from __future__ import annotations

import json
from pathlib import Path

from retailblocks.model import Address, Cart, CartLine, Fulfilment, FulfilmentKind
from tests.cli.harness import blocks
from tests.helpers import card, make_stack

SHANGHAI = Address(country="CN", region="Shanghai", latitude=31.2, longitude=121.45)


def test_the_cli_shows_the_groups_of_a_mixed_order(tmp_path: Path, sqlite_url: str) -> None:
    with make_stack(tmp_path, sqlite_url) as stack:
        cart = Cart(
            channel="web",
            lines=(
                CartLine("BEANS", 1, Fulfilment(FulfilmentKind.PICKUP, pickup_location="store-a")),
                CartLine("MUG", 1),
                CartLine("TEA", 1),
            ),
            payments=(card(),),
            fulfilment=Fulfilment(FulfilmentKind.DELIVERY, SHANGHAI),
        )
        order = stack.checkout(cart, key="mixed")
    manifest = tmp_path / "blocks.yaml"
    assert blocks("assemble", "-m", manifest).status == 0
    refunded = blocks("refund", "-m", manifest, order.id, "--line", "2:1", "--key", "tea", "--json")
    assert refunded.status == 0, refunded.stderr
    groups = json.loads(refunded.stdout)["groups"]
    assert [(g["fulfilment"]["kind"], g["lines"], g["option_id"]) for g in groups] == [
        ("pickup", [0], "click-and-collect"),
        ("delivery", [1, 2], "sf-std"),
    ]
    table = blocks("refund", "-m", manifest, order.id, "--key", "rest")
    assert table.status == 0, table.stderr
    assert "Leaves in groups" in table.stdout and "pickup" in table.stdout and "sf-std" in table.stdout
