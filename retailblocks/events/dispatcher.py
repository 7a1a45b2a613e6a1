"""Delivering outbox events to the blocks' ``stack_event`` hooks: at least once, with retries and dead letters.

Each subscriber has a cursor. A batch of new events is handed over in one transaction that also moves the
cursor, so what a listener writes to the database and the fact that it received the event commit
together. A listener that raises has its delivery parked in ``event_failures`` (the cursor moves on so one
bad event does not block the rest) and retried with backoff; after ``max_attempts`` it is a dead letter.
The later events of the same order are parked behind it, untried, and delivered after it (or once it is a
dead letter): a listener receives each order's events in the order they were written.

Several dispatcher processes may run on one outbox. Each subscriber is delivered by one of them at a time,
the one holding its lease (:mod:`retailblocks.events.leases`, renewed by every batch's transaction): the
others skip it and deliver the subscribers that are free, so different subscribers are delivered in
parallel, each in outbox order (which keeps the events of one order in the order they were written). A
dispatcher that dies leaves its lease to run out (:data:`LEASE`); the next one goes on from the cursor.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.context import Event
from retailblocks.errors import BlockFailure, RetailBlocksError
from retailblocks.events.leases import ensure, hold, release
from retailblocks.events.positions import Position, after, behind, cursor, move_cursor, newest, settled, unread
from retailblocks.hookspecs import lifecycle
from retailblocks.storage import UnitOfWork
from retailblocks.storage.tables import event_failures, outbox

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

MAX_ATTEMPTS = 5
BASE_BACKOFF = timedelta(seconds=5)
#: How long a dispatcher's lease on a subscriber lasts unless renewed (every batch renews it). Only when a
#: dispatcher dies or hangs between batches does it matter: its subscribers wait this long for another.
LEASE = timedelta(seconds=30)
#: How often a caller waiting for a subscriber another dispatcher is delivering looks again (seconds).
_WAIT_STEP = 0.05


@attrs.frozen
class DispatchReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    #: Subscribers left to the dispatcher holding their lease (with ``wait=False``, or after waiting long).
    busy: int = 0


def event_from_row(row: Any) -> Event:
    return Event(
        id=row["id"],
        type=row["type"],
        payload=row["payload"],
        occurred_at=row["occurred_at"],
        source=row["source"],
        channel=row["channel"],
        order_id=row["order_id"],
        member_id=row["member_id"],
    )


def read_events(
    stack: Runtime,
    *,
    after: int = 0,
    limit: int = 100,
    event_type: str | None = None,
    order_id: str | None = None,
) -> list[Event]:
    query = sa.select(outbox).where(outbox.c.id > after).order_by(outbox.c.id).limit(limit)
    if event_type:
        query = query.where(outbox.c.type.startswith(event_type, autoescape=True))
    if order_id:
        query = query.where(outbox.c.order_id == order_id)
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = connection.execute(query).mappings().all()
        connection.rollback()
    return [event_from_row(row) for row in rows]


def dispatch(
    stack: Runtime,
    *,
    batch: int = 200,
    max_attempts: int = MAX_ATTEMPTS,
    rounds: int = 1000,
    wait: bool = True,
) -> DispatchReport:
    """Deliver every pending event and every retry that is due; returns what happened.

    A subscriber another process is delivering is skipped at first. With ``wait`` (the default) the call
    then waits, holding no lock, until that subscriber has received every event settled when the call
    began (taking the lease over if it runs out), so what was committed before the call has been
    delivered when it returns — what reports reading the listeners' data rely on. A dispatcher loop
    passes ``wait=False``: a busy subscriber is counted in ``busy`` and left to its holder.
    """
    holder = uuid.uuid4().hex  # tells this call's leases apart from every other process's and thread's
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        target = newest(connection)
        connection.rollback()
    subscribers = stack.hooks.implementers(lifecycle.stack_event)
    ensure(stack.engine, subscribers, stack.lease_clock.now())
    totals = DispatchReport()
    busy: list[str] = []
    for subscriber in subscribers:
        report = _subscriber_round(stack, subscriber, holder, batch, max_attempts, rounds)
        if report is None:
            busy.append(subscriber)
        else:
            totals = _add(totals, report)
    if wait:
        deadline = time.monotonic() + 2 * LEASE.total_seconds()
        waiting = busy
        busy = []
        for subscriber in waiting:
            while True:
                report = _subscriber_round(stack, subscriber, holder, batch, max_attempts, rounds)
                if report is not None:
                    totals = _add(totals, report)
                    break
                if _reached(stack, subscriber, target):
                    break
                if time.monotonic() > deadline:
                    busy.append(subscriber)  # its holder hangs inside a transaction: give up waiting
                    break
                time.sleep(_WAIT_STEP)
    return attrs.evolve(totals, busy=len(busy))


def _add(total: DispatchReport, more: DispatchReport) -> DispatchReport:
    return DispatchReport(
        total.delivered + more.delivered, total.failed + more.failed, total.dead + more.dead, total.busy + more.busy
    )


def _reached(stack: Runtime, subscriber: str, target: Position) -> bool:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        position = cursor(connection, subscriber)
        connection.rollback()
    return position >= target


def _subscriber_round(
    stack: Runtime, subscriber: str, holder: str, batch: int, max_attempts: int, rounds: int
) -> DispatchReport | None:
    """New events, then due retries, to one subscriber under its lease; None when another process has it.

    Every batch is one transaction that first renews the lease (keeping its row locked to the end): a
    batch runs only while this call holds the lease, and no one takes it over in the middle of one."""
    if not _has_work(stack, subscriber):
        return DispatchReport()
    delivered = failed = dead = 0
    released = False
    try:
        for number in range(rounds):
            with UnitOfWork(stack.engine) as uow:
                if not hold(uow.connection, subscriber, holder, stack.lease_clock.now(), LEASE):
                    # Busy at the start; later, another process took over after this one overran its lease.
                    released = True
                    return None if number == 0 else DispatchReport(delivered, failed)
                new, failures, more = _deliver_new(stack, subscriber, batch, uow)
            delivered += new
            failed += failures
            if not more:
                break
        with UnitOfWork(stack.engine) as uow:
            if not hold(uow.connection, subscriber, holder, stack.lease_clock.now(), LEASE):
                released = True
                return DispatchReport(delivered, failed)
            retried, failures, dead = _retry_due(stack, subscriber, batch, max_attempts, uow)
            release(uow.connection, subscriber, holder, stack.lease_clock.now())
        released = True
        return DispatchReport(delivered + retried, failed + failures, dead)
    finally:
        if not released:
            _release_apart(stack, subscriber, holder)


def _has_work(stack: Runtime, subscriber: str) -> bool:
    """A read: an idle dispatcher (polling in several processes) takes no lease and no write lock."""
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        last = cursor(connection, subscriber)
        newer = connection.execute(
            sa.select(outbox.c.id).where(after(last), settled(connection.dialect.name)).limit(1)
        ).first()
        due = connection.execute(
            sa.select(event_failures.c.event_id)
            .where(
                event_failures.c.subscriber == subscriber,
                event_failures.c.dead.is_(False),
                event_failures.c.delivered_at.is_(None),
                event_failures.c.next_attempt_at <= stack.clock.now(),
            )
            .limit(1)
        ).first()
        connection.rollback()
    return newer is not None or due is not None


def _release_apart(stack: Runtime, subscriber: str, holder: str) -> None:
    """After a failed batch: give the lease up in a transaction of its own (else it runs out by itself)."""
    try:
        with UnitOfWork(stack.engine) as uow:
            release(uow.connection, subscriber, holder, stack.lease_clock.now())
    except sa.exc.SQLAlchemyError:
        pass


def _deliver(stack: Runtime, subscriber: str, event: Event, uow: UnitOfWork) -> str | None:
    """Hand one event over inside a savepoint; the error text if the listener raised."""
    savepoint = uow.connection.begin_nested()
    ctx = stack.new_context(
        uow, event.channel if event.channel in stack.channels else None, flow="event", flow_id=event.order_id or ""
    )
    try:
        stack.hooks.at(subscriber, lifecycle.stack_event, event=event, ctx=ctx)
    except (RetailBlocksError, Exception) as error:
        savepoint.rollback()
        cause = error.error if isinstance(error, BlockFailure) else error
        return f"{type(cause).__name__}: {cause}"
    savepoint.commit()
    return None


def _pending(subscriber: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        event_failures.c.subscriber == subscriber,
        event_failures.c.dead.is_(False),
        event_failures.c.delivered_at.is_(None),
    )


def _waiting_orders(connection: sa.Connection, subscriber: str) -> dict[str, tuple[int, datetime]]:
    """Orders with an event still to be delivered to ``subscriber`` (retrying, or held back itself): order id
    → its earliest such event and when that one is tried again."""
    rows = connection.execute(
        sa.select(outbox.c.order_id, event_failures.c.event_id, event_failures.c.next_attempt_at)
        .select_from(event_failures.join(outbox, outbox.c.id == event_failures.c.event_id))
        .where(_pending(subscriber), outbox.c.order_id.is_not(None))
        .order_by(event_failures.c.event_id)
    ).all()
    waiting: dict[str, tuple[int, datetime]] = {}
    for order_id, event_id, next_attempt_at in rows:
        waiting.setdefault(order_id, (int(event_id), as_utc(next_attempt_at)))
    return waiting


def _held_back(event: Event, subscriber: str, first: tuple[int, datetime]) -> dict[str, Any]:
    """A delivery parked, untried, behind an earlier event of its order that waits for its retry."""
    return {
        "event_id": event.id,
        "subscriber": subscriber,
        "attempts": 0,
        "next_attempt_at": first[1],
        "last_error": f"held back behind event {first[0]} of order {event.order_id}",
        "dead": False,
    }


def _deliver_new(stack: Runtime, subscriber: str, batch: int, uow: UnitOfWork) -> tuple[int, int, bool]:
    """The next batch of new events. An event whose order has an earlier event waiting for its retry is held
    back with it (parked untried), so a listener receives each order's events in order; other orders'
    events go on."""
    delivered = failed = 0
    connection = uow.connection
    last = cursor(connection, subscriber, for_update=True)
    rows: Sequence[Any] = connection.execute(unread(connection.dialect.name, last).limit(batch)).mappings().all()
    now = stack.clock.now()
    waiting = _waiting_orders(connection, subscriber) if rows else {}
    for row in rows:
        event = event_from_row(row)
        first = waiting.get(event.order_id) if event.order_id else None
        if first is not None:
            connection.execute(event_failures.insert().values(**_held_back(event, subscriber, first)))
            continue
        error = _deliver(stack, subscriber, event, uow)
        if error is None:
            delivered += 1
            continue
        failed += 1
        connection.execute(
            event_failures.insert().values(
                event_id=event.id,
                subscriber=subscriber,
                attempts=1,
                next_attempt_at=now + BASE_BACKOFF,
                last_error=error[:2000],
                dead=False,
            )
        )
        if event.order_id:
            waiting[event.order_id] = (event.id, now + BASE_BACKOFF)
    if rows:
        move_cursor(connection, subscriber, Position.of(rows[-1]))
    return delivered, failed, len(rows) == batch


def _retry_due(stack: Runtime, subscriber: str, batch: int, max_attempts: int, uow: UnitOfWork) -> tuple[int, int, int]:
    """Retry the due deliveries, oldest event first; one whose order has an earlier event still waiting
    stays held back behind it (until that one is delivered or a dead letter)."""
    delivered = failed = dead = 0
    now = stack.clock.now()
    connection = uow.connection
    due = (
        connection.execute(
            sa.select(event_failures.c.event_id, event_failures.c.attempts, outbox)
            .join(outbox, outbox.c.id == event_failures.c.event_id)
            .where(_pending(subscriber), event_failures.c.next_attempt_at <= now)
            .order_by(event_failures.c.event_id)
            .limit(batch)
        )
        .mappings()
        .all()
    )
    # The earliest event of each order that is not due yet: what a later due one of the order waits for.
    waiting = {
        order_id: first
        for order_id, first in (_waiting_orders(connection, subscriber) if due else {}).items()
        if first[1] > now
    }
    for row in due:
        event_id, attempts = int(row["event_id"]), int(row["attempts"])
        where = (event_failures.c.event_id == event_id) & (event_failures.c.subscriber == subscriber)
        event = event_from_row(row)
        first = waiting.get(event.order_id) if event.order_id else None
        if first is not None and first[0] < event_id:
            connection.execute(event_failures.update().where(where).values(next_attempt_at=first[1]))
            continue
        error = _deliver(stack, subscriber, event, uow)
        if error is None:
            delivered += 1
            connection.execute(event_failures.update().where(where).values(delivered_at=now))
            continue
        attempts += 1
        is_dead = attempts >= max_attempts
        dead += int(is_dead)
        failed += int(not is_dead)
        next_attempt_at = now + BASE_BACKOFF * (2 ** (attempts - 1))
        connection.execute(
            event_failures.update()
            .where(where)
            .values(attempts=attempts, last_error=error[:2000], dead=is_dead, next_attempt_at=next_attempt_at)
        )
        if not is_dead and event.order_id:
            waiting[event.order_id] = (event_id, next_attempt_at)
    return delivered, failed, dead


@attrs.frozen
class DeadLetter:
    """A delivery given up after too many failures: which event, to which subscriber, and the last error."""

    event_id: int
    event_type: str
    subscriber: str
    attempts: int
    last_error: str


@attrs.frozen
class DeliveryFailure:
    """A delivery not (yet) made: retried at ``next_attempt_at``, or a dead letter (``dead``)."""

    event_id: int
    event_type: str
    subscriber: str
    attempts: int
    last_error: str
    dead: bool
    next_attempt_at: datetime


def read_failures(stack: Runtime) -> list[DeliveryFailure]:
    """Every delivery that failed and was not made since, to listeners and webhooks: retrying or dead."""
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = (
            connection.execute(
                sa.select(event_failures, outbox.c.type)
                .join(outbox, outbox.c.id == event_failures.c.event_id)
                .where(event_failures.c.delivered_at.is_(None))
                .order_by(event_failures.c.event_id, event_failures.c.subscriber)
            )
            .mappings()
            .all()
        )
        connection.rollback()
    return [
        DeliveryFailure(
            row["event_id"],
            row["type"],
            row["subscriber"],
            row["attempts"],
            row["last_error"],
            bool(row["dead"]),
            as_utc(row["next_attempt_at"]),
        )
        for row in rows
    ]


def read_dead_letters(stack: Runtime) -> list[DeadLetter]:
    """Every dead letter, by event id and subscriber."""
    return [
        DeadLetter(row["event_id"], row["type"], row["subscriber"], row["attempts"], row["last_error"])
        for row in dead_letters(stack)
    ]


def dead_letters(stack: Runtime) -> list[dict[str, Any]]:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        rows = (
            connection.execute(
                sa.select(event_failures, outbox.c.type)
                .join(outbox, outbox.c.id == event_failures.c.event_id)
                .where(event_failures.c.dead.is_(True))
                .order_by(event_failures.c.event_id, event_failures.c.subscriber)
            )
            .mappings()
            .all()
        )
        connection.rollback()
    return [dict(row) for row in rows]


def redeliver(stack: Runtime, event_id: int, subscriber: str | None = None) -> int:
    """Give dead letters of ``event_id`` (to ``subscriber``, or to every subscriber) one more delivery
    attempt at the next dispatch — of the listeners, or of the webhooks for a ``webhook:<id>``
    subscriber; returns how many were re-armed. A delivery that fails again is a dead
    letter again at once (its attempts are kept), so a redelivery never loops."""
    where = sa.and_(
        event_failures.c.event_id == event_id,
        event_failures.c.dead.is_(True),
        event_failures.c.delivered_at.is_(None),
    )
    if subscriber is not None:
        where = sa.and_(where, event_failures.c.subscriber == subscriber)
    with UnitOfWork(stack.engine) as uow:
        return int(
            uow.connection.execute(
                event_failures.update().where(where).values(dead=False, next_attempt_at=stack.clock.now())
            ).rowcount
        )


def undelivered(stack: Runtime) -> int:
    """Events some subscriber has not yet received successfully (new, retrying or dead)."""
    subscribers = stack.hooks.implementers(lifecycle.stack_event)
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        count = sum(behind(connection, subscriber) for subscriber in subscribers)
        count += (
            connection.execute(
                sa.select(sa.func.count()).select_from(event_failures).where(event_failures.c.delivered_at.is_(None))
            ).scalar()
            or 0
        )
        connection.rollback()
    return count
