"""``blocks stock …``: operator commands, run against the block through a stand-in for open_stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from retailblocks_sql_inventory.commands import stock_group

import retailblocks.cli.support as support
from retailblocks.context import FlowContext
from retailblocks.testing import BlockHarness


class StandInStack:
    """What the commands use of a Stack: the inventory block and operator contexts."""

    def __init__(self, harness: BlockHarness):
        self.harness = harness

    def block_providing(self, capability: str) -> Any:
        assert capability == "inventory"
        return self.harness.block

    @contextmanager
    def context(self, channel: str | None = None, *, flow: str = "operator") -> Iterator[FlowContext]:
        with self.harness.context(channel, flow=flow) as ctx:
            yield ctx


@pytest.fixture
def run(sqlite_inventory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    manifest = tmp_path / "blocks.yaml"
    manifest.write_text("version: 1\n")

    @contextmanager
    def open_stack(path: Path | str, **_options: Any) -> Iterator[StandInStack]:
        assert Path(path) == manifest
        with support.reporting_errors():
            yield StandInStack(sqlite_inventory.harness)

    monkeypatch.setattr(support, "open_stack", open_stack)

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(stock_group, [args[0], "-m", str(manifest), *args[1:]])

    return invoke


def test_the_distribution_declares_the_stock_group() -> None:
    from importlib.metadata import entry_points

    (declared,) = [point for point in entry_points(group="retailblocks.commands") if point.name == "stock"]
    assert declared.load() is stock_group
    assert set(stock_group.commands) == {"levels", "receive", "adjust", "count", "movements"}


def test_receive_adjust_count_then_levels_and_movements(run: Any) -> None:
    assert run("receive", "mug", "wh-east", "10", "--reason", "PO-7").exit_code == 0
    result = run("adjust", "mug", "wh-east", "-2", "--reason", "damaged")
    assert result.exit_code == 0, result.output
    assert "on hand now 8" in result.output
    result = run("count", "mug", "wh-east", "7")
    assert result.exit_code == 0, result.output
    assert "(was 8, -1)" in result.output

    levels = json.loads(run("levels", "--sku", "mug", "--json").output)
    assert levels == [
        {"sku": "mug", "location": "wh-east", "on_hand": 7, "reserved": 0, "allocated": 0, "available": 7}
    ]
    movements = json.loads(run("movements", "--json").output)
    assert [(m["kind"], m["delta"], m["reason"]) for m in movements] == [
        ("receive", 10, "PO-7"),
        ("adjust", -2, "damaged"),
        ("count", -1, "counted"),
    ]
    assert "Stock levels" in run("levels").output
    assert "Stock movements" in run("movements", "--sku", "mug", "--limit", "2").output


@pytest.mark.parametrize(
    "args",
    [
        ("receive", "mug", "wh-east", "0"),
        ("receive", "mug", "wh-east", "two"),
        ("receive", "mug", "moon", "1"),
        ("adjust", "mug", "wh-east", "0", "--reason", "x"),
        ("adjust", "mug", "wh-east", "-1"),
        ("count", "mug", "wh-east", "-1"),
        ("adjust", "mug", "wh-east", "-5", "--reason", "lost"),
    ],
)
def test_bad_arguments_exit_2_with_one_message(run: Any, args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
