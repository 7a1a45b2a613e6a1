"""The sandbox gateway's notifications: what it sends when an authorization's answer was lost, signed.

A real gateway tells the merchant later, by a signed HTTP request, what became of a request that timed
out. The sandbox queues one notification per timed-out authorization (``sandbox_card_gateway_notifications``)
and :func:`deliver` sends the due ones to the block's route, ``POST /blocks/<block id>/notifications``.

The signature is HMAC-SHA256 with the shared ``callback_secret`` over ``<timestamp>.<body>``, sent as
``Sandbox-Signature: t=<unix seconds>,v1=<hex digest>``: the timestamp is signed with the body, so a
receiver can refuse a message replayed later (:func:`verify`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import Clock
from retailblocks.errors import InvalidInput, NotAuthenticated
from retailblocks.storage import UnitOfWork, read_only_connection
from retailblocks_sandbox_card.tables import gateway_notifications as notifications

SIGNATURE_HEADER = "Sandbox-Signature"
#: How far a notification's signed timestamp may be from the receiver's clock, either way.
TOLERANCE = timedelta(minutes=5)
SUCCEEDED = "authorization.succeeded"
FAILED = "authorization.failed"

_DUE = (
    sa.select(notifications.c.id, notifications.c.body)
    .where(notifications.c.delivered_at.is_(None))
    .order_by(notifications.c.created_at, notifications.c.id)
    .limit(sa.bindparam("limit"))
)


@attrs.frozen
class Notification:
    """One notification as the block's route reads it, after its signature was checked."""

    id: str
    type: str
    idempotency_key: str
    amount: int
    currency: str
    #: The charge the authorization made (``id``, ``card_last4``, ``brand``, ``created_at``); succeeded only.
    charge: Mapping[str, str] | None


@attrs.frozen
class DeliveryReport:
    """What :func:`deliver` did: notifications accepted by the route, and those that failed (with why)."""

    delivered: tuple[str, ...] = ()
    failed: Mapping[str, str] = attrs.field(factory=dict)


def notification_body(
    notification_id: str, kind: str, key: str, amount: int, currency: str, charge: Mapping[str, str] | None
) -> str:
    """The JSON document of one notification, as the gateway fixes it when it queues it."""
    document: dict[str, Any] = {
        "id": notification_id,
        "type": kind,
        "idempotency_key": key,
        "amount": amount,
        "currency": currency,
    }
    if charge is not None:
        document["charge"] = dict(charge)
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Sandbox-Signature`` header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str | None, now: datetime) -> None:
    """Raise NotAuthenticated unless ``header`` signs ``body`` with ``secret`` at a time within TOLERANCE of
    ``now``. Never says what the right signature would have been."""
    if not header:
        raise NotAuthenticated(f"the notification has no {SIGNATURE_HEADER} header")
    parts = dict(part.partition("=")[::2] for part in header.split(","))
    timestamp, sent = parts.get("t", ""), parts.get("v1", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12 and sent):
        raise NotAuthenticated(f"the {SIGNATURE_HEADER} header is not 't=<unix seconds>,v1=<hex digest>'")
    expected = signature(secret, int(timestamp), body)
    # Compared in constant time, as a whole: a wrong digest says nothing about how much of it was right.
    if not hmac.compare_digest(expected.encode("ascii"), f"t={timestamp},v1={sent}".encode("ascii", "replace")):
        raise NotAuthenticated("the notification's signature does not match its body")
    drift = abs(now.timestamp() - int(timestamp))
    if drift > TOLERANCE.total_seconds():
        raise NotAuthenticated(
            f"the notification was signed {int(drift)} seconds away from now; at most "
            f"{int(TOLERANCE.total_seconds())} are accepted (a replay, or a clock that is off)"
        )


def parse(body: bytes) -> Notification:
    """The notification in a verified body; InvalidInput (400) naming the first thing wrong with it."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("the notification's body is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidInput("the notification's body must be a JSON object")
    for name, kind in (("id", str), ("type", str), ("idempotency_key", str), ("amount", int), ("currency", str)):
        value = document.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            raise InvalidInput(f"the notification's {name!r} is missing or not a {kind.__name__}")
    if document["type"] not in (SUCCEEDED, FAILED):
        raise InvalidInput(f"the notification's 'type' must be {SUCCEEDED!r} or {FAILED!r}")
    charge = document.get("charge")
    if document["type"] == SUCCEEDED:
        fields = ("id", "card_last4", "brand", "created_at")
        if not isinstance(charge, dict) or not all(isinstance(charge.get(name), str) for name in fields):
            raise InvalidInput(f"a {SUCCEEDED!r} notification needs 'charge' with {', '.join(fields)}")
        charge = {name: charge[name] for name in fields}
    else:
        charge = None
    return Notification(
        document["id"], document["type"], document["idempotency_key"], document["amount"], document["currency"], charge
    )


#: Sends one signed notification: ``(url, body, headers) -> HTTP status``; raises OSError if unreachable.
Sender = Callable[[str, bytes, Mapping[str, str]], int]


def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    """Send one notification over HTTP (the default :data:`Sender`)."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def deliver(
    engine: sa.Engine, secret: str, url: str, clock: Clock, *, send: Sender = post, limit: int = 100
) -> DeliveryReport:
    """Send every notification not yet accepted to ``url``, signed with ``secret`` at ``clock``'s now.

    A notification is marked delivered only once the route answered 2xx; any other answer (or none) leaves
    it for the next run, so delivery is at least once and the route must be (it is) idempotent. No
    transaction is held across a send.
    """
    with read_only_connection(engine) as connection:
        due = connection.execute(_DUE, {"limit": limit}).all()
    delivered: list[str] = []
    failed: dict[str, str] = {}
    for notification_id, body in due:
        data = body.encode("utf-8")
        headers = {SIGNATURE_HEADER: signature(secret, int(clock.now().timestamp()), data)}
        try:
            status = send(url, data, headers)
        except OSError as error:
            status, why = 0, f"unreachable ({type(error).__name__})"
        else:
            why = f"answered {status}"
        ok = 200 <= status < 300
        values: dict[str, Any] = {"attempts": notifications.c.attempts + 1}
        if ok:
            values["delivered_at"] = clock.now()
            delivered.append(notification_id)
        else:
            failed[notification_id] = why
        with UnitOfWork(engine) as uow:
            uow.connection.execute(notifications.update().where(notifications.c.id == notification_id).values(values))
    return DeliveryReport(tuple(delivered), failed)


def pending(engine: sa.Engine, limit: int = 100) -> list[tuple[str, bytes]]:
    """The notifications not yet accepted, oldest first: ``(id, body)``."""
    with read_only_connection(engine) as connection:
        return [(row.id, row.body.encode("utf-8")) for row in connection.execute(_DUE, {"limit": limit})]
