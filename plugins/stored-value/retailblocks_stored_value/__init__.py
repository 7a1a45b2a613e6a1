"""Gift cards and member wallets on a double-entry ledger: the ``stored-value`` payment block."""

# The names are loaded when first asked for, not when the package is imported: `blocks --help` imports this
# package's command module, which must not pull in the block and its database layer.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retailblocks_stored_value.block import StoredValue
    from retailblocks_stored_value.config import StoredValueConfig
    from retailblocks_stored_value.errors import KeyReused
    from retailblocks_stored_value.operations import StatementLine

_EXPORTS = {
    "KeyReused": "retailblocks_stored_value.errors",
    "StatementLine": "retailblocks_stored_value.operations",
    "StoredValue": "retailblocks_stored_value.block",
    "StoredValueConfig": "retailblocks_stored_value.config",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["KeyReused", "StatementLine", "StoredValue", "StoredValueConfig"]
