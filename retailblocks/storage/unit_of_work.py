"""A unit of work: one transaction shared by every block taking part in one step of a flow."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from retailblocks.storage.tables import outbox


class UnitOfWork:
    """Opens its connection and transaction on first use, commits or rolls back as a whole.

    Opening lazily matters: a step whose first action is an outside call (a payment gateway) holds no
    database lock while it waits for the answer.
    """

    def __init__(self, engine: sa.Engine, *, read_only: bool = False):
        self._engine = engine
        self._read_only = read_only
        self._connection: sa.Connection | None = None
        self._transaction: sa.RootTransaction | None = None

    @property
    def engine(self) -> sa.Engine:
        """The engine, for blocks that keep state apart from the step (a sandbox standing in for a remote
        service). Reading it does not open the transaction."""
        return self._engine

    @property
    def connection(self) -> sa.Connection:
        if self._connection is None:
            connection = self._engine.connect()
            connection.info["read_only"] = self._read_only
            self._connection = connection
            self._transaction = connection.begin()
        return self._connection

    @property
    def started(self) -> bool:
        return self._connection is not None

    def record_event(
        self,
        *,
        event_type: str,
        payload: dict[str, Any],
        source: str,
        channel: str | None,
        order_id: str | None,
        member_id: str | None,
        occurred_at: datetime,
    ) -> None:
        self.connection.execute(
            outbox.insert().values(
                type=event_type,
                payload=payload,
                source=source,
                channel=channel,
                order_id=order_id,
                member_id=member_id,
                occurred_at=occurred_at,
            )
        )

    def commit(self) -> None:
        if self._transaction is not None:
            self._transaction.commit()
        self._close()

    def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self._transaction = None

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
