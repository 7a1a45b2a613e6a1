"""From a manifest file's bytes to a tree of position-carrying
:class:`~retailblocks.manifest.nodes.Node`.

The file is read with a size bound, decoded as strict UTF-8 and composed by PyYAML's safe loader
into its node graph, which keeps line and column marks. The values are then built here rather than
by PyYAML's constructor, so that nothing but the YAML core types (mappings, lists, strings, numbers,
booleans, null) can appear, duplicate keys are errors, alias expansion and nesting are bounded,
``${VAR}`` is interpolated, and every value keeps its place for later messages. Every failure is a
:class:`~retailblocks.manifest.errors.ManifestError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from retailblocks.manifest.errors import ManifestError, SourcePosition
from retailblocks.manifest.interpolate import InterpolationError, expand, has_reference
from retailblocks.manifest.nodes import Node, Scalar, describe_value

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_NODES = 10_000

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + name for name in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP, _MERGE = _TAG + "seq", _TAG + "map", _TAG + "merge"
# PyYAML's own notion of a line break, so our line numbers agree with its marks.
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


class _TooDeep(Exception):
    # Any: the stubs type an event's mark as a union with libyaml's private Mark class.
    def __init__(self, mark: Any) -> None:
        super().__init__()
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing to nest deeper than :data:`MAX_DEPTH` while composing.

    PyYAML composes recursively, so ``[[[[…`` a hundred thousand deep would otherwise end in a
    RecursionError (or worse, a crash) inside the composer before any of our checks run.
    """

    # YAML 1.1 turns an unquoted 2024-01-31 into a datetime; the core schema has no
    # timestamps, so such
    # a scalar stays a string. An explicit ``!!timestamp`` is still rejected as an unknown tag.
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TAG + "timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # Only collections nest; scalars and aliases below the limit are fine.
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _TooDeep(event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_source(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes, at most :data:`MAX_BYTES` of them."""
    file = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError("no such file", file=file) from None
    except IsADirectoryError:
        raise ManifestError("is a directory; give the path of a manifest file", file=file) from None
    except NotADirectoryError:
        raise ManifestError("no such file (a parent of it is not a directory)", file=file) from None
    except PermissionError:
        raise ManifestError("permission denied: cannot read the manifest", file=file) from None
    except OSError as error:
        raise ManifestError(f"cannot read the manifest: {error.strerror or error}", file=file) from None
    except ValueError:  # a NUL byte in the path
        raise ManifestError("invalid file name", file=file) from None
    if len(data) > MAX_BYTES:
        raise ManifestError(f"the manifest is larger than the {MAX_BYTES // (1024 * 1024)} MiB limit", file=file)
    return data


def decode(data: bytes, file: str) -> str:
    """Strict UTF-8; a bad byte is reported at its line and column. A leading BOM is dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = line_column(data[: error.start].decode("utf-8"), error.start)
        raise ManifestError(
            f"not valid UTF-8 (byte 0x{data[error.start]:02x}); save the manifest as UTF-8",
            file=file,
            line=line,
            column=column,
        ) from None
    return text.removeprefix("\ufeff")


def line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index`` in ``text`` (which may be just a prefix)."""
    prefix = text[:index]
    breaks = list(_LINE_BREAK.finditer(prefix))
    if not breaks:
        return 1, len(prefix) + 1
    return len(breaks) + 1, len(prefix) - breaks[-1].end() + 1


def _position(mark: yaml.Mark | None, file: str, doc_path: str = "") -> SourcePosition:
    if mark is None:
        return SourcePosition(file, doc_path=doc_path)
    return SourcePosition(file, mark.line + 1, mark.column + 1, doc_path)


def _yaml_problem(error: yaml.MarkedYAMLError) -> str:
    parts = [part for part in (error.problem, error.context) if part]
    return "invalid YAML: " + ("; ".join(parts) if parts else "cannot parse")


def compose(text: str, file: str) -> yaml.Node | None:
    """PyYAML's node graph of the single document in ``text``; ``None`` when there is no
    document."""
    try:
        loader = _BoundedLoader(text)
    except yaml.reader.ReaderError as error:
        raise _reader_error(error, text, file) from None
    try:
        return loader.get_single_node()
    except _TooDeep as error:
        raise ManifestError.at(_position(error.mark, file), f"nested deeper than {MAX_DEPTH} levels") from None
    except RecursionError:
        raise ManifestError.at(_position(loader.get_mark(), file), f"nested deeper than {MAX_DEPTH} levels") from None
    except yaml.composer.ComposerError as error:
        if error.problem == "but found another document":
            raise ManifestError.at(
                _position(error.problem_mark, file),
                "a manifest is a single YAML document; found a second one (remove the '---')",
            ) from None
        raise ManifestError.at(_position(error.problem_mark, file), _yaml_problem(error)) from None
    except yaml.MarkedYAMLError as error:
        raise ManifestError.at(_position(error.problem_mark, file), _yaml_problem(error)) from None
    except yaml.reader.ReaderError as error:
        raise _reader_error(error, text, file) from None
    finally:
        loader.dispose()


def _reader_error(error: yaml.reader.ReaderError, text: str, file: str) -> ManifestError:
    line, column = line_column(text, int(error.position))
    character = error.character if isinstance(error.character, int) else ord(str(error.character)[:1] or "?")
    return ManifestError(
        f"invalid YAML: character U+{character:04X} is not allowed in YAML text",
        file=file,
        line=line,
        column=column,
    )


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _TreeBuilder:
    """Walks PyYAML's node graph once, materializing aliases under a budget, into :class:`Node`."""

    def __init__(self, file: str, environ: Mapping[str, str], loader: yaml.SafeLoader) -> None:
        self.file = file
        self.environ = environ
        self.loader = loader
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.repeats = 0

    def build(self, node: yaml.Node, doc_path: str, depth: int) -> Node:
        position = _position(node.start_mark, self.file, doc_path)
        identity = id(node)
        if identity in self.active:
            raise ManifestError.at(position, "an alias refers to a value that contains it (recursive alias)")
        if identity in self.seen:
            # Seen before means reached again through an alias: this is what a
            # billion-laughs document
            # multiplies, so it is what we count.
            self.repeats += 1
            if self.repeats > MAX_ALIAS_NODES:
                raise ManifestError.at(
                    position,
                    "alias expansion too large (billion laughs?): "
                    f"more than {MAX_ALIAS_NODES} values "
                    "reached through aliases",
                )
        self.seen.add(identity)
        if depth > MAX_DEPTH and not isinstance(node, ScalarNode):
            raise ManifestError.at(position, f"nested deeper than {MAX_DEPTH} levels")
        self.active.add(identity)
        try:
            if isinstance(node, ScalarNode):
                return self._scalar(node, position)
            if isinstance(node, SequenceNode) and node.tag == _SEQ:
                children = tuple(
                    self.build(item, f"{doc_path}[{index}]", depth + 1) for index, item in enumerate(node.value)
                )
                return Node(children, position)
            if isinstance(node, MappingNode) and node.tag == _MAP:
                return self._mapping(node, position, depth)
            raise self._unknown_tag(node.tag, position)
        finally:
            self.active.discard(identity)

    def _unknown_tag(self, tag: str, position: SourcePosition) -> ManifestError:
        return ManifestError.at(
            position,
            f"unsafe or unknown YAML tag {_show_tag(tag)!r}; "
            "a manifest holds only mappings, lists, "
            "strings, numbers, booleans and null",
        )

    def _plain(self, node: ScalarNode, position: SourcePosition) -> Scalar:
        tag = node.tag
        try:
            if tag == _STR:
                return str(node.value)
            if tag == _INT:
                number = self.loader.construct_yaml_int(node)
                if number.bit_length() > 63:
                    raise ManifestError.at(position, "integer out of range (the limit is 2**63 - 1)")
                return number
            if tag == _FLOAT:
                return self.loader.construct_yaml_float(node)
            if tag == _BOOL:
                return self.loader.construct_yaml_bool(node)
            if tag == _NULL:
                return None
        except (ValueError, KeyError):
            # Explicitly tagged text that is not of its tag (``!!int abc``), or an integer too long
            # for Python to convert.
            raise ManifestError.at(position, f"{node.value[:40]!r} is not a valid {_show_tag(tag)} value") from None
        raise self._unknown_tag(tag, position)

    def _scalar(self, node: ScalarNode, position: SourcePosition) -> Node:
        value = self._plain(node, position)
        if isinstance(value, str) and has_reference(value):
            try:
                expanded, used = expand(value, self.environ)
            except InterpolationError as error:
                raise ManifestError.at(position, str(error)) from None
            return Node(expanded, position, from_environment=bool(used))
        return Node(value, position)

    def _key(self, node: yaml.Node, parent: SourcePosition) -> tuple[str, SourcePosition]:
        position = _position(node.start_mark, self.file, parent.doc_path)
        if not isinstance(node, ScalarNode):
            raise ManifestError.at(position, "mapping keys must be plain strings (got a collection)")
        value = self._plain(node, position)
        if not isinstance(value, str):
            raise ManifestError.at(position, f"mapping keys must be strings (got {describe_value(value)}); quote it")
        return value, position

    def _mapping(self, node: MappingNode, position: SourcePosition, depth: int) -> Node:
        children: dict[str, Node] = {}
        key_positions: dict[str, SourcePosition] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                merged.extend(self._merge_sources(value_node, position, depth))
                continue
            key, key_position = self._key(key_node, position)
            if key in children:
                first = key_positions[key]
                raise ManifestError.at(
                    key_position.child(key),
                    f"duplicate key {key!r} (first written at line {first.line}:{first.column})",
                )
            key_positions[key] = key_position
            children[key] = self.build(value_node, position.child(key).doc_path, depth + 1)
        # ``<<: *defaults`` fills in keys the mapping does not set itself; earlier sources win.
        for source in merged:
            assert isinstance(source.value, dict)
            for key, child in source.value.items():
                if key not in children:
                    children[key] = child
                    key_positions[key] = source.key_positions.get(key, child.position)
        return Node(children, position, key_positions)

    def _merge_sources(self, node: yaml.Node, position: SourcePosition, depth: int) -> list[Node]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        built: list[Node] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                raise ManifestError.at(
                    _position(source.start_mark, self.file, position.doc_path),
                    "'<<' merges mappings only (an alias of a mapping, or a list of them)",
                )
            built.append(self.build(source, position.doc_path, depth + 1))
        return built


def parse_document(text: str, file: str, environ: Mapping[str, str]) -> Node | None:
    """The document in ``text`` as a :class:`Node` tree, or ``None`` when it holds no document."""
    root = compose(text, file)
    if root is None:
        return None
    builder = _TreeBuilder(file, environ, _BoundedLoader(""))
    try:
        return builder.build(root, "", 1)
    except RecursionError:
        raise ManifestError(f"nested deeper than {MAX_DEPTH} levels", file=file) from None


def load_document(data: bytes | str, file: str, environ: Mapping[str, str]) -> Node | None:
    """Bytes (or text) of a manifest to its node tree: size bound, decoding, YAML, values."""
    if len(data) > MAX_BYTES:
        raise ManifestError(f"the manifest is larger than the {MAX_BYTES // (1024 * 1024)} MiB limit", file=file)
    text = decode(data, file) if isinstance(data, bytes) else data
    return parse_document(text, file, environ)
