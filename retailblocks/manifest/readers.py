"""Typed reads off a :class:`~retailblocks.manifest.nodes.Node`, each failing with a positioned
message.

Shared by the manifest's own schema and by block configuration, so both say "expected a string (got
the integer 5); quote it" and "unknown key 'reservaton_ttl'; did you mean 'reservation_ttl'?" the
same way.
"""

from __future__ import annotations

from collections.abc import Collection

from retailblocks.errors import InvalidValue
from retailblocks.errors import suggestion as suggestion  # the manifest modules call readers.suggestion
from retailblocks.manifest.errors import ManifestError
from retailblocks.manifest.interpolate import Interpolated
from retailblocks.manifest.nodes import Node
from retailblocks.model import Money
from retailblocks.model._validators import SLUG
from retailblocks.model.limits import check_amount


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


def slug(node: Node) -> str:
    text = string(node)
    if not SLUG.fullmatch(text):
        raise ManifestError.at(
            node,
            "expected a slug of lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit "
            f"(got {node.describe()})",
        )
    return text


def choice(node: Node, choices: list[str]) -> str:
    text = string(node)
    if text not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        hint = suggestion(text, choices)
        raise ManifestError.at(node, f"expected one of {listed} (got {node.describe()}){hint}")
    return text


def unique(node: Node, value: str, seen: dict[str, Node], what: str) -> None:
    first = seen.get(value)
    if first is not None:
        where = f"line {first.position.line}:{first.position.column}"
        raise ManifestError.at(node, f"duplicate {what} {value!r} (first declared at {where})")
    seen[value] = node


def money(node: Node, currency: str) -> Money:
    """Money in the merchant's currency, at least zero (prices and spend thresholds in a manifest are
    never negative) and at most MAX_AMOUNT, so that sums of it stay exact in every database."""
    text = string(node)
    try:
        money = Money.parse(text)
        check_amount(money.amount, "an amount")
    except InvalidValue as error:
        raise ManifestError.at(node, str(error)) from None
    if money.currency != currency:
        raise ManifestError.at(node, f"price is in {money.currency} but the merchant's currency is {currency}")
    if money.amount < 0:
        raise ManifestError.at(node, f"an amount here cannot be negative (got {money.format()})")
    return money


def channel_ref(node: Node, channel_ids: list[str]) -> str:
    channel_id = string(node)
    if channel_id not in channel_ids:
        raise ManifestError.at(
            node,
            f"unknown channel {channel_id!r}{suggestion(channel_id, channel_ids)} "
            f"(declared channels: {', '.join(channel_ids)})",
        )
    return channel_id
