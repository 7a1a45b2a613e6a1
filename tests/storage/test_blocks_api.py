"""The storage helpers blocks share: insert-if-absent, key claims, reading apart, request hashes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from retailblocks.storage import (
    ClaimOutcome,
    InsertIfAbsent,
    KeyClaimer,
    UnitOfWork,
    create_engine,
    insert_if_absent,
    read_only_connection,
    request_hash,
)

metadata = sa.MetaData()
claims = sa.Table(
    "helper_claims",
    metadata,
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("result", sa.Integer),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
MOMENT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_CLAIMS = KeyClaimer(claims, ("key", "kind", "request_hash", "at"), key=("key",), same=("kind", "request_hash"))


def test_insert_if_absent_inserts_once_and_keeps_the_transaction_usable(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    insert = InsertIfAbsent(claims, ("key", "kind", "request_hash", "at"))
    row: dict[str, Any] = {"key": "k1", "kind": "adjust", "request_hash": "h", "at": MOMENT}
    with UnitOfWork(engine) as uow:
        assert insert(uow.connection, row) is True
        assert insert(uow.connection, {**row, "kind": "other"}) is False
        # On PostgreSQL a failed INSERT would have aborted the transaction: it goes on.
        assert insert_if_absent(uow.connection, claims, {**row, "key": "k2"}) is True
        assert insert_if_absent(uow.connection, claims, {**row, "key": "k2"}) is False
    with engine.connect() as connection:
        kinds = dict(connection.execute(sa.select(claims.c.key, claims.c.kind)).all())
    assert kinds == {"k1": "adjust", "k2": "adjust"}
    engine.dispose()


def test_a_key_claim_tells_new_from_replay_from_conflict(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    first = {"key": "c1", "kind": "adjust", "request_hash": request_hash({"sku": "A", "qty": 2}), "at": MOMENT}
    with UnitOfWork(engine) as uow:
        claimed = _CLAIMS(uow.connection, first)
        assert claimed.outcome is ClaimOutcome.NEW and claimed.new and claimed.existing is None
        uow.connection.execute(claims.update().where(claims.c.key == "c1").values(result=7))
    with UnitOfWork(engine) as uow:
        replay = _CLAIMS(uow.connection, {**first, "request_hash": request_hash({"qty": 2, "sku": "A"})})
        assert replay.outcome is ClaimOutcome.REPLAY
        assert replay.existing is not None and replay.existing["result"] == 7
        other = _CLAIMS(uow.connection, {**first, "request_hash": request_hash({"sku": "A", "qty": 3})})
        assert other.outcome is ClaimOutcome.CONFLICT
        assert _CLAIMS(uow.connection, {**first, "kind": "move"}).outcome is ClaimOutcome.CONFLICT
    engine.dispose()


def test_request_hashes_are_the_digest_of_canonical_json() -> None:
    request = {"b": [1, 2], "a": {"z": None, "y": "é"}, "at": MOMENT}
    text = json.dumps(request, default=str, sort_keys=True, separators=(",", ":"))
    assert request_hash(request) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert request_hash({"a": 1, "b": 2}) == request_hash({"b": 2, "a": 1})


def test_a_read_only_connection_reads_beside_a_writer_and_leaves_nothing_open(tmp_path: Any) -> None:
    path = tmp_path / "shop.db"
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    with UnitOfWork(engine) as uow:
        uow.connection.execute(claims.insert().values(key="r", kind="k", request_hash="h", at=MOMENT))
        # The step holds the write lock; a reader apart does not wait for it (WAL) and sees the last commit.
        with read_only_connection(uow) as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(claims)).scalar() == 0
        with read_only_connection(engine) as connection:
            assert connection.execute(sa.select(claims.c.key)).all() == []
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with read_only_connection(engine) as connection:
            connection.execute(sa.select(claims.c.key)).all()
            other.execute("BEGIN IMMEDIATE")  # the reader began deferred: it holds no write lock
            other.execute("ROLLBACK")
        with engine.begin() as connection:  # the reader's connection again: a write transaction, IMMEDIATE
            connection.execute(sa.select(1))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        engine.dispose()
