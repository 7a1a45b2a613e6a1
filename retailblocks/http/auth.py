"""Who is calling: API keys from the manifest, checked as digests in constant time, and per-key limits.

A caller sends ``Authorization: Bearer <key>``. The key itself is never kept, logged or echoed: the
manifest holds its SHA-256 and the presented key is hashed and compared with every declared digest by
``hmac.compare_digest``, so the time taken says nothing about which key came close. No key or an unknown or
revoked key is 401; a key of the wrong kind or without the scope is 403.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable, Sequence

import attrs
from fastapi.security import HTTPBearer

from retailblocks.manifest.api import ApiKey

#: The security scheme every keyed route declares; it reads the header, the KeyRing decides.
bearer = HTTPBearer(auto_error=False, description="an API key from the manifest's api.keys")


class Unauthorized(Exception):
    """401: no key, or a key this stack does not accept."""


class Forbidden(Exception):
    """403: a key that may not do this."""


class RateLimited(Exception):
    """429: the key spent its requests for now; ``retry_after`` seconds until the next one is allowed."""

    def __init__(self, retry_after: int):
        super().__init__(f"rate limit reached; retry in {retry_after} s")
        self.retry_after = retry_after


class KeyRing:
    """The manifest's keys, looked up by the presented secret."""

    def __init__(self, keys: Sequence[ApiKey]):
        self._keys = tuple(keys)

    def authenticate(self, presented: str | None) -> ApiKey:
        """The key whose secret is ``presented`` (the bearer token), or Unauthorized."""
        if not presented or not presented.strip():
            raise Unauthorized("send the API key as 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(presented.strip().encode("utf-8", "surrogateescape")).hexdigest()
        found: ApiKey | None = None
        for key in self._keys:  # every digest compared, whichever matches
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None or found.revoked:
            raise Unauthorized("this API key is not valid for this stack")
        return found


@attrs.define
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: ``rate_per_minute`` requests a minute, in bursts of up to a tenth of that.

    Limits are kept per server process; with N workers a key may get up to N times its rate in the worst
    case, which is what a limit on one host without shared state can promise.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def spend(self, key: ApiKey) -> None:
        per_second = key.rate_per_minute / 60.0
        burst = max(1.0, key.rate_per_minute / 10.0)
        now = self._clock()
        with self._lock:
            bucket = self._buckets.setdefault(key.id, _Bucket(burst, now))
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * per_second)
            bucket.updated = now
            if bucket.tokens < 1.0:
                raise RateLimited(max(1, math.ceil((1.0 - bucket.tokens) / per_second)))
            bucket.tokens -= 1.0
