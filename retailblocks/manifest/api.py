"""The manifest's ``api`` section: who may call the stack over HTTP, and with what limits.

::

    api:
      session_secret: ${SHOPPER_SESSION_SECRET}   # signs shoppers' session tokens
      max_body_bytes: 1048576
      keys:
        - id: wechat-shop            # a publishable store key, bound to one channel
          channel: wechat
          key: ${WECHAT_SHOP_KEY}
          cors: ["https://shop.example.com"]
        - id: back-office            # a secret admin key, with scopes
          scopes: ["orders:read", "orders:write", "stock:read"]
        - id: prometheus             # may scrape /metrics and nothing else (docs/metrics.md)
          scopes: ["metrics:read"]
          key: ${PROMETHEUS_SCRAPE_KEY}
          key: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

A key's value comes from the environment (``${VAR}``) or is written as the SHA-256 of the key
(``sha256:<hex>``): a key in clear text in a file that is committed is refused. Only the digest is kept;
nothing in the manifest's repr, the plan or the lock file shows a key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import attrs

from retailblocks.manifest import readers
from retailblocks.manifest.errors import ManifestError
from retailblocks.manifest.nodes import Node
from retailblocks.model._validators import SLUG

#: What an admin key's scopes may name: an area and ``read`` or ``write`` (write includes read).
ADMIN_AREAS = (
    "stock",
    "orders",
    "flows",
    "events",
    "members",
    "segments",
    "campaigns",
    "settlement",
    "ingest",
    "wallets",
    "blocks",
    "metrics",
)
ALL_SCOPES = "*"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_RATE_PER_MINUTE = 1200
MIN_KEY_LENGTH = 24
MIN_SESSION_SECRET_LENGTH = 32
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_ORIGIN = re.compile(r"(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|\*)")


def key_digest(key: str) -> str:
    """How a key is kept and compared: its SHA-256, in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@attrs.frozen
class ApiKey:
    """One caller. A store key (``channel`` set) acts for one channel; an admin key (``scopes``) for the
    areas its scopes name."""

    id: str
    digest: str = attrs.field(repr=False)
    channel: str | None = None
    scopes: frozenset[str] = frozenset()
    cors_origins: tuple[str, ...] = ()
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE
    revoked: bool = False
    #: Held by the channel's own server, which has verified who the shopper is (a mini-program login, a
    #: store card scanned at the till): only such a key may sign a shopper in by identity. A key that
    #: ships inside a web page or an app cannot prove anything about the person using it.
    signs_in_shoppers: bool = False

    @property
    def is_store_key(self) -> bool:
        return self.channel is not None

    def allows(self, area: str, access: str) -> bool:
        """Whether this admin key may ``access`` (read or write) ``area``; write includes read."""
        if self.is_store_key or self.revoked:
            return False
        if ALL_SCOPES in self.scopes or f"{area}:write" in self.scopes:
            return True
        return access == "read" and f"{area}:read" in self.scopes


@attrs.frozen
class ApiConfig:
    """The manifest's ``api`` section; an absent section means no key, so every route but the health
    checks answers 401."""

    keys: tuple[ApiKey, ...] = ()
    session_secret: bytes | None = attrs.field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


def parse_api(node: Node, channel_ids: Sequence[str]) -> ApiConfig:
    entries = readers.check_keys(node, ("keys", "session_secret", "max_body_bytes"))
    secret: bytes | None = None
    if "session_secret" in entries:
        secret_node = entries["session_secret"]
        text = readers.string(secret_node, secret=True)
        if not secret_node.from_environment:
            raise ManifestError.at(
                secret_node, "the session secret must come from the environment (write ${VARIABLE}), not the file"
            )
        if len(text) < MIN_SESSION_SECRET_LENGTH:
            raise ManifestError.at(
                secret_node, f"the session secret is too short: at least {MIN_SESSION_SECRET_LENGTH} characters"
            )
        secret = text.encode("utf-8")
    max_body = DEFAULT_MAX_BODY_BYTES
    if "max_body_bytes" in entries:
        max_body = readers.integer(entries["max_body_bytes"])
        if not 1024 <= max_body <= 64 * 1024 * 1024:
            raise ManifestError.at(entries["max_body_bytes"], "expected 1024 to 67108864 bytes")
    keys: list[ApiKey] = []
    ids: set[str] = set()
    digests: set[str] = set()
    for item in readers.sequence(entries["keys"]) if "keys" in entries else ():
        key = _key(item, channel_ids)
        if key.id in ids:
            raise ManifestError.at(item, f"duplicate key id {key.id!r}")
        if key.digest in digests:
            raise ManifestError.at(item, f"key {key.id!r} has the same value as another key; give each its own")
        ids.add(key.id)
        digests.add(key.digest)
        keys.append(key)
    if secret is None and any(key.signs_in_shoppers for key in keys):
        raise ManifestError.at(node, "a key signs shoppers in, so 'session_secret' is needed to sign their sessions")
    return ApiConfig(keys=tuple(keys), session_secret=secret, max_body_bytes=max_body)


def _key(node: Node, channel_ids: Sequence[str]) -> ApiKey:
    entries = readers.check_keys(
        node,
        ("id", "key", "channel", "scopes", "cors", "rate_per_minute", "revoked", "signs_in_shoppers"),
        ("id", "key"),
    )
    key_id = readers.string(entries["id"])
    if not SLUG.match(key_id):
        raise ManifestError.at(entries["id"], f"a key id is lower-case letters, digits, '-' and '_' (got {key_id!r})")
    if ("channel" in entries) == ("scopes" in entries):
        raise ManifestError.at(
            node, f"key {key_id!r} needs either 'channel' (a store key) or 'scopes' (an admin key), not both"
        )
    channel = None
    scopes: frozenset[str] = frozenset()
    if "channel" in entries:
        channel = readers.string(entries["channel"])
        if channel not in channel_ids:
            hint = readers.suggestion(channel, channel_ids)
            raise ManifestError.at(entries["channel"], f"unknown channel {channel!r}{hint}")
    else:
        found = []
        for scope_node in readers.sequence(entries["scopes"], non_empty=True):
            scope = readers.string(scope_node)
            area, _, access = scope.partition(":")
            if scope != ALL_SCOPES and (area not in ADMIN_AREAS or access not in ("read", "write")):
                hint = readers.suggestion(area, ADMIN_AREAS)
                raise ManifestError.at(
                    scope_node,
                    f"unknown scope {scope!r}{hint}: a scope is '*' or AREA:read or AREA:write, AREA one of "
                    + ", ".join(ADMIN_AREAS),
                )
            found.append(scope)
        scopes = frozenset(found)
    origins: list[str] = []
    for origin_node in readers.sequence(entries["cors"]) if "cors" in entries else ():
        origin = readers.string(origin_node)
        if not _ORIGIN.fullmatch(origin):
            raise ManifestError.at(origin_node, f"expected an origin like 'https://shop.example.com' (got {origin!r})")
        origins.append(origin)
    rate = DEFAULT_RATE_PER_MINUTE
    if "rate_per_minute" in entries:
        rate = readers.integer(entries["rate_per_minute"])
        if not 1 <= rate <= 1_000_000:
            raise ManifestError.at(entries["rate_per_minute"], "expected 1 to 1000000 requests per minute")
    revoked = _flag(entries, "revoked")
    signs_in = _flag(entries, "signs_in_shoppers")
    if signs_in and channel is None:
        raise ManifestError.at(entries["signs_in_shoppers"], "only a store key (one with 'channel') signs shoppers in")
    return ApiKey(
        id=key_id,
        digest=_digest(entries["key"], key_id),
        channel=channel,
        scopes=scopes,
        cors_origins=tuple(origins),
        rate_per_minute=rate,
        revoked=revoked,
        signs_in_shoppers=signs_in,
    )


def _flag(entries: dict[str, Node], name: str) -> bool:
    if name not in entries:
        return False
    value = entries[name].value
    if not isinstance(value, bool):
        raise readers.mismatch(entries[name], "true or false")
    return value


def secret_key_digest(node: Node, key_id: str) -> str:
    """The digest of a key written in a manifest (from the environment, or as ``sha256:<hex>``), by the
    rule every key follows; for other manifests' keys (the platform's)."""
    return _digest(node, key_id)


def _digest(node: Node, key_id: str) -> str:
    text = readers.string(node, secret=True)
    if node.from_environment:
        if len(text) < MIN_KEY_LENGTH:
            raise ManifestError.at(node, f"key {key_id!r} is too short: at least {MIN_KEY_LENGTH} characters")
        return key_digest(text)
    written = _DIGEST.fullmatch(text)
    if written is None:
        # Never echo what was written: it may be a key pasted in by mistake.
        raise ManifestError.at(
            node,
            f"key {key_id!r} must come from the environment (write ${{VARIABLE}}) or be written as "
            "'sha256:' and the 64 hex digits of the key's SHA-256; a key in clear text is refused",
        )
    return written.group(1)
