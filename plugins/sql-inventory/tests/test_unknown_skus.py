"""Stock of a SKU the catalog lacks is refused: it could never be sold, and a typo would sit in the
ledger as a phantom product. The block learns the catalog from the stack at start-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from retailblocks_sql_inventory import SqlInventory

from retailblocks import assemble
from retailblocks.cli import cli
from retailblocks.errors import UnknownSku
from retailblocks.hookspecs import inventory
from retailblocks.stack import Stack

MANIFEST = """\
version: 1
merchant: {id: bakery, name: Bakery, currency: EUR}
database: "DATABASE"
channels:
  - {id: shop, type: store, location: store}
catalog:
  - {sku: BREAD, title: Bread, price: "3.00 EUR"}
  - {sku: CROISSANT, title: Croissant, price: "1.20 EUR"}
blocks:
  - use: sql-inventory
    config: {locations: [{id: store, kind: store}]}
  - use: sandbox-card
    config: {secret_key: sk_test_bakery}
"""


@pytest.fixture
def manifest(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "blocks.yaml"
    path.write_text(MANIFEST.replace("DATABASE", database_url), encoding="utf-8")
    return path


@pytest.fixture
def stack(manifest: Path) -> Iterator[Stack]:
    stack = assemble(manifest)
    try:
        yield stack
    finally:
        stack.close()


def _rows(stack: Stack) -> tuple[int, int]:
    """Stock levels and movements written, all SKUs."""
    with stack.engine.connect() as connection:
        levels = connection.execute(sa.text("SELECT count(*) FROM sql_inventory_levels")).scalar_one()
        movements = connection.execute(sa.text("SELECT count(*) FROM sql_inventory_movements")).scalar_one()
    return levels, movements


def test_the_operator_api_refuses_a_sku_the_catalog_lacks(stack: Stack) -> None:
    block = stack.block_providing("inventory")
    assert isinstance(block, SqlInventory)
    operations = {
        "receive": lambda ctx: block.receive(ctx, "DONUT", "store", 5),
        "adjust": lambda ctx: block.adjust(ctx, "DONUT", "store", -1, reason="dropped"),
        "count": lambda ctx: block.count(ctx, "DONUT", "store", 3),
        "inventory_adjust": lambda ctx: stack.hooks.call(
            inventory.inventory_adjust, ctx, "DONUT", "store", 5, "received", "k-1"
        ),
    }
    for name, operation in operations.items():
        with pytest.raises(UnknownSku, match="unknown SKU 'DONUT'") as refused, stack.context() as ctx:
            operation(ctx)
        assert refused.value.exit_status == 2, name
    assert _rows(stack) == (0, 0)


def test_a_misspelt_sku_is_told_the_one_it_resembles(stack: Stack) -> None:
    block = stack.block_providing("inventory")
    assert isinstance(block, SqlInventory)
    with pytest.raises(UnknownSku, match="did you mean 'CROISSANT'"), stack.context() as ctx:
        block.receive(ctx, "CROISANT", "store", 5)


def test_a_sku_of_the_catalog_is_still_taken(stack: Stack) -> None:
    block = stack.block_providing("inventory")
    assert isinstance(block, SqlInventory)
    with stack.context() as ctx:
        assert block.receive(ctx, "BREAD", "store", 5) == 5
    assert _rows(stack) == (1, 1)


@pytest.mark.parametrize(
    "arguments",
    [
        ["receive", "DONUT", "store", "5"],
        ["adjust", "DONUT", "store", "-2", "--reason", "x"],
        ["count", "DONUT", "store", "0"],
    ],
    ids=["receive", "adjust", "count"],
)
def test_blocks_stock_refuses_a_sku_the_catalog_lacks_with_status_2(manifest: Path, arguments: list[str]) -> None:
    command, *rest = arguments
    # Operator commands open only an assembled stack.
    assert CliRunner().invoke(cli, ["assemble", "-m", str(manifest)], prog_name="blocks").exit_code == 0
    outcome = CliRunner().invoke(cli, ["stock", command, "-m", str(manifest), *rest], prog_name="blocks")
    assert outcome.exit_code == 2, outcome.output
    assert "unknown SKU 'DONUT'" in outcome.stderr
    stack = assemble(manifest)
    try:
        assert _rows(stack) == (0, 0)
    finally:
        stack.close()
