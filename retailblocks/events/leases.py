"""Leases on outbox subscribers (table ``event_leases``): one process at a time delivers a subscriber's events.

A lease is a row per subscriber naming its holder and until when it holds. It is taken and renewed inside
the transaction that delivers, and the row stays locked until that transaction ends, so:

- a process that finds the row locked (another process is delivering right now) or held by someone else
  until later skips the subscriber at once (``FOR UPDATE SKIP LOCKED``): it never waits on the lock, so
  several dispatchers never queue behind one another nor fail on the server's ``lock_timeout``;
- no one can take a lease over while its holder's transaction is open, whatever the clocks say: two
  deliveries to one subscriber never overlap, even when a batch runs longer than the lease;
- a holder that died (or stopped renewing) leaves a row that is unlocked and out of date: the next process
  takes it over once ``lease_until`` has passed, and goes on from the subscriber's committed cursor.

On SQLite a write transaction holds the database's write lock, so the same statements serialize there by
themselves (``FOR UPDATE`` is not rendered).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.storage import insert_if_absent
from retailblocks.storage.engine import reading
from retailblocks.storage.tables import event_leases

_HELD = sa.select(event_leases.c.holder, event_leases.c.lease_until)


def ensure(engine: sa.Engine, subscribers: Sequence[str], now: datetime) -> None:
    """Give every subscriber a lease row (free), each in a short transaction committed at once.

    Done apart from delivering: a row inserted by a delivering transaction would make another process's
    insert of the same row wait for that whole transaction (past ``lock_timeout``), where taking a row
    that exists never waits."""
    with reading(engine) as connection:
        known = set(
            connection.execute(
                sa.select(event_leases.c.subscriber).where(event_leases.c.subscriber.in_(subscribers))
            ).scalars()
        )
    missing = [subscriber for subscriber in subscribers if subscriber not in known]
    if missing:
        with engine.begin() as connection:
            for subscriber in missing:
                insert_if_absent(
                    connection,
                    event_leases,
                    {"subscriber": subscriber, "holder": "", "lease_until": now - timedelta(seconds=1)},
                )


def hold(connection: sa.Connection, subscriber: str, holder: str, now: datetime, lease: timedelta) -> bool:
    """Take or renew ``subscriber``'s lease for ``holder`` until ``now + lease``, in the caller's transaction
    (the subscriber's row made by :func:`ensure`).

    False, without waiting, when another holder's lease has not run out or another transaction has the row
    locked. When True, the caller's transaction keeps the row locked until it ends (on PostgreSQL)."""
    row = connection.execute(
        _HELD.where(event_leases.c.subscriber == subscriber).with_for_update(skip_locked=True)
    ).first()
    if row is None:  # another transaction has it locked (or it was never made: nothing to take)
        return False
    if row.holder != holder and as_utc(row.lease_until) >= now:
        return False
    connection.execute(
        event_leases.update()
        .where(event_leases.c.subscriber == subscriber)
        .values(holder=holder, lease_until=now + lease)
    )
    return True


def release(connection: sa.Connection, subscriber: str, holder: str, now: datetime) -> None:
    """Give the lease up (if ``holder`` still has it), so the next process takes it at once."""
    connection.execute(
        event_leases.update()
        .where(event_leases.c.subscriber == subscriber, event_leases.c.holder == holder)
        .values(holder="", lease_until=now - timedelta(seconds=1))
    )
