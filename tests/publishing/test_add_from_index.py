"""``blocks catalogue`` and ``blocks add`` against a local catalogue and a local package index (a directory of
wheels), in a throwaway virtual environment that has only the core and two reference blocks: the block is
installed from the wheel, added to a commented manifest with only its lines new, checked, and removed again.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from tests.publishing.conftest import fresh_venv, ok, run, uv

PYPROJECT = """\
[project]
name = "retailblocks-happy-hour"
version = "0.2.0"
description = "A happy hour for retailblocks: nothing off, only a secret to keep."
requires-python = ">=3.11"
dependencies = ["retailblocks>=0.1.0,<1"]

[project.entry-points.retailblocks]
happy-hour = "retailblocks_happy_hour:HappyHour"

[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["retailblocks_happy_hour"]
"""

BLOCK = '''\
"""A marketing block whose rule never applies: enough to be installed, configured and assembled."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from retailblocks import Block, Capability, FlowContext, hookimpl, secret_field
from retailblocks.model import Member, Money, PriceAdjustment, PricedLine


@attrs.frozen
class Config:
    api_key: str = secret_field(metadata={"help": "the key of the happy-hour service"})
    starts_at: int = attrs.field(default=17, metadata={"help": "the hour it starts"})


class HappyHour(Block):
    name = "happy-hour"
    capabilities = frozenset({Capability.MARKETING})
    core_api = "1.2"
    Config = Config
    description = "nothing off at any hour"

    @hookimpl
    def marketing_adjustments(
        self,
        ctx: FlowContext,
        lines: Sequence[PricedLine],
        shipping: Money,
        member: Member | None,
        coupons: Sequence[str],
        existing: Sequence[PriceAdjustment],
    ) -> Sequence[PriceAdjustment]:
        return []

    @hookimpl
    def marketing_redeem(
        self, ctx: FlowContext, order_id: str, member_id: str | None, adjustments: Sequence[PriceAdjustment]
    ) -> None:
        return None

    @hookimpl
    def marketing_release(self, ctx: FlowContext, order_id: str) -> None:
        return None
'''

#: The merchant's manifest, commented and laid out their way; `blocks add` must leave every line of it alone.
MANIFEST = """\
# The kiosk by the station.   (two spaces before this comment are the merchant's)
version: 1
merchant: {id: kiosk, name: "The Kiosk", currency: EUR}   # flow style, quoted name
channels:
  - {id: counter, type: store, location: counter}
catalog:
  - sku: PAPER
    title: 'Newspaper'     # single quotes stay single
    price: "2.50 EUR"
blocks:
  # stock first
  - use: sql-inventory
    config:
      locations: [{id: counter, kind: store}]

  - use: sandbox-card
    id: card
    config: {secret_key: "${KIOSK_CARD_KEY:-sk_test_kiosk}"}

# Card payments go to the card block.
routing:
  payment:
    card: card
"""

ADDED = """\
  - use: happy-hour
    config:
      api_key: ${HAPPY_HOUR_API_KEY}  # secret: the key of the happy-hour service
"""


def catalogue(path: Path, core_api: str = ">=1.2,<2") -> Path:
    document = {
        "catalogue": 1,
        "blocks": [
            {
                "name": "happy-hour",
                "distribution": "retailblocks-happy-hour",
                "capabilities": ["marketing"],
                "core_api": core_api,
                "summary": "Nothing off at any hour, with a secret",
                "homepage": "https://example.org/happy-hour",
                "conformance": [],
            }
        ],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local package index: a directory holding the happy-hour block's wheel, built from its project."""
    root = tmp_path_factory.mktemp("happy-hour")
    project = root / "project"
    (project / "retailblocks_happy_hour").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project / "retailblocks_happy_hour" / "__init__.py").write_text(BLOCK, encoding="utf-8")
    ok(run([uv(), "build", "--wheel", "--out-dir", root / "index", project], cwd=project))
    return root / "index"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """The bin directory of a fresh environment with the core, sql-inventory and sandbox-card."""
    return fresh_venv(
        tmp_path_factory.mktemp("env"), wheelhouse, ["retailblocks-sql-inventory", "retailblocks-sandbox-card"]
    )


def diff(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if not line.startswith(("---", "+++", "@@"))
    ]


def test_the_catalogue_lists_the_shipped_blocks_and_the_local_one(venv: Path, tmp_path: Path) -> None:
    local = catalogue(tmp_path / "local.json")
    listed = json.loads(ok(run([venv / "blocks", "catalogue", "--catalogue", local, "--json"], cwd=tmp_path)).stdout)
    names = [entry["name"] for entry in listed]
    assert names == sorted(names)
    assert {"sandbox-card", "sql-inventory", "happy-hour"} <= set(names)
    mine = next(entry for entry in listed if entry["name"] == "happy-hour")
    assert mine["source"] == str(local)
    assert mine["compatible"] is True

    found = json.loads(
        ok(
            run(
                [venv / "blocks", "catalogue", "search", "HAPPY", "--json"],
                cwd=tmp_path,
                env={"RETAILBLOCKS_CATALOGUE": str(local)},
            )
        ).stdout
    )
    assert [entry["name"] for entry in found] == ["happy-hour"]


def test_add_installs_from_the_index_and_adds_only_its_lines_then_remove_restores(
    venv: Path, index: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "blocks.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    local = catalogue(tmp_path / "local.json")
    plugins = json.loads(ok(run([venv / "blocks", "plugins", "--json"], cwd=tmp_path)).stdout)
    assert "happy-hour" not in {p["name"] for p in plugins}

    added = ok(
        run(
            [
                venv / "blocks",
                "add",
                "happy-hour",
                "-m",
                manifest,
                "--catalogue",
                local,
                "--no-index",
                "--find-links",
                index,
            ],
            cwd=tmp_path,
        )
    )

    after = manifest.read_text(encoding="utf-8")
    assert diff(MANIFEST, after) == ["+" + line for line in ADDED.splitlines()]
    assert after == MANIFEST.replace('sk_test_kiosk}"}\n', 'sk_test_kiosk}"}\n' + ADDED)
    assert "installed retailblocks-happy-hour 0.2.0" in added.stdout
    assert "HAPPY_HOUR_API_KEY" in added.stdout  # the variable still to set is named
    plugins = json.loads(ok(run([venv / "blocks", "plugins", "--json"], cwd=tmp_path)).stdout)
    assert "happy-hour" in {p["name"] for p in plugins}

    # With the variable set, the manifest assembles with the new block in it.
    secret = "hh_live_0123456789abcdef"
    assembled = ok(
        run(
            [venv / "blocks", "assemble", "--check", "-m", manifest, "--json"],
            cwd=tmp_path,
            env={"HAPPY_HOUR_API_KEY": secret},
        )
    )
    described = json.loads(assembled.stdout)
    assert [b["id"] for b in described["blocks"]] == ["sql-inventory", "card", "happy-hour"]
    assert secret not in assembled.stdout + assembled.stderr

    removed = ok(run([venv / "blocks", "remove", "happy-hour", "-m", manifest], cwd=tmp_path))
    assert manifest.read_text(encoding="utf-8") == MANIFEST
    assert "✓" in removed.stdout


def test_add_with_the_variable_set_reports_the_manifest_checks(venv: Path, index: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "blocks.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    added = json.loads(
        ok(
            run(
                [
                    venv / "blocks",
                    "add",
                    "happy-hour",
                    "--id",
                    "late-hours",
                    "-m",
                    manifest,
                    "--json",
                    "--catalogue",
                    catalogue(tmp_path / "local.json"),
                    "--no-index",
                    "--find-links",
                    index,
                ],
                cwd=tmp_path,
                env={"LATE_HOURS_API_KEY": "hh_0123456789abcdef"},
            )
        ).stdout
    )
    assert added["check"] == {"ok": True, "missing_variables": [], "problems": []}
    assert added["id"] == "late-hours"
    assert added["added_lines"] == [
        "  - use: happy-hour",
        "    id: late-hours",
        "    config:",
        "      api_key: ${LATE_HOURS_API_KEY}  # secret: the key of the happy-hour service",
    ]
    assert added["variables"] == [
        {"name": "LATE_HOURS_API_KEY", "field": "api_key", "secret": True, "help": "the key of the happy-hour service"}
    ]
    assert added["warnings"] == []
