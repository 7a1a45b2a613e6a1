"""Idempotency claims of keyed operations, on SQLite and PostgreSQL.

Claims go through the core's :class:`~retailblocks.storage.KeyClaimer` (``ON CONFLICT DO NOTHING``: on
PostgreSQL a failed insert would abort the step's whole transaction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from retailblocks.errors import IdempotencyConflict
from retailblocks.model.limits import check_text
from retailblocks.storage import ClaimOutcome, KeyClaimer, Prepared
from retailblocks.storage import request_hash as request_hash  # the block's modules read it from here
from retailblocks_sql_inventory.tables import operations

MAX_KEY_LENGTH = 200


_CLAIMS = KeyClaimer(operations, ("key", "kind", "request_hash", "at"), key=("key",), same=("kind", "request_hash"))
_SETTLE = Prepared(
    operations.update().where(operations.c.key == sa.bindparam("key")).values(result=sa.bindparam("result"))
)


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
    claimed = _CLAIMS(connection, {"key": key, "kind": kind, "request_hash": request_hash(request), "at": now})
    if claimed.outcome is ClaimOutcome.NEW:
        return Claim(key, True, None)
    row = claimed.existing
    assert row is not None
    if claimed.outcome is ClaimOutcome.CONFLICT:
        raise IdempotencyConflict(
            f"the key {key.split(':', 1)[-1]!r} was already used for a different {row['kind']} "
            "request; use a new key for a new operation"
        )
    return Claim(key, False, row["result"])


def settle(connection: sa.Connection, key: str, result: int) -> None:
    """Store the result of a claimed operation for its replays."""
    _SETTLE.execute(connection, key=key, result=result)
