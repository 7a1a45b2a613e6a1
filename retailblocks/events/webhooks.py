"""Delivering outbox events to the manifest's webhooks: signed, in order, at least once, never in a checkout's way.

Each webhook is a subscriber named ``webhook:<id>`` on the same cursors and failures as the blocks'
listeners, but delivered differently: no transaction is open while a request is on the wire (a slow
receiver must not hold the database's locks, or a checkout would wait for it). A delivery round of one
subscriber is:

1. take the subscriber's lease (a short transaction on ``event_leases``): one process at a time delivers
   a subscriber's events, so they go out in order; a process that dies leaves its lease to run out;
2. retry the subscriber's failed deliveries that are due, oldest event first;
3. then send its new events one by one from its cursor.

Every outcome is recorded in its own short transaction, which also renews the lease (and finds out whether
it was lost: then the round stops and records nothing more). A failure parks the event in
``event_failures`` with backoff ``BASE_BACKOFF * 2 ** (attempts - 1)``, and the round stops there: while a
delivery waits for its retry nothing newer is sent, so a receiver sees each subscriber's events in order
(the first time it sees each). After ``max_attempts`` the delivery is a dead letter, shown with the others
(:func:`retailblocks.events.dispatcher.dead_letters`) and re-armed by the same
:func:`~retailblocks.events.dispatcher.redeliver`; the subscriber's newer events then go on.

Every request carries the event id, a timestamp and an HMAC-SHA256 signature of both (see :func:`sign` and
:func:`verify_webhook`, and docs/webhooks.md for receivers).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import ssl
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.errors import InvalidInput, RetailBlocksError
from retailblocks.events.dispatcher import BASE_BACKOFF, event_from_row
from retailblocks.events.positions import Position, after, cursor, move_cursor, newest, settled, start_at, unread
from retailblocks.manifest.webhooks import SUBSCRIBER_PREFIX, Webhook
from retailblocks.storage import UnitOfWork
from retailblocks.storage.tables import event_cursors, event_failures, event_leases, outbox
from retailblocks.version import __version__

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime
    from retailblocks.context import Event

log = logging.getLogger("retailblocks.webhooks")

ID_HEADER = "Retailblocks-Webhook-Id"
TIMESTAMP_HEADER = "Retailblocks-Webhook-Timestamp"
SIGNATURE_HEADER = "Retailblocks-Webhook-Signature"
ATTEMPT_HEADER = "Retailblocks-Webhook-Attempt"
SIGNATURE_VERSION = "v1"
#: How far a receiver lets a delivery's timestamp be from its own clock by default (see verify_webhook).
DEFAULT_TOLERANCE = timedelta(minutes=5)
#: How much of a receiver's answer is read (and kept in the failure's error): the status is what counts.
_ANSWER_BYTES = 512
#: Events read from the cursor at a time (most may be of types the subscriber does not want).
_READ_BATCH = 1000


class InvalidSignature(ValueError):
    """A webhook request that this stack did not sign, or signed too long ago (a replay)."""


# -- signing and verifying -------------------------------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (unix seconds): ``v1=<hex>``, the
    HMAC-SHA256 with ``secret`` of ``b"<timestamp>." + body``."""
    digest = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_webhook(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> int:
    """Check a received delivery, as a receiver should before trusting it; returns the event id.

    ``headers`` are the request's (names in any case), ``body`` its bytes exactly as received (not parsed
    and re-encoded), ``now`` the receiver's time. Raises :class:`InvalidSignature` when a header is missing,
    no ``v1`` signature matches (compared in constant time), or the timestamp is more than ``tolerance``
    away from ``now`` — a recorded request replayed later is refused. A delivery may arrive more than once:
    dedupe by the returned event id.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        event_id = int(lowered[ID_HEADER.lower()])
        timestamp = int(lowered[TIMESTAMP_HEADER.lower()])
        signatures = lowered[SIGNATURE_HEADER.lower()]
    except (KeyError, ValueError):
        raise InvalidSignature(
            f"a webhook request carries {ID_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}"
        ) from None
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = sign(key, timestamp, body)
    # Several signatures may be sent at once (while a secret is rotated): one matching is enough.
    if not any(hmac.compare_digest(expected, candidate.strip()) for candidate in signatures.split(",")):
        raise InvalidSignature("the signature does not match the body and timestamp")
    if abs(as_utc(now).timestamp() - timestamp) > tolerance.total_seconds():
        raise InvalidSignature(f"the timestamp is more than {tolerance} away from now: refused as a replay")
    if json.loads(body).get("id") != event_id:
        raise InvalidSignature(f"the body is not the event {ID_HEADER} names")
    return event_id


def event_body(event: Event, merchant: str) -> bytes:
    """What a receiver gets: the event as JSON, the same bytes every attempt."""
    document = {
        "id": event.id,
        "type": event.type,
        "merchant": merchant,
        "occurred_at": as_utc(event.occurred_at).isoformat(),
        "source": event.source,
        "channel": event.channel,
        "order_id": event.order_id,
        "member_id": event.member_id,
        "payload": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


# -- sending -----------------------------------------------------------------------------------------


def post(hook: Webhook, event: Event, body: bytes, timestamp: int, attempt: int) -> str | None:
    """Send one delivery; None when the receiver answered 2xx, else what went wrong (no secret in it).

    http.client rather than urllib: a redirect is a failure here, not a POST silently turned into a GET.
    """
    parts = urlsplit(hook.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=hook.timeout_seconds, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=hook.timeout_seconds)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"retailblocks-webhooks/{__version__}",
        ID_HEADER: str(event.id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(hook.secret, timestamp, body),
        ATTEMPT_HEADER: str(attempt),
    }
    try:
        connection.request("POST", target, body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read(_ANSWER_BYTES).decode("utf-8", "replace")
    except TimeoutError:
        return f"no answer within {hook.timeout_seconds:g} seconds"
    except (OSError, http.client.HTTPException) as error:
        return f"{type(error).__name__}: {error}"[:500]
    finally:
        connection.close()
    if 200 <= answer.status < 300:
        return None
    return f"HTTP {answer.status} {answer.reason}: {text}"[:1000]


# -- delivery rounds ---------------------------------------------------------------------------------


@attrs.frozen
class WebhookReport:
    """What one call of :func:`deliver_webhooks` did, over every subscriber it visited."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    #: Subscribers another process was delivering (it holds their lease): left to it.
    busy: int = 0
    #: Subscribers waiting for a failed delivery's retry time (nothing newer is sent meanwhile).
    waiting: int = 0

    def __add__(self, other: WebhookReport) -> WebhookReport:
        return WebhookReport(*(a + b for a, b in zip(attrs.astuple(self), attrs.astuple(other), strict=True)))


def webhook(stack: Runtime, name: str) -> Webhook:
    """The manifest's webhook named ``name`` (its id, or ``webhook:<id>``)."""
    wanted = name.removeprefix(SUBSCRIBER_PREFIX)
    for hook in stack.manifest.webhooks:
        if hook.id == wanted:
            return hook
    known = ", ".join(hook.id for hook in stack.manifest.webhooks) or "none declared"
    raise InvalidInput(f"no webhook {wanted!r} in the manifest (webhooks: {known})")


def deliver_webhooks(stack: Runtime, *, subscriber: str | None = None, limit: int = 100) -> WebhookReport:
    """One delivery round of every webhook (or of ``subscriber``): due retries, then new events, at most
    ``limit`` requests per subscriber. Safe to run in many processes at once (see the module's docstring)."""
    hooks: Sequence[Webhook] = [webhook(stack, subscriber)] if subscriber else stack.manifest.webhooks
    report = WebhookReport()
    for hook in hooks:
        report += _Round(stack, hook, limit).run()
    return report


def subscribe_webhooks(stack: Runtime) -> None:
    """Give each webhook that has never been delivered to its starting place: the end of the outbox as it is
    now, so a subscriber added to a stack with a long history receives what happens from here on (the way
    a payment provider's new endpoint does) — or the beginning, when the manifest says ``history: true``.
    Run when a stack is assembled; a subscriber that already has a cursor keeps it."""
    fresh = [hook for hook in stack.manifest.webhooks if not hook.history]
    if not fresh:
        return
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        known = set(
            connection.execute(
                sa.select(event_cursors.c.subscriber).where(
                    event_cursors.c.subscriber.in_([hook.subscriber for hook in fresh])
                )
            ).scalars()
        )
        connection.rollback()
    missing = [hook for hook in fresh if hook.subscriber not in known]
    if not missing:
        return
    with UnitOfWork(stack.engine) as uow:
        end = newest(uow.connection)
        for hook in missing:
            start_at(uow.connection, hook.subscriber, end)


class _LeaseLost(Exception):
    """Another process took the subscriber over (this one overran its lease): stop, record nothing more."""


class _Round:
    def __init__(self, stack: Runtime, hook: Webhook, limit: int):
        self.stack = stack
        self.hook = hook
        self.subscriber = hook.subscriber
        self.limit = limit
        # Only tells this process's rounds apart from others' on the lease row: not business data, so not
        # drawn from the stack's seeded ids (which would shift every id a simulation makes).
        self.holder = uuid.uuid4().hex
        # Long enough for one request and its recording; renewed by every recording.
        self.lease = timedelta(seconds=2 * hook.timeout_seconds + 30)
        self.delivered = self.failed = self.dead = 0
        self.sent = 0

    def report(self, *, busy: int = 0, waiting: int = 0) -> WebhookReport:
        return WebhookReport(self.delivered, self.failed, self.dead, busy, waiting)

    def run(self) -> WebhookReport:
        if not self._has_work():
            return self.report()
        if not self._take_lease():
            return self.report(busy=1)
        try:
            blocked = self._retry_due()
            if not blocked:
                blocked = self._send_new()
            return self.report(waiting=int(blocked))
        except _LeaseLost:
            log.warning("webhook %s: lease lost to another process; it goes on from here", self.hook.id)
            return self.report()
        finally:
            self._release_lease()

    # The lease --------------------------------------------------------------------------------------

    def _has_work(self) -> bool:
        """A read, so idle rounds (every second, in every server worker) take no write lock."""
        now = self.stack.clock.now()
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            last = cursor(connection, self.subscriber)
            newer = connection.execute(
                sa.select(outbox.c.id).where(after(last), settled(connection.dialect.name)).limit(1)
            ).first()
            due = connection.execute(
                sa.select(event_failures.c.event_id)
                .where(self._pending(), event_failures.c.next_attempt_at <= now)
                .limit(1)
            ).first()
            connection.rollback()
        return due is not None or newer is not None

    def _take_lease(self) -> bool:
        now = self.stack.lease_clock.now()
        with UnitOfWork(self.stack.engine) as uow:
            _insert_missing(
                uow.connection,
                event_leases,
                subscriber=self.subscriber,
                holder="",
                lease_until=now - timedelta(seconds=1),
            )
            taken = uow.connection.execute(
                event_leases.update()
                .where(event_leases.c.subscriber == self.subscriber, event_leases.c.lease_until < now)
                .values(holder=self.holder, lease_until=now + self.lease)
            ).rowcount
        return bool(taken)

    def _renew(self, connection: sa.Connection) -> None:
        renewed = connection.execute(
            event_leases.update()
            .where(event_leases.c.subscriber == self.subscriber, event_leases.c.holder == self.holder)
            .values(lease_until=self.stack.lease_clock.now() + self.lease)
        ).rowcount
        if not renewed:
            raise _LeaseLost

    def _release_lease(self) -> None:
        try:
            with UnitOfWork(self.stack.engine) as uow:
                uow.connection.execute(
                    event_leases.update()
                    .where(event_leases.c.subscriber == self.subscriber, event_leases.c.holder == self.holder)
                    .values(holder="", lease_until=self.stack.lease_clock.now() - timedelta(seconds=1))
                )
        except sa.exc.SQLAlchemyError:
            # The lease runs out by itself; what matters is that the round's outcomes were recorded.
            log.warning("webhook %s: could not release the lease; it runs out by itself", self.hook.id)

    # Sending ----------------------------------------------------------------------------------------

    def _pending(self) -> sa.ColumnElement[bool]:
        return sa.and_(
            event_failures.c.subscriber == self.subscriber,
            event_failures.c.dead.is_(False),
            event_failures.c.delivered_at.is_(None),
        )

    def _send(self, event: Event, attempt: int) -> str | None:
        self.sent += 1
        timestamp = int(self.stack.clock.now().timestamp())
        body = event_body(event, self.stack.manifest.merchant.id)
        error = post(self.hook, event, body, timestamp, attempt)
        if error is not None:
            log.info("webhook %s: event %s attempt %s failed: %s", self.hook.id, event.id, attempt, error)
        return error

    def _retry_due(self) -> bool:
        """Retry due failures, oldest event first; True when one still waits (the round stops there)."""
        while self.sent < self.limit:
            now = self.stack.clock.now()
            with self.stack.engine.connect() as connection:
                connection.info["read_only"] = True
                row = connection.execute(
                    sa.select(event_failures.c.event_id, event_failures.c.attempts, event_failures.c.next_attempt_at)
                    .where(self._pending())
                    .order_by(event_failures.c.event_id)
                    .limit(1)
                ).first()
                event_row = (
                    connection.execute(sa.select(outbox).where(outbox.c.id == row.event_id)).mappings().one()
                    if row is not None
                    else None
                )
                connection.rollback()
            if row is None or event_row is None:
                return False
            if as_utc(row.next_attempt_at) > now:
                return True
            attempts = int(row.attempts) + 1
            error = self._send(event_from_row(event_row), attempts)
            where = sa.and_(event_failures.c.event_id == row.event_id, event_failures.c.subscriber == self.subscriber)
            with UnitOfWork(self.stack.engine) as uow:
                self._renew(uow.connection)
                if error is None:
                    uow.connection.execute(
                        event_failures.update().where(where).values(delivered_at=now, attempts=attempts)
                    )
                else:
                    uow.connection.execute(
                        event_failures.update().where(where).values(**self._failure(error, attempts, now))
                    )
            if error is None:
                self.delivered += 1
            elif attempts >= self.hook.max_attempts:
                self.dead += 1
            else:
                self.failed += 1
                return True
        return False

    def _send_new(self) -> bool:
        """Send new events from the cursor; True when one failed (the round stops there)."""
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            last = cursor(connection, self.subscriber)
            rows = connection.execute(unread(connection.dialect.name, last).limit(_READ_BATCH)).mappings().all()
            connection.rollback()
        passed: Position | None = None  # the newest event read that this subscriber does not want
        for row in rows:
            event = event_from_row(row)
            if not self.hook.wants(event.type):
                passed = Position.of(row)
                continue
            if self.sent >= self.limit:
                break
            error = self._send(event, 1)
            now = self.stack.clock.now()
            with UnitOfWork(self.stack.engine) as uow:
                self._renew(uow.connection)
                move_cursor(uow.connection, self.subscriber, Position.of(row))
                if error is not None:
                    uow.connection.execute(
                        event_failures.insert().values(
                            event_id=event.id, subscriber=self.subscriber, **self._failure(error, 1, now)
                        )
                    )
            passed = None
            if error is None:
                self.delivered += 1
            elif self.hook.max_attempts <= 1:
                self.dead += 1
            else:
                self.failed += 1
                return True
        if passed is not None:
            with UnitOfWork(self.stack.engine) as uow:
                self._renew(uow.connection)
                move_cursor(uow.connection, self.subscriber, passed)
        return False

    def _failure(self, error: str, attempts: int, now: datetime) -> dict[str, Any]:
        return {
            "attempts": attempts,
            "last_error": error[:2000],
            "dead": attempts >= self.hook.max_attempts,
            "next_attempt_at": now + BASE_BACKOFF * (2 ** (attempts - 1)),
        }


def _insert_missing(connection: sa.Connection, table: sa.Table, **values: Any) -> None:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        connection.execute(pg_insert(table).values(**values).on_conflict_do_nothing())
    else:
        connection.execute(table.insert().prefix_with("OR IGNORE").values(**values))


# -- running in the background -----------------------------------------------------------------------


def deliver_webhooks_until(
    stack: Runtime,
    stop: threading.Event,
    *,
    interval: float = 1.0,
    before_round: Callable[[], object] | None = None,
) -> None:
    """Deliver rounds until ``stop`` is set: at once again while there is more to send, after ``interval``
    seconds otherwise. What a server worker runs in a thread of its own, apart from every request.
    ``before_round`` records what the round should carry (the server publishes listing changes there)."""
    while not stop.is_set():
        try:
            if before_round is not None:
                before_round()
            report = deliver_webhooks(stack)
        except (RetailBlocksError, sa.exc.SQLAlchemyError, OSError) as error:
            # Logged by type: a database error's text can quote statement parameters.
            log.warning("webhook delivery round failed (%s); trying again", type(error).__name__)
            report = WebhookReport()
        if report.delivered == 0 or report.waiting or report.failed:
            stop.wait(interval)
