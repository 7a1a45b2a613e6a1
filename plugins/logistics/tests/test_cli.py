"""The ``blocks shipments`` commands, against a stack assembled from a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from retailblocks_logistics.testing import cny

from retailblocks.model import Fulfilment, FulfilmentKind, Parcel, ShippingQuote

try:
    from click.testing import CliRunner
    from retailblocks_logistics.cli import shipments_group
except ImportError as error:  # the core's command line is still being written
    pytest.skip(f"retailblocks.cli is not importable: {error}", allow_module_level=True)

MANIFEST = """\
version: 1
merchant: {{id: lucky-coffee, name: Lucky Coffee, currency: CNY}}
database: {database}
channels:
  - {{id: web, type: online}}
blocks:
  - use: sql-inventory
    config:
      locations: [{{id: xuhui}}]
  - use: sandbox-card
    config: {{secret_key: sk_test_abcdefghijklmnop}}
  - use: logistics
    config:
      zones: [{{id: shanghai, regions: [Shanghai]}}]
      carriers:
        - id: sf
          name: SF Express
          options:
            - id: sf-standard
              name: Standard
              zones: [shanghai]
              rates: [{{up_to_grams: 1000, price: "12.00 CNY"}}, {{price: "20.00 CNY"}}]
      pickup_locations: [xuhui]
"""


@pytest.fixture
def manifest(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "blocks.yaml"
    path.write_text(MANIFEST.format(database=database_url))
    return path


def test_list_and_track(manifest: Path) -> None:
    import retailblocks
    from retailblocks.assembly.lockfile import write_lock
    from retailblocks.model import Money, Order, OrderStatus

    with retailblocks.assemble(manifest) as stack:
        write_lock(stack.plan)  # operator commands open only an assembled stack
        block = stack.block_providing("logistics")
        order = Order(
            id="ord_1",
            channel="web",
            status=OrderStatus.PAID,
            currency="CNY",
            lines=(),
            subtotal=cny("10.00"),
            discount=Money.zero("CNY"),
            shipping=cny("12.00"),
            total=cny("22.00"),
            created_at=stack.clock.now(),
            fulfilment=Fulfilment(FulfilmentKind.DELIVERY),
        )
        quote = ShippingQuote(block.id, "sf-standard", "sf", cny("12.00"))
        with stack.context("web") as ctx:
            shipment = block.logistics_arrange(  # type: ignore[attr-defined]
                ctx, order, quote, [Parcel("xuhui", (("mug", 1),))], "k1"
            )
    runner = CliRunner()
    listed = runner.invoke(shipments_group, ["list", "-m", str(manifest), "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert (row["id"], row["status"], row["amount"]) == (shipment.id, "pending", {"amount": 1200, "currency": "CNY"})

    tracked = runner.invoke(
        shipments_group,
        ["track", "-m", str(manifest), shipment.id, "shipped", "--note", "left the store"],
    )
    assert tracked.exit_code == 0, tracked.output
    assert "is now shipped" in tracked.output

    wrong = runner.invoke(shipments_group, ["track", "-m", str(manifest), shipment.id, "collected"])
    assert wrong.exit_code == 2
    assert "from 'shipped' to 'collected'" in wrong.output
