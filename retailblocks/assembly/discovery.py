"""Finding installed blocks through the ``retailblocks`` entry-point group.

A block that fails to import is kept as a :class:`BlockInfo` with its error, so a broken package is
reported by name and distribution where it matters (when a manifest uses it, or in ``blocks plugins``)
instead of crashing every command with a traceback.
"""

from __future__ import annotations

import os
import re
from importlib import metadata

import attrs

from retailblocks.hookspecs import Capability
from retailblocks.hookspecs.blocks import Block
from retailblocks.manifest import BlockEntry

ENTRY_POINT_GROUP = "retailblocks"
#: Comma-separated block names: when set, only these blocks are loaded (the way out when one misbehaves).
ONLY_ENV = "RETAILBLOCKS_BLOCKS"
#: When set to 1, every hook call is traced to standard error with its block and duration.
TRACE_ENV = "RETAILBLOCKS_TRACE"

_API = re.compile(r"^(\d+)\.(\d+)$")


@attrs.frozen
class BlockInfo:
    """An installed block: where it comes from, and its class or why it could not be loaded."""

    name: str
    distribution: str
    version: str
    target: str
    block_class: type[Block] | None = None
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.block_class is not None


@attrs.frozen
class AssembledBlock:
    """A manifest entry resolved to an installed block and its validated configuration."""

    entry: BlockEntry
    info: BlockInfo
    instance: Block


def allowed_names(environ: dict[str, str] | None = None) -> frozenset[str] | None:
    value = (environ if environ is not None else os.environ).get(ONLY_ENV, "").strip()
    if not value:
        return None
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def discover(environ: dict[str, str] | None = None) -> dict[str, BlockInfo]:
    """Every installed block by entry-point name, loaded unless ``RETAILBLOCKS_BLOCKS`` leaves it out."""
    only = allowed_names(environ)
    found: dict[str, BlockInfo] = {}
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if only is not None and entry_point.name not in only:
            continue
        distribution = entry_point.dist.name if entry_point.dist else "?"
        version = entry_point.dist.version if entry_point.dist else "?"
        if entry_point.name in found:
            previous = found[entry_point.name]
            found[entry_point.name] = attrs.evolve(
                previous,
                block_class=None,
                error=(
                    f"block name {entry_point.name!r} is claimed by two distributions: "
                    f"{previous.distribution} and {distribution}"
                ),
            )
            continue
        info = BlockInfo(entry_point.name, distribution, version, entry_point.value)
        try:
            loaded = entry_point.load()
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            found[entry_point.name] = attrs.evolve(
                info,
                error=(
                    f"error importing block {entry_point.name!r} from distribution {distribution} "
                    f"{version} ({entry_point.value}): {type(error).__name__}: {error}"
                ),
            )
            continue
        problem = validate_block_class(entry_point.name, loaded)
        if problem:
            found[entry_point.name] = attrs.evolve(info, error=f"{problem} (distribution {distribution} {version})")
        else:
            found[entry_point.name] = attrs.evolve(info, block_class=loaded)
    return found


def validate_block_class(name: str, candidate: object) -> str | None:
    """Why ``candidate`` is not a usable block class, or None."""
    if not (isinstance(candidate, type) and issubclass(candidate, Block)):
        return f"entry point {name!r} does not point at a retailblocks.Block subclass (got {candidate!r})"
    if candidate.name != name:
        return f"block class {candidate.__qualname__} is named {candidate.name!r} but its entry point is {name!r}"
    # A third party's class can declare anything; each attribute is checked for its type before use, so a
    # sloppy declaration (``core_api = 1.0``) is reported as that block's problem, not as a crash of every
    # command.
    core_api: object = candidate.core_api
    if not (isinstance(core_api, str) and _API.match(core_api)):
        return f"block {name!r} declares core_api {candidate.core_api!r}; expected 'major.minor' such as '1.0'"
    capabilities: object = candidate.capabilities
    if isinstance(capabilities, str) or not isinstance(capabilities, frozenset | set | tuple | list):
        return f"block {name!r} declares capabilities {capabilities!r}; expected a set such as {{'payment'}}"
    unknown = [c for c in capabilities if not isinstance(c, str) or c not in set(Capability)]
    if unknown:
        return f"block {name!r} declares unknown capabilities {unknown}; known: {', '.join(Capability)}"
    methods: object = candidate.payment_methods
    if (
        isinstance(methods, str)
        or not isinstance(methods, tuple | list)
        or not all(isinstance(m, str) and m for m in methods)
    ):
        return f"block {name!r} declares payment_methods {methods!r}; expected a tuple of method names"
    for attribute in ("owns_tables", "reads_core_tables"):
        tables: object = getattr(candidate, attribute, None)
        if tables is not None and (
            isinstance(tables, str)
            or not isinstance(tables, tuple | list | frozenset)
            or not all(isinstance(t, str) and t for t in tables)
        ):
            return f"block {name!r} declares {attribute} {tables!r}; expected a tuple of table names like ('orders',)"
    return None


def api_incompatibility(block_api: str, core_api: str) -> str | None:
    """Why a block written for ``block_api`` cannot run on ``core_api``, or None if it can."""
    block_major, block_minor = (int(p) for p in block_api.split("."))
    core_major, core_minor = (int(p) for p in core_api.split("."))
    if block_major != core_major:
        return f"it targets core API {block_api}, but this retailblocks provides core API {core_api}"
    if block_minor > core_minor:
        return (
            f"it targets core API {block_api}, newer than the core API {core_api} of this retailblocks; "
            "upgrade retailblocks"
        )
    return None
