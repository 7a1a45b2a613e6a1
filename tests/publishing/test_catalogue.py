"""The catalogue: the shipped index agrees with the reference blocks, sources extend it in order, and every
bad catalogue or name ends in one clear line naming the file and the entry — with the manifest untouched and
nothing installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retailblocks.assembly.discovery import discover
from retailblocks.publishing.catalogue import CATALOGUE_ENV, load_catalogue
from retailblocks.publishing.compat import core_api_range
from retailblocks.version import CORE_API_VERSION, __version__
from tests.cli.harness import blocks

REFERENCE = ["logistics", "loyalty", "promotions", "reach-sandbox", "sandbox-card", "sql-inventory", "stored-value"]

MANIFEST = """\
version: 1  # mine
merchant: {id: kiosk, name: The Kiosk, currency: EUR}
channels:
  - {id: counter, type: store, location: counter}
blocks:
  - use: sql-inventory
"""


def entry(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "qr-wallet",
        "distribution": "retailblocks-qr-wallet",
        "capabilities": ["payment"],
        "core_api": ">=1.0,<2",
        "summary": "QR wallet payments",
        "homepage": None,
        "conformance": ["0.1.0"],
    }
    base.update(overrides)
    return base


def write(path: Path, document: Any) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def test_the_shipped_catalogue_describes_the_installed_reference_blocks() -> None:
    shipped = load_catalogue(environ={})
    assert list(shipped.entries) == REFERENCE
    installed = discover({})
    for name, item in shipped.entries.items():
        info = installed[name]
        assert info.block_class is not None
        assert item.distribution == info.distribution
        assert set(item.capabilities) == {str(c) for c in info.block_class.capabilities}
        assert item.core_api == core_api_range(info.block_class.core_api)
        assert item.compatible
        assert item.summary


def test_later_sources_extend_and_replace_earlier_ones(tmp_path: Path) -> None:
    first = write(tmp_path / "first.json", {"catalogue": 1, "blocks": [entry()]})
    second = write(
        tmp_path / "second.json",
        {"catalogue": 1, "blocks": [entry(summary="QR wallet, the company's build"), entry(name="sandbox-card")]},
    )
    found = load_catalogue([str(second)], environ={CATALOGUE_ENV: str(first)})
    assert found.sources == ("retailblocks (shipped)", str(first), str(second))
    assert found.get("qr-wallet").summary == "QR wallet, the company's build"
    assert found.get("sandbox-card").distribution == "retailblocks-qr-wallet"
    assert [e.name for e in found.search("wallet")] == ["qr-wallet", "sandbox-card", "stored-value"]


def test_a_catalogue_is_read_from_a_url(tmp_path: Path) -> None:
    source = write(tmp_path / "remote.json", {"catalogue": 1, "blocks": [entry()]})
    found = load_catalogue([source.as_uri()], environ={})
    assert found.get("qr-wallet").source == source.as_uri()


def test_the_listing_marks_a_block_for_another_core(tmp_path: Path) -> None:
    source = write(tmp_path / "c.json", {"catalogue": 1, "blocks": [entry(core_api=">=2.0,<3")]})
    outcome = blocks("catalogue", "search", "qr", "--catalogue", source)
    assert outcome.status == 0, outcome.stderr
    assert "✗ >=2.0,<3" in outcome.stdout
    assert "needs another core API" in outcome.stdout
    listed = json.loads(blocks("catalogue", "--json", "--catalogue", source).stdout)
    assert next(e for e in listed if e["name"] == "qr-wallet")["compatible"] is False


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{not json", "c.json:1:2: not JSON"),
        ([], 'expected an object {"catalogue": 1'),
        ({"catalogue": 2, "blocks": []}, "'catalogue' must be 1"),
        ({"catalogue": 1, "blocks": {}}, "'blocks' must be a list"),
        ({"catalogue": 1, "blocks": [entry()], "extra": 1}, "unknown key 'extra'"),
        ({"catalogue": 1, "blocks": ["qr"]}, "blocks[0]: expected an object"),
        ({"catalogue": 1, "blocks": [entry(name="QR Wallet")]}, "blocks[0] (QR Wallet): name 'QR Wallet' is not"),
        ({"catalogue": 1, "blocks": [entry(capabilities=["payments"])]}, "blocks[0] (qr-wallet): capabilities"),
        ({"catalogue": 1, "blocks": [entry(core_api="1.x")]}, "blocks[0] (qr-wallet): core_api '1.x' is not"),
        ({"catalogue": 1, "blocks": [entry(core_api=">=0.1.0,<1")]}, "core_api '>=0.1.0,<1' is not a core API"),
        ({"catalogue": 1, "blocks": [entry(homepage="ftp://x")]}, "homepage 'ftp://x' is not an http(s) URL"),
        ({"catalogue": 1, "blocks": [entry(conformance="0.1.0")]}, "conformance '0.1.0' is not a list"),
        ({"catalogue": 1, "blocks": [entry(version="latest")]}, "version 'latest' is not a version range"),
        ({"catalogue": 1, "blocks": [entry(colour="red")]}, "unknown field 'colour'"),
        ({"catalogue": 1, "blocks": [{"name": "qr-wallet"}]}, "missing 'distribution', 'capabilities'"),
        ({"catalogue": 1, "blocks": [entry(), entry()]}, "blocks[1] (qr-wallet): the name appears twice"),
    ],
)
def test_a_bad_catalogue_is_one_line_naming_the_file_and_entry(tmp_path: Path, document: Any, expected: str) -> None:
    source = write(tmp_path / "c.json", document)
    manifest = write(tmp_path / "blocks.yaml", MANIFEST)

    for args in (["catalogue"], ["add", "qr-wallet", "-m", str(manifest)]):
        outcome = blocks(*args, "--catalogue", source)
        assert outcome.status == 2
        line = outcome.one_error_line()
        assert f"catalogue {source}" in line
        assert expected in line, line
    assert manifest.read_text(encoding="utf-8") == MANIFEST


def test_a_missing_catalogue_file_and_an_unreachable_url(tmp_path: Path) -> None:
    missing = blocks("catalogue", "--catalogue", tmp_path / "nowhere.json")
    assert missing.status == 2
    assert missing.one_error_line() == f"error: catalogue {tmp_path / 'nowhere.json'}: no such file"
    unreachable = blocks("catalogue", "--catalogue", "http://127.0.0.1:9/catalogue.json")
    assert unreachable.status == 1
    assert "catalogue http://127.0.0.1:9/catalogue.json: cannot fetch it" in unreachable.one_error_line()
    bad_env = blocks("catalogue", env={CATALOGUE_ENV: str(tmp_path / "gone.json")})
    assert bad_env.status == 2
    assert "gone.json: no such file" in bad_env.one_error_line()


def test_an_unknown_name_suggests_the_close_ones_and_touches_nothing(tmp_path: Path) -> None:
    manifest = write(tmp_path / "blocks.yaml", MANIFEST)
    outcome = blocks("add", "sandbox-crad", "-m", manifest)
    assert outcome.status == 2
    line = outcome.one_error_line()
    assert "no block named 'sandbox-crad' in the catalogue" in line
    assert "did you mean 'sandbox-card'" in line
    assert manifest.read_text(encoding="utf-8") == MANIFEST

    json_outcome = blocks("add", "nothing-like-it", "-m", manifest, "--json")
    assert json_outcome.status == 2
    assert json.loads(json_outcome.stdout)["error"]["message"].startswith("no block named 'nothing-like-it'")


def test_a_block_for_another_core_api_is_refused_before_install(tmp_path: Path) -> None:
    major, minor = CORE_API_VERSION.split(".")
    newer = f">={major}.{int(minor) + 1},<{int(major) + 1}"
    source = write(tmp_path / "c.json", {"catalogue": 1, "blocks": [entry(core_api=newer)]})
    manifest = write(tmp_path / "blocks.yaml", MANIFEST)
    # An installer that ran would fail on this nonexistent distribution with another message; the refusal
    # comes first, naming both ranges.
    outcome = blocks("add", "qr-wallet", "-m", manifest, "--catalogue", source, "--no-index")
    assert outcome.status == 2
    line = outcome.one_error_line()
    assert f"runs on core API {newer}" in line
    assert f"this retailblocks {__version__} provides core API {CORE_API_VERSION}" in line
    assert "nothing was installed" in line
    assert manifest.read_text(encoding="utf-8") == MANIFEST


def test_catalogue_search_needs_one_term() -> None:
    for args in (["catalogue", "find", "x"], ["catalogue", "search"], ["catalogue", "search", "a", "b"]):
        outcome = blocks(*args)
        assert outcome.status == 2
        assert "blocks catalogue search TERM" in outcome.one_error_line()


def test_adding_an_instance_id_the_manifest_has_is_refused(tmp_path: Path) -> None:
    manifest = write(tmp_path / "blocks.yaml", MANIFEST)
    outcome = blocks("add", "sql-inventory", "-m", manifest, "--no-install")
    assert outcome.status == 2
    assert "blocks.yaml:6: blocks[0] is already 'sql-inventory'" in outcome.one_error_line()
    assert manifest.read_text(encoding="utf-8") == MANIFEST
    bad_id = blocks("add", "sandbox-card", "--id", "Card!", "-m", manifest, "--no-install")
    assert bad_id.status == 2
    assert "--id 'Card!' is not an instance id" in bad_id.one_error_line()


def test_remove_of_an_entry_the_manifest_lacks(tmp_path: Path) -> None:
    manifest = write(tmp_path / "blocks.yaml", MANIFEST)
    outcome = blocks("remove", "sandbox-card", "-m", manifest)
    assert outcome.status == 2
    assert "no entry 'sandbox-card' in blocks: (entries: 'sql-inventory')" in outcome.one_error_line()
    assert manifest.read_text(encoding="utf-8") == MANIFEST
