"""Typed reads off a :class:`~retailblocks.manifest.nodes.Node`, each failing with a positioned
message.

Shared by the manifest's own schema and by block configuration, so both say "expected a string (got
the integer 5); quote it" and "unknown key 'reservaton_ttl'; did you mean 'reservation_ttl'?" the
same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from retailblocks.manifest.errors import ManifestError
from retailblocks.manifest.interpolate import Interpolated
from retailblocks.manifest.nodes import Node


def suggestion(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when ``word`` is close to one of ``choices``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def mismatch(node: Node, expected: str, *, secret: bool = False) -> ManifestError:
    """``expected <expected> (got <what came>)``, with a hint to quote scalars where text was
    wanted."""
    hint = ""
    if expected.startswith("a string") and node.is_scalar and node.value is not None:
        hint = "; quote it"
    return ManifestError.at(node, f"expected {expected} (got {node.describe(secret=secret)}){hint}")


def mapping(node: Node) -> dict[str, Node]:
    if not isinstance(node.value, dict):
        raise mismatch(node, "a mapping")
    return node.value


def sequence(node: Node, *, non_empty: bool = False) -> tuple[Node, ...]:
    if not isinstance(node.value, tuple):
        raise mismatch(node, "a list")
    if non_empty and not node.value:
        raise ManifestError.at(node, "expected a non-empty list (got an empty one)")
    return node.value


def string(node: Node, *, secret: bool = False, allow_empty: bool = False) -> str:
    if not isinstance(node.value, str):
        raise mismatch(node, "a string", secret=secret)
    if not allow_empty and not node.value.strip():
        raise ManifestError.at(node, "expected a non-empty string (got an empty one)")
    return Interpolated(node.value) if node.from_environment else node.value


def integer(node: Node, *, secret: bool = False) -> int:
    value = node.value
    # ``port: ${PORT}`` is text after interpolation; the environment has no other way to give
    # a number.
    if isinstance(value, str) and node.from_environment:
        try:
            return int(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise mismatch(node, "an integer", secret=secret)
    return value


def check_keys(node: Node, known: Collection[str], required: Collection[str] = ()) -> dict[str, Node]:
    """The mapping's entries, after refusing keys outside ``known`` and reporting missing
    ``required``."""
    entries = mapping(node)
    for key in entries:
        if key not in known:
            allowed = ", ".join(repr(name) for name in known) or "none"
            hint = suggestion(key, known) or f" (allowed here: {allowed})"
            raise ManifestError.at(node.key_position(key), f"unknown key {key!r}{hint}")
    for key in required:
        if key not in entries:
            raise ManifestError.at(node, f"missing required key {key!r}")
    return entries
