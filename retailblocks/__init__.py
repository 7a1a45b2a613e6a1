"""retailblocks: assemble a retailer's systems from independently packaged blocks.

The public surface: :func:`assemble` turns a manifest into a :class:`Stack`; :class:`Block` and
:data:`hookimpl` are what a block author needs; the value types live in :mod:`retailblocks.model`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: The version of the block contract (hook specifications and models) this core implements. Blocks
#: declare the version they target; the same major with a minor no newer than this one is compatible.
CORE_API_VERSION = "1.1"

if TYPE_CHECKING:
    from retailblocks.assembly.blocks import Block, NoConfig, secret_field
    from retailblocks.assembly.stack import Stack
    from retailblocks.context import AuditFinding, Event, FlowContext
    from retailblocks.hookspecs import Capability, hookimpl

# Imported on first use: importing the package (as ``blocks --help`` or ``blocks --version`` does) must not
# pull in SQLAlchemy and pluggy before anything asks for a stack.
_LAZY = {
    "Block": "retailblocks.assembly.blocks",
    "NoConfig": "retailblocks.assembly.blocks",
    "secret_field": "retailblocks.assembly.blocks",
    "Stack": "retailblocks.assembly.stack",
    "AuditFinding": "retailblocks.context",
    "Event": "retailblocks.context",
    "FlowContext": "retailblocks.context",
    "Capability": "retailblocks.hookspecs",
    "hookimpl": "retailblocks.hookspecs",
}


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
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(name)
