"""Storage: engines, the core's tables, per-owner migrations, the unit of work, and what blocks build on.

Public API for blocks (see docs/block-storage.md): :class:`Prepared` and :class:`PreparedQuery` (statements built
once, run on the step's connection), :class:`InsertIfAbsent` / :func:`insert_if_absent`,
:class:`KeyClaimer`, :func:`read_only_connection`, :func:`single_statement`, :func:`together`, :func:`request_hash`,
:class:`Migration` and :func:`create_tables`. For test kits: :func:`enforcing_permissions` turns the table
permission guard on (see :mod:`retailblocks.storage.permissions`).
"""

from retailblocks.storage.blocks_api import (
    ClaimOutcome,
    InsertIfAbsent,
    KeyClaim,
    KeyClaimer,
    insert_if_absent,
    read_only_connection,
    request_hash,
    single_statement,
)
from retailblocks.storage.engine import check_reachable, create_engine, describe_url, is_sqlite
from retailblocks.storage.erasure import pseudonymise
from retailblocks.storage.json_text import JsonText, json_encoder
from retailblocks.storage.migrations import Migration, create_tables, migrate
from retailblocks.storage.permissions import enforcing_permissions, permissions_enforced
from retailblocks.storage.prepared import Prepared, PreparedQuery, together
from retailblocks.storage.unit_of_work import UnitOfWork

__all__ = [
    "ClaimOutcome",
    "InsertIfAbsent",
    "JsonText",
    "KeyClaim",
    "KeyClaimer",
    "Migration",
    "Prepared",
    "PreparedQuery",
    "UnitOfWork",
    "check_reachable",
    "create_engine",
    "create_tables",
    "describe_url",
    "enforcing_permissions",
    "insert_if_absent",
    "is_sqlite",
    "json_encoder",
    "migrate",
    "permissions_enforced",
    "pseudonymise",
    "read_only_connection",
    "request_hash",
    "single_statement",
    "together",
]
