"""Names a package exports but loads only when first asked for.

A block's package re-exports its block class and configuration, which import SQLAlchemy and the block's
tables; its command module must stay light for ``blocks --help`` (see ``retailblocks.cli.BlocksGroup``).
A package that sets ``__getattr__ = lazy_exports(__name__, {...})`` keeps both: ``from pkg import Block``
and the ``pkg:Block`` entry point work, and importing ``pkg.cli`` loads none of it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module) on first use."""

    def load(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return load


__all__ = ["lazy_exports"]
