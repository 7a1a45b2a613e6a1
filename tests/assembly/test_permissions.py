"""Block table permissions at assembly: declared on the class, compared with what the block's code uses,
reported by ``blocks assemble`` (and written to the lock) and shown by ``blocks plugins``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from retailblocks import Block
from retailblocks.assembly.describe import describe_plan
from retailblocks.assembly.discovery import BlockInfo, discover, validate_block_class
from retailblocks.assembly.permissions import block_permissions, class_permissions
from retailblocks.cli import cli
from retailblocks.stack import plan
from tests.helpers import SHOP_MANIFEST, write_manifest
from tests.storage.nosy.block import Nosy

NOSY_MANIFEST = SHOP_MANIFEST.replace(
    "  - use: promotions\n", "  - use: nosy\n  - use: quiet\n  - use: promotions\n", 1
)


class Quiet(Block):
    """A third party's block from before permissions: it declares none, and still assembles."""

    name = "quiet"


def installed() -> dict[str, BlockInfo]:
    return {
        **discover(),
        "nosy": BlockInfo("nosy", "tests", "1.0", "tests.storage.nosy.block:Nosy", block_class=Nosy),
        "quiet": BlockInfo("quiet", "tests", "1.0", "tests:Quiet", block_class=Quiet),
    }


def test_the_reference_blocks_declare_their_tables_and_their_code_keeps_to_them(tmp_path: Path) -> None:
    the_plan = plan(write_manifest(tmp_path, "sqlite:///shop.db"))
    reports = block_permissions(the_plan)

    assert {report.block_id for report in reports} == {
        "inventory",
        "card",
        "stored-value",
        "loyalty",
        "logistics",
        "promotions",
    }
    for report in reports:
        assert report.tables.declared, report.block_id
        assert report.findings == (), (report.block_id, report.findings)
        assert report.writes and all(report.tables.owns_table(table) for table in report.writes), report.block_id
    loyalty = next(report for report in reports if report.block_id == "loyalty")
    assert "loyalty_members" in loyalty.tables.owns and loyalty.tables.reads_core == frozenset()
    # The lock records them, like an app's permissions: a version that asks for more shows in its diff.
    locked = {block["id"]: block["permissions"] for block in describe_plan(the_plan)["blocks"]}
    assert locked["loyalty"] == {
        "declared": True,
        "owns": sorted(loyalty.tables.owns),
        "owns_prefix": "loyalty_",
        "reads_core": [],
    }


def test_assembly_reports_what_a_block_uses_beyond_its_declaration(tmp_path: Path) -> None:
    reports = {
        r.block_id: r
        for r in block_permissions(
            plan(write_manifest(tmp_path, "sqlite:///s.db", NOSY_MANIFEST), installed=installed())
        )
    }

    nosy = reports["nosy"]
    assert "orders" in nosy.writes and "nosy_notes" in nosy.writes
    assert "writes the core table 'orders'" in nosy.findings
    assert not any("'order_lines'" in finding for finding in nosy.findings)  # declared
    quiet = reports["quiet"]
    assert not quiet.tables.declared
    assert quiet.findings[0].startswith("declares no table permissions: taken to own the tables its migrations")


def test_blocks_assemble_prints_the_permissions_and_the_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retailblocks.assembly.discovery as discovery
    import retailblocks.stack as stack_module

    monkeypatch.setattr(discovery, "discover", lambda environ=None: installed())
    monkeypatch.setattr(stack_module.planning, "discover", lambda environ=None: installed())
    manifest = write_manifest(tmp_path, f"sqlite:///{tmp_path}/s.db", NOSY_MANIFEST)

    outcome = CliRunner().invoke(cli, ["assemble", "-m", str(manifest), "--check"], env={"COLUMNS": "200"})

    assert outcome.exit_code == 0, outcome.output
    assert "Table permissions" in outcome.output
    assert "block nosy: writes the core table 'orders'" in outcome.output
    assert "block quiet: declares no table permissions" in outcome.output
    assert "loyalty_* (9 tables)" in outcome.output


def test_blocks_plugins_shows_each_blocks_permissions() -> None:
    runner = CliRunner()
    listed = {row["name"]: row for row in json.loads(runner.invoke(cli, ["plugins", "--json"]).output)}
    text = runner.invoke(cli, ["plugins"], env={"COLUMNS": "200"}).output

    inventory = listed["sql-inventory"]["permissions"]
    assert inventory["declared"] and inventory["reads_core"] == []
    assert "sql_inventory_levels" in inventory["owns"] and inventory["owns_prefix"] == "sql_inventory_"
    assert "Table permissions" in text and "sql_inventory_* (7 tables)" in text
    assert class_permissions(Quiet) == {"declared": False, "owns": [], "owns_prefix": "quiet_", "reads_core": None}


@pytest.mark.parametrize("declared", ["orders", 3, ("orders", 1)])
def test_a_sloppy_declaration_is_that_blocks_problem(declared: object) -> None:
    sloppy = type("Sloppy", (Block,), {"name": "sloppy", "reads_core_tables": declared})
    assert "declares reads_core_tables" in (validate_block_class("sloppy", sloppy) or "")
