"""A manifest's independent problems are all reported at once, one line each, the first line as when it
was the only one reported, and still nothing is written (issue 11, item 17)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from retailblocks.manifest import ManifestError, parse_manifest
from retailblocks.stack import plan
from tests.cli.harness import blocks, copy_example, tree
from tests.manifest.conftest import ENVIRON, VALID

BAD_CURRENCY = VALID.replace("currency: CNY", "currency: yuan")
BAD_CHANNEL = VALID.replace("type: online", "type: moon")
BAD_BLOCK = VALID.replace("  - use: sql-inventory\n    id: inventory\n", "  - use: sql-inventory\n    id: Inventory!\n")
ALL_THREE = (
    VALID.replace("currency: CNY", "currency: yuan")
    .replace("type: online", "type: moon")
    .replace("    id: inventory\n", "    id: Inventory!\n")
)


def error_of(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, path="shop/blocks.yaml", environ=ENVIRON)
    return caught.value


def test_independent_problems_are_reported_together_in_document_order() -> None:
    error = error_of(ALL_THREE)
    singles = [str(error_of(text)) for text in (BAD_CURRENCY, BAD_CHANNEL, BAD_BLOCK)]
    assert [str(problem) for problem in error.problems] == singles
    lines = str(error).splitlines()
    assert lines == singles
    # The first line is what was reported when only the first problem was.
    assert lines[0] == singles[0]
    assert (error.line, error.doc_path) == (error.problems[0].line, "merchant.currency")


def test_a_lone_problem_is_one_line_as_before() -> None:
    error = error_of(BAD_CHANNEL)
    assert error.problems == (error,)
    assert "\n" not in str(error)


def test_a_problem_that_follows_from_another_is_not_reported() -> None:
    # Prices are read in the merchant's currency: with the currency wrong they are not checked at all,
    # rather than each reported as in the wrong currency.
    text = BAD_CURRENCY.replace("channels:\n", 'catalog:\n  - {sku: A, title: A, price: "1.00 CNY"}\nchannels:\n', 1)
    error = error_of(text)
    assert len(error.problems) == 1 and error.doc_path == "merchant.currency"


def test_the_problems_survive_pickling() -> None:
    error = error_of(ALL_THREE)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)
    assert [str(p) for p in again.problems] == [str(p) for p in error.problems]


def test_several_block_entries_are_each_reported(tmp_path: Path) -> None:
    manifest = copy_example("corner-shop", tmp_path)
    text = manifest.read_text(encoding="utf-8")
    text = text.replace("use: sql-inventory", "use: sql-inventroy").replace("use: sandbox-card", "use: sandbox-crad")
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        plan(manifest)
    problems = [problem.doc_path for problem in caught.value.problems]
    assert problems == ["blocks[0].use", "blocks[1].use"]


def test_the_command_prints_every_problem_on_its_own_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = copy_example("corner-shop", tmp_path)
    monkeypatch.chdir(manifest.parent)
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(
        text.replace("currency: EUR}", "currency: euro}").replace("type: online", "type: moon"), encoding="utf-8"
    )
    before = tree(tmp_path)
    outcome = blocks("assemble", "-m", manifest)
    assert outcome.status == 2
    assert "Traceback" not in outcome.stderr
    lines = outcome.error_lines
    assert len(lines) == 2, outcome.stderr
    assert lines[0].startswith(f"error: {manifest}:4:") and "merchant.currency" in lines[0]
    assert lines[1].startswith(f"error: {manifest}:7:") and "channels[1].type" in lines[1]
    assert tree(tmp_path) == before


def test_every_problem_a_block_finds_in_its_configuration_is_reported(tmp_path: Path) -> None:
    manifest = copy_example("corner-shop", tmp_path)
    text = manifest.read_text(encoding="utf-8")
    one = text.replace(
        "        web: {locations: [shop]}\n", "        web: {locations: [shop]}\n        wbe: {locations: [shop]}\n"
    )
    manifest.write_text(one, encoding="utf-8")
    with pytest.raises(ManifestError) as alone:
        plan(manifest)
    # Written after the first problem, so that its line stays where it was.
    both = one.replace(
        "        wbe: {locations: [shop]}\n", "        wbe: {locations: [shop]}\n      backorders: {NOPE: 1}\n"
    )
    manifest.write_text(both, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        plan(manifest)
    assert str(caught.value).splitlines()[0] == str(alone.value)
    assert [problem.doc_path for problem in caught.value.problems] == [
        "blocks[0].config.channels.wbe",
        "blocks[0].config.backorders.NOPE",
    ]


def test_the_items_of_a_list_are_each_reported() -> None:
    text = VALID.replace("type: online", "type: moon").replace("type: store\n", "type: mars\n")
    text = text.replace("    id: inventory\n", "    id: Inventory!\n").replace(
        "  - use: sandbox-payment\n", "  - use: '%'\n"
    )
    error = error_of(text)
    assert [problem.doc_path for problem in error.problems] == [
        "channels[0].type",
        "channels[1].type",
        "blocks[0].id",
        "blocks[1].use",
    ]
