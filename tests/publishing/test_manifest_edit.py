"""Adding and removing a ``blocks:`` entry changes only that entry's lines, whatever the manifest's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from retailblocks.errors import InvalidInput
from retailblocks.publishing.manifest_edit import ManifestText, NewEntry

ENTRY = NewEntry("qr-wallet", None, {"merchant_key": "${QR_WALLET_MERCHANT_KEY}"}, {"merchant_key": "secret: the key"})
LINES = [
    "- use: qr-wallet",
    "  config:",
    "    merchant_key: ${QR_WALLET_MERCHANT_KEY}  # secret: the key",
]


def indented(columns: int, lines: list[str] = LINES) -> str:
    return "".join(" " * columns + line + "\n" for line in lines)


def roundtrip(tmp_path: Path, text: str, expected: str, *, newline: str = "\n") -> None:
    path = tmp_path / "blocks.yaml"
    path.write_bytes(text.replace("\n", newline).encode())
    manifest = ManifestText(path)
    added = manifest.with_entry(ENTRY)
    assert added == expected.replace("\n", newline)
    manifest.write(added)
    again = ManifestText(path)
    found = again.find("qr-wallet")
    assert found is not None
    assert again.without_entry(found) == text.replace("\n", newline)


def test_dashes_indented_with_comments_after_the_list(tmp_path: Path) -> None:
    head = "version: 1\nblocks:\n  - use: a   # first\n    config:\n      x: 1\n      # more to come\n"
    tail = "\n  # a comment at the dashes' column introduces what follows\n# and so does this\nrouting: {}\n"
    roundtrip(tmp_path, head + tail, head + indented(2) + tail)


def test_dashes_at_the_margin_at_the_end_of_the_file(tmp_path: Path) -> None:
    head = "version: 1\nblocks:\n- use: a\n  id: b\n"
    roundtrip(tmp_path, head, head + indented(0))


def test_a_last_line_without_newline_and_crlf_line_ends(tmp_path: Path) -> None:
    text = "version: 1\nblocks:\n  - use: a\n"
    roundtrip(tmp_path, text, text + indented(2), newline="\r\n")
    path = tmp_path / "no-newline.yaml"
    path.write_text("blocks:\n  - use: a", encoding="utf-8")
    assert ManifestText(path).with_entry(ENTRY) == "blocks:\n  - use: a\n" + indented(2)


def test_wide_indentation_is_followed(tmp_path: Path) -> None:
    head = "blocks:\n    -   use: a\n        config:\n            x: 1\n"
    lines = ["-   use: qr-wallet", "    config:", "        merchant_key: ${QR_WALLET_MERCHANT_KEY}  # secret: the key"]
    roundtrip(tmp_path, head, head + indented(4, lines))


def test_no_blocks_key_yet(tmp_path: Path) -> None:
    text = "version: 1\n# nothing installed\n"
    path = tmp_path / "blocks.yaml"
    path.write_text(text, encoding="utf-8")
    assert ManifestText(path).with_entry(ENTRY) == text + "blocks:\n" + indented(2)


def test_an_entry_in_the_middle_is_removed_with_only_its_lines(tmp_path: Path) -> None:
    text = (
        "blocks:\n"
        "  - use: a\n"
        "  # b is the card block\n"
        "  - use: b\n"
        "    config:\n"
        "      k: v  # why\n"
        "      # deeper comment: b's\n"
        "\n"
        "  # c next\n"
        "  - use: c\n"
    )
    path = tmp_path / "blocks.yaml"
    path.write_text(text, encoding="utf-8")
    manifest = ManifestText(path)
    found = manifest.find("b")
    assert found is not None
    assert found.line == 4
    assert manifest.without_entry(found) == ("blocks:\n  - use: a\n  # b is the card block\n\n  # c next\n  - use: c\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blocks: []\n", "empty or flow-style list"),
        ("blocks: [{use: a}]\n", "empty or flow-style list"),
        ("blocks:\n", "empty or flow-style list"),
        ("- a\n- b\n", "a manifest is a mapping"),
        ("blocks:\n  - use: a\n   bad: [\n", "not YAML"),
    ],
)
def test_layouts_that_cannot_be_edited_line_by_line_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "blocks.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        ManifestText(path).with_entry(ENTRY)
    assert path.read_text(encoding="utf-8") == text


def test_the_file_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "blocks.yaml"
    path.write_text("blocks:\n  - use: a\n", encoding="utf-8")
    path.chmod(0o640)
    manifest = ManifestText(path)
    manifest.write(manifest.with_entry(ENTRY))
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.yaml"]
