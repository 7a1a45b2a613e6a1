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

from datetime import datetime, timedelta

import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.storage import insert_if_absent
from retailblocks.storage.tables import event_leases

_HELD = sa.select(event_leases.c.holder, event_leases.c.lease_until)


def hold(connection: sa.Connection, subscriber: str, holder: str, now: datetime, lease: timedelta) -> bool:
    """Take or renew ``subscriber``'s lease for ``holder`` until ``now + lease``, in the caller's transaction.

    False, without waiting, when another holder's lease has not run out or another transaction has the row
    locked. When True, the caller's transaction keeps the row locked until it ends (on PostgreSQL)."""
    row = connection.execute(
        _HELD.where(event_leases.c.subscriber == subscriber).with_for_update(skip_locked=True)
    ).first()
    if row is None:
        # Either no row yet, or a row another transaction holds locked: only the first may be taken.
        exists = connection.execute(
            sa.select(event_leases.c.subscriber).where(event_leases.c.subscriber == subscriber)
        ).first()
        if exists is not None:
            return False
        return insert_if_absent(
            connection, event_leases, {"subscriber": subscriber, "holder": holder, "lease_until": now + lease}
        )
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


def holder_of(connection: sa.Connection, subscriber: str, now: datetime) -> str | None:
    """Who holds ``subscriber``'s lease now (None when no one does, or it ran out)."""
    row = connection.execute(_HELD.where(event_leases.c.subscriber == subscriber)).first()
    if row is None or not row.holder or as_utc(row.lease_until) < now:
        return None
    return str(row.holder)
