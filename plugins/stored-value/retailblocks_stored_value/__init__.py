"""Gift cards and member wallets on a double-entry ledger: the ``stored-value`` payment block."""

# The names are loaded when first asked for, not when the package is imported: `blocks --help` imports this
# package's command module, which must not pull in the block and its database layer.
from __future__ import annotations

from typing import TYPE_CHECKING

from retailblocks.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = ["KeyReused", "StatementLine", "StoredValue", "StoredValueConfig"]
