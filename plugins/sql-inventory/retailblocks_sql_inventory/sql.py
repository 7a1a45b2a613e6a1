"""Idempotency claims of keyed operations, on SQLite and PostgreSQL.

On PostgreSQL an IntegrityError aborts the whole transaction, so "insert and catch the duplicate" is
not an option inside a flow's step; ``ON CONFLICT DO NOTHING`` (both dialects spell it so) reports
the duplicate through the row count instead.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from retailblocks.errors import IdempotencyConflict
from retailblocks.model.limits import check_text
from retailblocks.storage.json_text import json_encoder
from retailblocks.storage.prepared import Prepared
from retailblocks_sql_inventory.tables import operations

MAX_KEY_LENGTH = 200


# PostgreSQL's INSERT construct serves SQLite too: both spell ``ON CONFLICT DO NOTHING`` alike. Run through
# Prepared on the driver's cursor, the row count of a skipped insert is 0 on both databases (through
# SQLAlchemy, psycopg reports -1), so a claim is one statement with no RETURNING.
_CLAIM = Prepared(
    postgresql.insert(operations)
    .values(
        key=sa.bindparam("key"),
        kind=sa.bindparam("kind"),
        request_hash=sa.bindparam("request_hash"),
        at=sa.bindparam("at"),
    )
    .on_conflict_do_nothing()
)
_CLAIMED = sa.select(operations.c.kind, operations.c.request_hash, operations.c.result).where(
    operations.c.key == sa.bindparam("key")
)
_SETTLE = Prepared(
    operations.update().where(operations.c.key == sa.bindparam("key")).values(result=sa.bindparam("result"))
)


_CANONICAL = json_encoder(default=str, sort_keys=True, separators=(",", ":"))


def request_hash(request: Any) -> str:
    """A stable digest of a JSON-able request, to tell a replay from a reused key."""
    text = _CANONICAL(request)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_key(key: str) -> str:
    # 200, not limits.MAX_KEY_LENGTH: the block's own keys carry an order id and a flow id.
    return check_text(key, "an idempotency key", max_length=MAX_KEY_LENGTH, allow_empty=False)


class Claim:
    """The outcome of claiming an idempotency key: ``fresh`` on the first call, else its result."""

    def __init__(self, key: str, fresh: bool, result: int | None):
        self.key = key
        self.fresh = fresh
        self.result = result


def claim(connection: sa.Connection, key: str, kind: str, request: Any, now: datetime) -> Claim:
    """Claim ``key`` for one operation of ``kind``; a replay gets the stored result back.

    The claim is the first write of a keyed operation, so two concurrent calls with one key
    serialize on it: the second waits for the first to commit and then sees a replay. The same key
    with a different request is a caller's mistake and raises :class:`IdempotencyConflict`.
    """
    digest = request_hash(request)
    if _CLAIM.execute(connection, key=key, kind=kind, request_hash=digest, at=now) == 1:
        return Claim(key, True, None)
    row = connection.execute(_CLAIMED, {"key": key}).one()
    if row.kind != kind or row.request_hash != digest:
        raise IdempotencyConflict(
            f"the key {key.split(':', 1)[-1]!r} was already used for a different {row.kind} "
            "request; use a new key for a new operation"
        )
    return Claim(key, False, row.result)


def settle(connection: sa.Connection, key: str, result: int) -> None:
    """Store the result of a claimed operation for its replays."""
    _SETTLE.execute(connection, key=key, result=result)
