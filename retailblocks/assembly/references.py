"""References from one part of a manifest to another, checked when the stack is assembled.

A name written in one place (a pickup location, a promotion's SKU, a campaign's promotion) and declared
in another must be declared somewhere, or the stack would assemble and the first order that needs it
would fail with nothing pointing back at the manifest. Assembly gathers every declared name by kind
(:func:`declared_names`), checks the manifest's own references to names that blocks declare
(:func:`check_manifest`), and hands the names to each block's ``stack_check`` for the references in its
configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial

from retailblocks.hookspecs.lifecycle import NAME_KINDS, unknown
from retailblocks.manifest import Manifest, ManifestError
from retailblocks.manifest.errors import ManifestProblems
from retailblocks.manifest.nodes import Node


def declared_names(manifest: Manifest, from_blocks: Iterable[Mapping[str, Iterable[str]]]) -> dict[str, frozenset[str]]:
    """Every name the manifest declares, by kind, with the names blocks declare through ``stack_names``."""
    names: dict[str, set[str]] = {kind: set() for kind in NAME_KINDS}
    names["channel"].update(channel.id for channel in manifest.channels)
    names["channel_type"].update(channel.type.value for channel in manifest.channels)
    names["sku"].update(product.sku for product in manifest.catalog)
    names["category"].update(product.category for product in manifest.catalog)
    names["partner"].update(partner.id for partner in manifest.partners)
    names["segment"].update(segment.id for segment in manifest.segments)
    names["location"].update(channel.location for channel in manifest.channels if channel.location)
    for declared in from_blocks:
        for kind, values in (declared or {}).items():
            names.setdefault(kind, set()).update(values)
    return {kind: frozenset(values) for kind, values in names.items()}


def check_manifest(manifest: Manifest, names: Mapping[str, frozenset[str]]) -> None:
    """The manifest's references to names only blocks declare: segments' tiers (flat or in conditions) and
    campaigns' promotions.

    Every unknown name is reported, all at once (see ManifestProblems)."""
    problems = ManifestProblems()
    for segment in _items(manifest.source, "segments"):
        for tier in (*_items(segment, "tiers"), *_condition_tiers(segment)):
            problems.attempt(partial(_known, tier, "tier", names))
    for campaign in _items(manifest.source, "campaigns"):
        promotion = _child(campaign, "promotion")
        if promotion is not None:
            problems.attempt(partial(_known, promotion, "promotion", names))
    problems.raise_any()


def _condition_tiers(node: Node) -> Iterator[Node]:
    """The tiers the segment language's ``tier:`` conditions name under ``node``, however deeply nested."""
    if not isinstance(node.value, dict):
        return
    for key, child in node.value.items():
        if key == "tier":
            yield from child.value if isinstance(child.value, tuple) else (child,)
        elif key in ("all", "any") and isinstance(child.value, tuple):
            for item in child.value:
                yield from _condition_tiers(item)
        elif key == "not":
            yield from _condition_tiers(child)


def _known(node: Node, kind: str, names: Mapping[str, frozenset[str]]) -> None:
    value = node.value
    known = names.get(kind, frozenset())
    if isinstance(value, str) and value not in known:
        raise ManifestError.at(node, unknown("", kind, value, known).removeprefix(": "))


def _child(node: Node | None, key: str) -> Node | None:
    if node is None or not isinstance(node.value, dict):
        return None
    return node.value.get(key)


def _items(node: Node | None, key: str) -> tuple[Node, ...]:
    child = _child(node, key)
    return child.value if child is not None and isinstance(child.value, tuple) else ()
