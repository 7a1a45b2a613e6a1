"""The manifest's ``webhooks`` section: the outside systems that receive the stack's events over HTTP.

::

    webhooks:
      - id: erp                                   # a slug, at most 48 characters
        url: https://erp.example.com/hooks/retailblocks
        events: ["order.", "stock.reserved"]      # "order." every type it begins; "stock.reserved" that type; "*" all
        secret: ${ERP_WEBHOOK_SECRET}             # signs every delivery (HMAC-SHA256); from the environment only
        timeout_seconds: 10                       # optional, 0.1 to 60
        max_attempts: 8                           # optional, 1 to 50: then the delivery is a dead letter
        history: false                            # optional: true sends the events from before it was added

The secret is kept as bytes outside every repr; a URL cannot carry a user or password (it is shown in
listings), so a receiver that needs one verifies the signature instead.
"""

from __future__ import annotations

import contextlib
import re
from urllib.parse import urlsplit

import attrs

from retailblocks.manifest import readers
from retailblocks.manifest.errors import ManifestError
from retailblocks.manifest.nodes import Node

#: What a delivery's subscriber is called on the event cursors and failures (a 64-character column).
SUBSCRIBER_PREFIX = "webhook:"
MAX_WEBHOOK_ID_LENGTH = 48
MIN_SECRET_LENGTH = 24
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_ATTEMPTS = 8
MAX_URL_LENGTH = 2000
ALL_EVENTS = "*"
_EVENT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_KEYS = ("id", "url", "events", "secret", "timeout_seconds", "max_attempts", "history")


@attrs.frozen
class Webhook:
    """One subscriber: where its events go, which ones, and the secret that signs them."""

    id: str
    url: str
    events: tuple[str, ...]
    secret: bytes = attrs.field(repr=False)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    #: Whether a subscriber added to a stack that already has events receives them too; by default it
    #: receives what happens from the first time the stack is assembled with it.
    history: bool = False

    @property
    def subscriber(self) -> str:
        """Its name on the event cursors and failures: ``webhook:<id>``."""
        return SUBSCRIBER_PREFIX + self.id

    def wants(self, event_type: str) -> bool:
        """Whether events of ``event_type`` go to this subscriber."""
        return any(
            wanted == ALL_EVENTS or event_type == wanted or (wanted.endswith(".") and event_type.startswith(wanted))
            for wanted in self.events
        )


def parse_webhooks(node: Node) -> tuple[Webhook, ...]:
    seen: dict[str, Node] = {}
    hooks: list[Webhook] = []
    for item in readers.sequence(node):
        hook = _webhook(item)
        readers.unique(readers.mapping(item)["id"], hook.id, seen, "webhook id")
        hooks.append(hook)
    return tuple(hooks)


def _webhook(node: Node) -> Webhook:
    entries = readers.check_keys(node, _KEYS, ("id", "url", "events", "secret"))
    hook_id = readers.slug(entries["id"])
    if len(hook_id) > MAX_WEBHOOK_ID_LENGTH:
        raise ManifestError.at(entries["id"], f"a webhook id has at most {MAX_WEBHOOK_ID_LENGTH} characters")
    return Webhook(
        id=hook_id,
        url=_url(entries["url"]),
        events=_events(entries["events"]),
        secret=_secret(entries["secret"], hook_id),
        timeout_seconds=_timeout(entries["timeout_seconds"])
        if "timeout_seconds" in entries
        else DEFAULT_TIMEOUT_SECONDS,
        max_attempts=_attempts(entries["max_attempts"]) if "max_attempts" in entries else DEFAULT_MAX_ATTEMPTS,
        history=_flag(entries["history"]) if "history" in entries else False,
    )


def _flag(node: Node) -> bool:
    if not isinstance(node.value, bool):
        raise readers.mismatch(node, "true or false")
    return node.value


def _url(node: Node) -> str:
    text = readers.string(node).strip()
    # What stands before an '@' may be a password: such a URL is never echoed.
    shown = "a URL with '@' in it" if "@" in text else node.describe()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ManifestError.at(node, f"invalid URL {shown}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ManifestError.at(
            node,
            f"expected an http:// or https:// URL with a host, like 'https://erp.example.com/hooks' (got {shown})",
        )
    if parts.username is not None or parts.password is not None:
        # Not echoed: what stands before the '@' is a password.
        raise ManifestError.at(
            node, "a webhook URL cannot carry a user or password; the receiver verifies the signature instead"
        )
    if parts.fragment or len(text) > MAX_URL_LENGTH or any(ch.isspace() for ch in text):
        raise ManifestError.at(
            node, f"invalid URL {shown}: no fragment, no spaces, at most {MAX_URL_LENGTH} characters"
        )
    if port == 0:
        raise ManifestError.at(node, "port 0 is not a port a receiver listens on")
    return text


def _events(node: Node) -> tuple[str, ...]:
    found: list[str] = []
    for item in readers.sequence(node, non_empty=True):
        text = readers.string(item)
        if text != ALL_EVENTS and not _EVENT_PATTERN.fullmatch(text):
            raise ManifestError.at(
                item,
                "expected an event type ('order.placed'), a prefix ending in '.' ('order.') or '*' "
                f"(got {item.describe()})",
            )
        found.append(text)
    return tuple(found)


def _secret(node: Node, hook_id: str) -> bytes:
    text = readers.string(node, secret=True)
    if not node.from_environment:
        # Never echoed: it may be the secret itself.
        raise ManifestError.at(
            node,
            f"the secret of webhook {hook_id!r} must come from the environment (write ${{VARIABLE}}), not the file",
        )
    if len(text) < MIN_SECRET_LENGTH:
        raise ManifestError.at(
            node, f"the secret of webhook {hook_id!r} is too short: at least {MIN_SECRET_LENGTH} characters"
        )
    return text.encode("utf-8")


def _timeout(node: Node) -> float:
    value = node.value
    if isinstance(value, str) and node.from_environment:
        with contextlib.suppress(ValueError):
            value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise readers.mismatch(node, "a number of seconds")
    if not 0.1 <= value <= 60:
        raise ManifestError.at(node, f"expected 0.1 to 60 seconds (got {value})")
    return float(value)


def _attempts(node: Node) -> int:
    attempts = readers.integer(node)
    if not 1 <= attempts <= 50:
        raise ManifestError.at(node, f"expected 1 to 50 attempts (got {attempts})")
    return attempts
