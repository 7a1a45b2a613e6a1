"""Gift cards and member wallets on a double-entry ledger: the ``stored-value`` payment block."""

from retailblocks_stored_value.block import StoredValue
from retailblocks_stored_value.config import StoredValueConfig
from retailblocks_stored_value.errors import KeyReused
from retailblocks_stored_value.operations import StatementLine

__all__ = ["KeyReused", "StatementLine", "StoredValue", "StoredValueConfig"]
