"""What every route needs: the stack, its callers' keys, their rate limits and idempotent requests."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import attrs
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Scope

from retailblocks.http.auth import KeyRing, RateLimiter
from retailblocks.http.idempotency import IdempotentRequests, check_key, flow_key, request_hash
from retailblocks.manifest.api import ApiKey
from retailblocks.stack import Stack


@attrs.define
class Api:
    """What every route needs: the stack and the server's view of its callers."""

    stack: Stack
    keys: KeyRing
    limiter: RateLimiter
    requests: IdempotentRequests
    #: The blocks' own routes (``stack_routes``), by block id, mounted under ``/blocks/{block_id}``.
    block_apps: dict[str, ASGIApp] = attrs.field(factory=dict)

    @property
    def cors_origins(self) -> frozenset[str]:
        return frozenset(origin for key in self.stack.manifest.api.keys for origin in key.cors_origins)

    def order_token(self, order_id: str) -> str:
        """A shopper's proof that they placed ``order_id``: a keyed hash only this stack can make."""
        return hmac.new(self.stack.fingerprint_key, f"order:{order_id}".encode(), hashlib.sha256).hexdigest()[:40]


def api_for(stack: Stack) -> Api:
    from retailblocks.http.block_routes import block_apps

    return Api(
        stack,
        KeyRing(stack.manifest.api.keys),
        RateLimiter(),
        IdempotentRequests(stack.engine, stack.lease_clock),
        block_apps(stack),
    )


#: Where a platform's router puts the Api of the merchant a request is for (retailblocks.http.platform): one
#: app serves every merchant, so the Api is the request's, not the app's.
API_SCOPE_KEY = "retailblocks.api"


def api_in_scope(scope: Scope) -> Api | None:
    """The Api a request is for: its merchant's on a platform, else the app's (None before it starts)."""
    found: Api | None = scope.get(API_SCOPE_KEY)
    if found is None and "app" in scope:
        found = getattr(scope["app"].state, "api", None)
    return found


def api_of(request: Request) -> Api:
    api = api_in_scope(request.scope)
    assert api is not None, "the stack is assembled before the server takes requests"
    return api


async def api_dependency(request: Request) -> Api:
    """``api_of`` as a route's dependency. Dependencies that wait on nothing are coroutines: FastAPI runs a
    plain function's dependency in the thread pool, a hand-over to a thread and back for every request."""
    return api_of(request)


async def run_once(
    request: Request,
    api: Api,
    caller: ApiKey,
    idempotency_key: str | None,
    handler: Callable[[str], BaseModel],
    *,
    status: int = 200,
    scope: str = "",
) -> Response:
    """Run ``handler`` once per Idempotency-Key (replaying its first answer), in the thread pool.

    ``handler`` gets the key the flows and blocks see (scoped by the API key) and returns the document.
    Keys belong to the API key that sent them, and to ``scope`` within it (a shopper, for routes that act
    for one), so one caller's key can never replay another's answer.
    """
    key = check_key(idempotency_key)
    fingerprint = request_hash(request.method, request.url.path, await request.body())
    scoped_key = flow_key(caller.id, f"{scope}:{key}" if scope else key)

    def respond() -> Response:
        return JSONResponse(handler(scoped_key).model_dump(mode="json"), status_code=status)

    stored_key = f"{scope}:{key}" if scope else key
    return await run_in_threadpool(api.requests.run, caller.id, stored_key, fingerprint, respond)
