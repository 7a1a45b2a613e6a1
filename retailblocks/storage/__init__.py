"""Storage: engines, the core's tables, per-owner migrations and the unit of work."""

from retailblocks.storage.engine import check_reachable, create_engine, describe_url, is_sqlite
from retailblocks.storage.migrations import Migration, create_tables, migrate
from retailblocks.storage.unit_of_work import UnitOfWork

__all__ = [
    "Migration",
    "UnitOfWork",
    "check_reachable",
    "create_engine",
    "create_tables",
    "describe_url",
    "is_sqlite",
    "migrate",
]
