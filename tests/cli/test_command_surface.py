"""One command surface: every ``blocks`` command, block-contributed ones included, follows the same rules.

The walk goes through the click group's own command list, so a command a block adds tomorrow is held to the
rules without anyone remembering to add it here.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from retailblocks.cli import cli
from tests.cli.harness import blocks, copy_example

#: The commands that never open a stack, so they take no manifest.
STACKLESS = {"plugins", "schema", "demo"}


def every_command() -> dict[str, click.Command]:
    """Every runnable command by its path after ``blocks`` (``stock receive``), groups walked through."""
    found: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None, f"{prefix}{name} is listed but cannot be loaded"
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = command

    walk(cli, "")
    return found


COMMANDS = every_command()


def test_the_walk_sees_the_block_contributed_commands() -> None:
    assert {"stock receive", "stock levels", "shipments track", "checkout"} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_no_command_takes_the_manifest_as_an_argument(path: str) -> None:
    arguments = [p.name for p in COMMANDS[path].params if isinstance(p, click.Argument)]
    assert "manifest" not in arguments


@pytest.mark.parametrize("path", sorted(set(COMMANDS) - STACKLESS))
def test_every_stack_command_takes_the_manifest_as_m_or_manifest(path: str) -> None:
    options = {opt: p for p in COMMANDS[path].params if isinstance(p, click.Option) for opt in p.opts}
    assert "-m" in options and "--manifest" in options, f"blocks {path} lacks -m/--manifest"
    option = options["--manifest"]
    assert option.name == "manifest"
    assert not option.required, "the manifest defaults to $BLOCKS_MANIFEST, else ./blocks.yaml"
    assert option.envvar == "BLOCKS_MANIFEST"
    assert option.default == "blocks.yaml"


@pytest.fixture
def corner_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = copy_example("corner-shop", tmp_path)
    monkeypatch.chdir(manifest.parent)
    return manifest


def test_cancel_beside_a_blocks_yaml_reads_its_order_id(corner_shop: Path) -> None:
    """It said "Missing argument 'ORDER_ID'": the optional manifest argument swallowed the order's id."""
    outcome = blocks("cancel", "ord_nope")
    assert outcome.status == 2
    assert "no order 'ord_nope'" in outcome.one_error_line()


def test_the_manifest_comes_from_blocks_manifest_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = copy_example("corner-shop", tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)
    assert blocks("orders", "--json", env={"BLOCKS_MANIFEST": str(manifest)}).status == 0
    assert blocks("orders", "--json").one_error_line() == "error: blocks.yaml: no such file"
    assert blocks("orders", "-m", str(manifest), "--json", env={"BLOCKS_MANIFEST": "nowhere.yaml"}).status == 0
