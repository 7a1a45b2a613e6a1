"""Where a reader of the outbox stands, so that no committed event is ever passed over.

An outbox id is taken when the event is inserted, not when its transaction commits. On PostgreSQL two
transactions commit in either order: the one holding id 10 may commit after the one holding id 11, and a
reader that had already moved its cursor past 11 would never hand event 10 to anyone. (SQLite has one
writer at a time, so there ids are committed in order.)

Each outbox row therefore also records the id of the transaction that wrote it (``tx``, filled in by the
database on PostgreSQL, 0 on SQLite), and readers walk the outbox in ``(tx, id)`` order, taking only rows
whose transaction is older than every transaction still running (``pg_snapshot_xmin``). Every such
transaction has finished, so the set of rows before that horizon can no longer grow, and any row committed
later belongs to a newer transaction, so it sorts after every position already read. A transaction that runs
for long holds delivery back for as long as it runs; it never makes a reader skip.

A subscriber's cursor in ``event_cursors`` is such a position: ``(last_tx, last_event_id)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.storage import insert_if_absent
from retailblocks.storage.tables import event_cursors, outbox

#: The oldest transaction still running on the server: every transaction before it has finished.
_HORIZON: sa.ColumnElement[int] = sa.literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


@attrs.frozen(order=True)
class Position:
    """A place in the outbox's delivery order: after the event ``event_id`` written by transaction ``tx``."""

    tx: int = 0
    event_id: int = 0

    @classmethod
    def of(cls, row: Mapping[str, Any] | sa.RowMapping) -> Position:
        """The position of an outbox row (read with its ``tx`` and ``id``)."""
        return cls(int(row["tx"]), int(row["id"]))


START = Position()


def after(position: Position) -> sa.ColumnElement[bool]:
    """Outbox rows that come after ``position`` in delivery order."""
    return sa.tuple_(outbox.c.tx, outbox.c.id) > sa.tuple_(sa.literal(position.tx), sa.literal(position.event_id))


def settled(dialect: str) -> sa.ColumnElement[bool]:
    """Outbox rows whose place in delivery order is final: no transaction still running can sort before them."""
    if dialect == "postgresql":
        return outbox.c.tx < _HORIZON
    return sa.true()


def unread(dialect: str, position: Position, *conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The settled outbox rows after ``position``, in delivery order (add ``.limit``)."""
    return sa.select(outbox).where(after(position), settled(dialect), *conditions).order_by(outbox.c.tx, outbox.c.id)


def cursor(connection: sa.Connection, subscriber: str, *, for_update: bool = False) -> Position:
    """A subscriber's position (the start when it has none yet). With ``for_update`` the cursor row is
    created if missing and locked, so readers of one subscriber take turns."""
    if for_update:
        insert_if_absent(connection, event_cursors, {"subscriber": subscriber, "last_event_id": 0, "last_tx": 0})
    query = sa.select(event_cursors.c.last_tx, event_cursors.c.last_event_id).where(
        event_cursors.c.subscriber == subscriber
    )
    row = connection.execute(query.with_for_update() if for_update else query).first()
    return START if row is None else Position(int(row.last_tx), int(row.last_event_id))


def move_cursor(connection: sa.Connection, subscriber: str, position: Position) -> None:
    """Move a subscriber's cursor forward to ``position`` (never back: a slower reader cannot undo a faster)."""
    insert_if_absent(connection, event_cursors, {"subscriber": subscriber, "last_event_id": 0, "last_tx": 0})
    connection.execute(
        event_cursors.update()
        .where(
            event_cursors.c.subscriber == subscriber,
            sa.tuple_(event_cursors.c.last_tx, event_cursors.c.last_event_id)
            < sa.tuple_(sa.literal(position.tx), sa.literal(position.event_id)),
        )
        .values(last_tx=position.tx, last_event_id=position.event_id)
    )


def newest(connection: sa.Connection) -> Position:
    """The position of the last settled event: a reader placed here receives only what comes after."""
    row = (
        connection.execute(
            sa.select(outbox.c.tx, outbox.c.id)
            .where(settled(connection.dialect.name))
            .order_by(outbox.c.tx.desc(), outbox.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return START if row is None else Position.of(row)


def start_at(connection: sa.Connection, subscriber: str, position: Position) -> bool:
    """Give a subscriber that has no cursor yet this one; False when it already had one (kept as it is)."""
    return insert_if_absent(
        connection,
        event_cursors,
        {"subscriber": subscriber, "last_event_id": position.event_id, "last_tx": position.tx},
    )


def behind(connection: sa.Connection, subscriber: str, *conditions: sa.ColumnElement[bool]) -> int:
    """How many committed events (meeting ``conditions``) come after the subscriber's cursor."""
    position = cursor(connection, subscriber)
    return int(
        connection.execute(sa.select(sa.func.count()).select_from(outbox).where(after(position), *conditions)).scalar()
        or 0
    )
