"""What every route needs: the stack, its callers' keys, their rate limits and idempotent requests."""

from __future__ import annotations

import hashlib
import hmac

import attrs
from fastapi import Request

from retailblocks.http.auth import KeyRing, RateLimiter
from retailblocks.http.idempotency import IdempotentRequests
from retailblocks.stack import Stack


@attrs.define
class Api:
    """What every route needs: the stack and the server's view of its callers."""

    stack: Stack
    keys: KeyRing
    limiter: RateLimiter
    requests: IdempotentRequests

    @property
    def cors_origins(self) -> frozenset[str]:
        return frozenset(origin for key in self.stack.manifest.api.keys for origin in key.cors_origins)

    def order_token(self, order_id: str) -> str:
        """A shopper's proof that they placed ``order_id``: a keyed hash only this stack can make."""
        return hmac.new(self.stack.fingerprint_key, f"order:{order_id}".encode(), hashlib.sha256).hexdigest()[:40]


def api_for(stack: Stack) -> Api:
    return Api(
        stack, KeyRing(stack.manifest.api.keys), RateLimiter(), IdempotentRequests(stack.engine, stack.lease_clock)
    )


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api
