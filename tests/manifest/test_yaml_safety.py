"""Hostile or broken files: YAML errors, unsafe tags, alias bombs, deep nesting, bad bytes, bad
paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from retailblocks.manifest import MAX_BYTES, ManifestError, load_manifest, parse_manifest


def test_yaml_syntax_error_points_at_the_problem(fails):
    error = fails("version: 1\nmerchant:\n  id: [unclosed\n", at=(4, 1), says="invalid YAML")
    assert "flow sequence" in error.problem


def test_yaml_mapping_values_not_allowed(fails):
    fails("version: 1\nmerchant: a: b\n", at=(2, 12), says="mapping values are not allowed here")


def test_tab_indentation(fails):
    fails("version: 1\nmerchant:\n\tid: x\n", at=(3, 1), says="invalid YAML")


def test_duplicate_keys_name_both_lines(valid, fails):
    fails(
        valid.replace("  name: Lucky Coffee\n", "  name: Lucky Coffee\n  name: Unlucky\n"),
        at=(5, 3),
        path="merchant.name",
        says="duplicate key 'name' (first written at line 4:3)",
    )


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/object/apply:os.system ['echo pwned']", "!!python/object/apply:os.system"),
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!foo bar", "!foo"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!timestamp 2024-01-01", "!!timestamp"),
        ("!!set {a: null}", "!!set"),
    ],
)
def test_unsafe_or_unknown_tags_are_refused(valid, fails, value, tag):
    fails(
        valid.replace("name: Lucky Coffee", f"name: {value}"),
        at=(4, 9),
        path="merchant.name",
        says=f"unsafe or unknown YAML tag {tag!r}",
    )


def test_core_schema_tags_are_fine(load, valid):
    manifest = load(valid.replace("name: Lucky Coffee", "name: !!str 2024"))
    assert manifest.merchant.name == "2024"


def test_an_unquoted_date_stays_a_string(load, valid):
    manifest = load(valid.replace("name: Lucky Coffee", "name: 2024-01-31"))
    assert manifest.merchant.name == "2024-01-31"


BILLION_LAUGHS = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_stopped(write):
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(BILLION_LAUGHS), environ={})
    message = str(caught.value)
    assert "alias expansion too large (billion laughs?)" in message
    assert caught.value.line is not None
    assert "\n" not in message


def test_recursive_alias_is_refused(fails):
    fails("version: 1\nmerchant: &m [*m]\n", at=(2, 11), path="merchant[0]", says="recursive alias")


def test_modest_aliases_and_merge_keys_work(load):
    manifest = load(
        """\
        version: 1
        merchant: {id: m, name: M, currency: CNY}
        channels:
          - &web {id: web, type: online}
          - <<: *web
            id: app
        blocks: [{use: x}]
        """
    )
    assert [(c.id, c.type.value) for c in manifest.channels] == [
        ("web", "online"),
        ("app", "online"),
    ]


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deep_nesting_is_refused(fails, depth):
    fails("[" * depth, at=(1, 65), says="nested deeper than 64 levels")


def test_deep_block_nesting_is_refused(fails):
    text = "".join(" " * i + "a:\n" for i in range(200)) + " " * 200 + "b: 1\n"
    fails(text, at=(65, 65), says="nested deeper than 64 levels")


def test_deep_nesting_through_aliases_is_refused(write):
    inner = "[" * 60 + "1" + "]" * 60
    text = f"version: 1\na: &a {inner}\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    with pytest.raises(ManifestError, match="nested deeper than 64 levels"):
        load_manifest(write(text), environ={})


def test_multiple_documents_are_refused(valid, fails):
    fails(valid + "---\nversion: 1\n", at=(21, 1), says="a manifest is a single YAML document")


def test_non_utf8_bytes_are_located(fails):
    fails(
        b"version: 1\nmerchant:\n  name: caf\xe9\n",
        at=(3, 12),
        says=("not valid UTF-8 (byte 0xe9)", "save the manifest as UTF-8"),
    )


def test_utf16_file_is_refused(fails):
    fails("version: 1\n".encode("utf-16"), at=(1, 1), says="not valid UTF-8")


def test_utf8_bom_is_accepted(load, valid):
    assert load(b"\xef\xbb\xbf" + valid.encode()).version == 1


def test_control_characters_are_refused(fails):
    fails(b"version: 1\nmerchant: \x07\n", at=(2, 11), says="character U+0007 is not allowed")


def test_huge_integers_are_refused(valid, fails):
    fails(
        valid.replace("version: 1", "version: 0x" + "f" * 5000),
        at=(1, 10),
        path="version",
        says="integer out of range",
    )


def test_non_string_keys_are_refused(fails):
    fails(
        "version: 1\nyes: 1\n",
        at=(2, 1),
        says="mapping keys must be strings (got the boolean true)",
    )


def test_a_two_mebibyte_file_is_refused(fails):
    fails(b"# " + b"x" * (2 * MAX_BYTES) + b"\n", at=None, says="larger than the 1 MiB limit")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(caught.value) == f"{path}: no such file"


def test_a_directory_is_not_a_manifest(tmp_path):
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a directory; give the path of a manifest file"


def test_a_file_as_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "file" / "blocks.yaml")


@pytest.mark.skipif(
    sys.platform == "win32" or (hasattr(os, "geteuid") and os.geteuid() == 0),
    reason="root reads anything",
)
def test_permission_denied(write):
    path = write("version: 1\n")
    path.chmod(0)
    try:
        with pytest.raises(ManifestError, match="permission denied"):
            load_manifest(path)
    finally:
        path.chmod(0o644)


def test_nul_in_path():
    with pytest.raises(ManifestError, match="invalid file name"):
        load_manifest("blocks\0.yaml")


def test_parse_manifest_in_memory(valid, tmp_path: Path):
    manifest = parse_manifest(valid, path=tmp_path / "shop.yaml", environ={"SANDBOX_PAYMENT_KEY": "k"})
    assert manifest.database_url == f"sqlite:///{tmp_path}/.blocks/lucky-coffee.db"
