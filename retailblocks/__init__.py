"""retailblocks: assemble a retailer's systems from independently packaged blocks.

The public surface: :func:`assemble` turns a manifest into a :class:`Stack`; :class:`Block` and
:data:`hookimpl` are what a block author needs; the value types live in :mod:`retailblocks.model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retailblocks.assembly.blocks import Block, NoConfig, secret_field
from retailblocks.context import AuditFinding, Event, FlowContext
from retailblocks.hookspecs import Capability, hookimpl

__version__ = "0.1.0"

#: The version of the block contract (hook specifications and models) this core implements. Blocks
#: declare the version they target; the same major with a minor no newer than this one is compatible.
CORE_API_VERSION = "1.1"

if TYPE_CHECKING:
    from retailblocks.assembly.stack import Stack


def assemble(path: Any, **options: Any) -> Stack:
    """Load the manifest at ``path``, assemble its blocks, prepare storage and return the running stack."""
    from retailblocks.assembly.stack import assemble as _assemble

    return _assemble(path, **options)


__all__ = [
    "CORE_API_VERSION",
    "AuditFinding",
    "Block",
    "Capability",
    "Event",
    "FlowContext",
    "NoConfig",
    "Stack",
    "assemble",
    "hookimpl",
    "secret_field",
]


def __getattr__(name: str) -> Any:
    if name == "Stack":
        from retailblocks.assembly.stack import Stack

        return Stack
    raise AttributeError(name)
