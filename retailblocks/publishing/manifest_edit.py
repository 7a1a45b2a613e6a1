"""Adding an entry to a manifest's ``blocks:`` and taking it out again, changing no other line.

The manifest is the merchant's file: its comments, quoting, flow mappings and blank lines are theirs. The
document is read with ruamel.yaml's round-trip loader only to find where things are; the new entry is rendered
on its own (with the indentation the list already uses) and spliced in as whole lines after the list's last
entry, and a removal deletes exactly the lines of one entry. Before anything is written the result is parsed
again and must equal the old document plus (or minus) that one entry, so an unusual layout is refused rather
than mangled; the file is replaced atomically.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from retailblocks.errors import EnvironmentFailure, InvalidInput

_COMMENT_OR_BLANK = re.compile(r"^\s*(#.*)?$")


@attrs.frozen
class NewEntry:
    """A ``blocks:`` entry to add: ``config`` values are written as given, each with an optional comment."""

    use: str
    id: str | None = None
    config: Mapping[str, Any] = attrs.field(factory=dict)
    comments: Mapping[str, str] = attrs.field(factory=dict)

    def data(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"use": self.use}
        if self.id is not None:
            entry["id"] = self.id
        if self.config:
            entry["config"] = dict(self.config)
        return entry


@attrs.frozen
class EntryFound:
    index: int
    use: str
    id: str
    line: int  # 1-based, for messages


class ManifestText:
    """A manifest file read for editing: its text, line endings and round-trip document."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("r", encoding="utf-8", newline="") as file:
                self.text = file.read()
        except FileNotFoundError:
            raise InvalidInput(f"{path}: no such manifest") from None
        except IsADirectoryError:
            raise InvalidInput(f"{path}: is a directory, not a manifest") from None
        except UnicodeDecodeError as error:
            raise InvalidInput(f"{path}: not UTF-8 text (byte {error.start})") from None
        except OSError as error:
            raise EnvironmentFailure(f"{path}: cannot read it: {error.strerror or error}") from None
        self.newline = "\r\n" if "\r\n" in self.text else "\n"
        self.document = _load(self.text, str(path))
        if not isinstance(self.document, CommentedMap):
            raise InvalidInput(f"{path}: a manifest is a mapping (version, merchant, channels, blocks…)")

    @property
    def blocks(self) -> CommentedSeq | None:
        value = self.document.get("blocks")
        return value if isinstance(value, CommentedSeq) else None

    def entries(self) -> list[EntryFound]:
        found: list[EntryFound] = []
        blocks = self.blocks
        for index, item in enumerate(blocks or ()):
            if isinstance(item, Mapping) and isinstance(item.get("use"), str):
                line = blocks.lc.item(index)[0] + 1 if blocks is not None else 0
                use = str(item["use"])
                found.append(EntryFound(index, use, str(item.get("id") or use), line))
        return found

    def find(self, name: str) -> EntryFound | None:
        """The entry with instance id ``name`` (an entry without ``id`` has its block's name as id)."""
        return next((entry for entry in self.entries() if entry.id == name), None)

    def uses(self, block: str) -> list[EntryFound]:
        return [entry for entry in self.entries() if entry.use == block]

    # --- editing --------------------------------------------------------------------------------------

    def with_entry(self, entry: NewEntry) -> str:
        """The manifest's text with ``entry`` appended to ``blocks:``; every other line as it was."""
        lines = self.text.splitlines(keepends=True)
        blocks = self.document.get("blocks", _ABSENT)
        if blocks is _ABSENT:
            # No list yet: a new ``blocks:`` at the end of the file.
            rendered = ["blocks:" + self.newline, *self._render(entry, dash_column=2, key_column=4, indent=2)]
            prefix = lines
            if prefix and not prefix[-1].endswith(("\n", "\r")):
                prefix = [*prefix[:-1], prefix[-1] + self.newline]
            new_text = "".join([*prefix, *rendered])
        elif isinstance(blocks, CommentedSeq) and len(blocks) > 0 and not blocks.fa.flow_style():
            dash, key = self._columns(lines, blocks)
            end = self._end_of_list(lines)
            insert_at = _trim_back(lines, self._last_item_start(blocks), end, dash)
            rendered = self._render(entry, dash_column=dash, key_column=key, indent=self._config_indent(blocks))
            before = lines[:insert_at]
            if before and not before[-1].endswith(("\n", "\r")):
                before = [*before[:-1], before[-1] + self.newline]
            new_text = "".join([*before, *rendered, *lines[insert_at:]])
        else:
            raise InvalidInput(
                f"{self.path}: 'blocks' is written as an empty or flow-style list; write it as a block list "
                "(one '- use: …' per line) so an entry can be added without rewriting your lines"
            )
        expected = _plain(self.document)
        expected.setdefault("blocks", [])
        if expected["blocks"] is None:
            expected["blocks"] = []
        expected["blocks"].append(entry.data())
        self._verify(new_text, expected)
        return new_text

    def without_entry(self, found: EntryFound) -> str:
        """The manifest's text with the lines of the entry ``found`` removed; every other line as it was."""
        blocks = self.blocks
        if blocks is None or blocks.fa.flow_style():
            raise InvalidInput(f"{self.path}: 'blocks' is a flow-style list; remove {found.id!r} by hand")
        lines = self.text.splitlines(keepends=True)
        dash, _ = self._columns(lines, blocks)
        start = self._dash_line(lines, blocks, found.index)
        if found.index + 1 < len(blocks):
            end = self._dash_line(lines, blocks, found.index + 1)
        else:
            end = self._end_of_list(lines)
        end = _trim_back(lines, start + 1, end, dash)
        new_text = "".join([*lines[:start], *lines[end:]])
        expected = _plain(self.document)
        del expected["blocks"][found.index]
        self._verify(new_text, expected)
        return new_text

    def write(self, text: str) -> None:
        """Replace the file with ``text`` atomically, keeping its permissions."""
        directory = self.path.parent
        try:
            mode = self.path.stat().st_mode & 0o7777
            handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
            try:
                with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
                    file.write(text)
                    file.flush()
                    os.fsync(file.fileno())
                os.chmod(temporary, mode)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise EnvironmentFailure(f"{self.path}: cannot write it: {error.strerror or error}") from None

    # --- where things are -------------------------------------------------------------------------------

    def _dash_line(self, lines: Sequence[str], blocks: CommentedSeq, index: int) -> int:
        """The 0-based line of entry ``index``'s dash."""
        line, column = blocks.lc.item(index)
        if lines[line][:column].rstrip().endswith("-"):
            return int(line)
        raise InvalidInput(
            f"{self.path}:{line + 1}: blocks[{index}] does not start on its '-' line; edit this entry by hand"
        )

    def _columns(self, lines: Sequence[str], blocks: CommentedSeq) -> tuple[int, int]:
        """The column of the list's dashes and of its entries' keys, from its first entry."""
        line, column = blocks.lc.item(0)
        head = lines[line][:column]
        if not head.rstrip().endswith("-"):
            raise InvalidInput(f"{self.path}:{line + 1}: blocks[0] does not start on its '-' line; add by hand")
        return len(head.rstrip()) - 1, int(column)

    def _last_item_start(self, blocks: CommentedSeq) -> int:
        return int(blocks.lc.item(len(blocks) - 1)[0]) + 1

    def _end_of_list(self, lines: Sequence[str]) -> int:
        """The 0-based line just past the list: the next top-level key's line, or the end of the file."""
        keys = list(self.document)
        position = keys.index("blocks")
        for key in keys[position + 1 :]:
            return int(self.document.lc.key(key)[0])
        return len(lines)

    def _config_indent(self, blocks: CommentedSeq) -> int:
        """How far the existing entries indent their config's keys under ``config:`` (2 when none shows)."""
        for item in blocks:
            if isinstance(item, CommentedMap) and isinstance(item.get("config"), CommentedMap):
                config = item["config"]
                if config and not config.fa.flow_style():
                    first = next(iter(config))
                    return max(1, int(config.lc.key(first)[1]) - int(item.lc.key("config")[1]))
        return 2

    def _render(self, entry: NewEntry, *, dash_column: int, key_column: int, indent: int) -> list[str]:
        mapping = CommentedMap()
        mapping["use"] = entry.use
        if entry.id is not None:
            mapping["id"] = entry.id
        if entry.config:
            config = CommentedMap()
            for key, value in entry.config.items():
                config[key] = value
                if key in entry.comments:
                    config.yaml_add_eol_comment(entry.comments[key], key)
            mapping["config"] = config
        yaml = YAML()
        yaml.indent(mapping=indent, sequence=indent, offset=0)
        yaml.width = 4096
        buffer = io.StringIO()
        yaml.dump(mapping, buffer)
        rendered = buffer.getvalue().splitlines()
        first = " " * dash_column + "-" + " " * (key_column - dash_column - 1) + rendered[0]
        rest = [" " * key_column + line if line.strip() else "" for line in rendered[1:]]
        return [line + self.newline for line in [first, *rest]]

    def _verify(self, new_text: str, expected: Any) -> None:
        try:
            got = _plain(_load(new_text, str(self.path)))
        except InvalidInput:
            got = None
        if got != expected:
            raise InvalidInput(
                f"{self.path}: its layout defeats a line-by-line edit (the result would not read back as the "
                "intended manifest); nothing was written, edit 'blocks:' by hand"
            )


_ABSENT: Any = object()


def _load(text: str, name: str) -> Any:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InvalidInput(f"{where}: not YAML: {problem}") from None


def _plain(value: Any) -> Any:
    """The document as plain dicts and lists, for comparing two readings."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _trim_back(lines: Sequence[str], lower: int, end: int, dash: int) -> int:
    """``end`` moved back over blank lines and comments no deeper than the dashes (they introduce what follows)
    but not before ``lower``."""
    while end > lower:
        line = lines[end - 1]
        if not _COMMENT_OR_BLANK.match(line):
            break
        stripped = line.lstrip(" ")
        if stripped.strip() and len(line) - len(stripped) > dash:
            break  # a comment indented into the entry belongs to it
        end -= 1
    return end
