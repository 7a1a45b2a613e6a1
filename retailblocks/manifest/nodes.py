"""Position-carrying values: the manifest as plain data, each piece remembering where it was
written.

The YAML reader turns a file into a tree of :class:`Node`; validation reads values off the nodes
and, when a value is wrong, raises :class:`~retailblocks.manifest.errors.ManifestError` at the
node's position. Block configuration stays a node until assembly knows the block's config class.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from retailblocks.manifest.errors import ManifestError, SourcePosition
from retailblocks.manifest.interpolate import InterpolationError, expand, has_reference

Scalar: TypeAlias = str | int | float | bool | None

_MAX_SHOWN = 60


@attrs.frozen(eq=False, repr=False)
class Node:
    """One value of the document.

    ``value`` is a scalar, a tuple of nodes (a YAML sequence) or a dict of string keys to nodes (a
    YAML mapping, in document order). ``key_positions`` says where each key of a mapping was
    written. ``from_environment`` is true for a string built by ``${VAR}`` interpolation, so
    messages can avoid echoing it and typed fields can parse it (``port: ${PORT}``).
    """

    value: Scalar | tuple[Node, ...] | dict[str, Node]
    position: SourcePosition
    key_positions: Mapping[str, SourcePosition] = attrs.field(factory=dict)
    from_environment: bool = False

    def __repr__(self) -> str:
        # Values from the environment are often secrets, and reprs end up in logs.
        shown = "<from the environment>" if self.from_environment else repr(self.value)
        return f"Node({shown} at {self.position})"

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, tuple)

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, dict | tuple)

    @property
    def doc_path(self) -> str:
        return self.position.doc_path

    def key_position(self, key: str) -> SourcePosition:
        """Where ``key`` of this mapping was written, with the key's document path."""
        path = self.position.child(key).doc_path
        found = self.key_positions.get(key)
        return found.with_path(path) if found is not None else self.position.with_path(path)

    def to_python(self) -> Any:
        """The plain Python value: dicts, lists and scalars, positions dropped."""
        if isinstance(self.value, dict):
            return {key: child.to_python() for key, child in self.value.items()}
        if isinstance(self.value, tuple):
            return [child.to_python() for child in self.value]
        return self.value

    def describe(self, *, secret: bool = False) -> str:
        """What this value is, for "expected X (got Y)" messages; a secret's value is never
        shown."""
        return describe_value(self.value, secret=secret)

    @classmethod
    def from_python(cls, value: Any, position: SourcePosition, *, environ: Mapping[str, str] | None = None) -> Node:
        """A node tree for a plain value built in code, every node at ``position`` with its own
        path.

        With ``environ``, strings are interpolated as a manifest's are.
        """
        if isinstance(value, Node):
            return value
        if isinstance(value, Mapping):
            return cls(
                {
                    str(key): cls.from_python(item, position.child(str(key)), environ=environ)
                    for key, item in value.items()
                },
                position,
            )
        if isinstance(value, list | tuple):
            return cls(
                tuple(cls.from_python(item, position.child(i), environ=environ) for i, item in enumerate(value)),
                position,
            )
        if isinstance(value, str) and environ is not None and has_reference(value):
            try:
                expanded, used = expand(value, environ)
            except InterpolationError as error:
                raise ManifestError.at(position, str(error)) from None
            return cls(expanded, position, from_environment=bool(used))
        if value is None or isinstance(value, str | int | float | bool):
            return cls(value, position)
        raise TypeError(f"cannot represent {type(value).__name__} as a manifest value")


def position_in(node: Node, field: str, *, quoting: str = "") -> SourcePosition | None:
    """Where the value at ``field`` under ``node`` (``channels.wbe``, ``rates[0].price``) was written, if
    it was.

    A mapping key is pointed at as a key, since with a free-form mapping (SKU -> units) it is the key that
    names something; but when the value there is text that ``quoting`` quotes, the text is the culprit
    and is pointed at instead (``funder: metro-mal``).
    """
    where: SourcePosition | None = None
    for part in re.findall(r"[^.\[\]]+", field):
        if isinstance(node.value, dict) and part in node.value:
            where, node = node.key_position(part), node.value[part]
        elif isinstance(node.value, tuple) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            where = node.position
        else:
            return None
    if where is not None and isinstance(node.value, str) and quoting and repr(node.value) in quoting:
        return node.position
    return where


def shorten(text: str) -> str:
    """``repr`` of a string, cut short so one bad value cannot make a message unreadable."""
    if len(text) > _MAX_SHOWN:
        return repr(text[:_MAX_SHOWN]) + "…"
    return repr(text)


def describe_value(value: object, *, secret: bool = False) -> str:
    """``"the string 'x'"``, ``"the integer 5"``, ``"a mapping"``, ``"nothing (null)"``…"""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, tuple | list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if secret:
        return "a value (secret value hidden)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        # Printing a huge integer in decimal is refused by Python (and useless to a reader).
        return f"the integer {value}" if value.bit_length() < 128 else "a very large integer"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return shorten(value)
    return type(value).__name__
