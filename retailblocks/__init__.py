"""retailblocks: assemble a retailer's systems from independently packaged blocks.

The public surface: :func:`assemble` turns a manifest into a :class:`Stack`; :class:`Block` and
:data:`hookimpl` are what a block author needs; the value types live in :mod:`retailblocks.model`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from retailblocks.version import CORE_API_VERSION, __version__

if TYPE_CHECKING:
    from retailblocks.context import AuditFinding, Event, FlowContext, StackView
    from retailblocks.hookspecs import Capability, hookimpl
    from retailblocks.hookspecs.blocks import Block, NoConfig, secret_field
    from retailblocks.stack import Stack

# Imported on first use: importing the package (as ``blocks --help`` or ``blocks --version`` does) must not
# pull in SQLAlchemy and pluggy before anything asks for a stack.
_LAZY = {
    "Block": "retailblocks.hookspecs.blocks",
    "NoConfig": "retailblocks.hookspecs.blocks",
    "secret_field": "retailblocks.hookspecs.blocks",
    "Stack": "retailblocks.stack",
    "AuditFinding": "retailblocks.context",
    "Event": "retailblocks.context",
    "FlowContext": "retailblocks.context",
    "StackView": "retailblocks.context",
    "Capability": "retailblocks.hookspecs",
    "hookimpl": "retailblocks.hookspecs",
}


def assemble(path: Any, **options: Any) -> Stack:
    """Load the manifest at ``path``, assemble its blocks, prepare storage and return the running stack."""
    from retailblocks.stack import assemble as _assemble

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
    "StackView",
    "__version__",
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
