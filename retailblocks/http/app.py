"""The ASGI application: the stack's operations over HTTP, for channels (``/store``) and operators.

:func:`create_app` wraps a :class:`~retailblocks.stack.Stack` (or assembles one from a manifest when the
server starts). Routes hold no business logic: each checks who calls, converts the wire's document to the
model's values, calls one Stack operation and converts its result back.
"""

from __future__ import annotations

import abc
import gc
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import sqlalchemy as sa
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retailblocks.errors import RetailBlocksError
from retailblocks.events.webhooks import deliver_webhooks_until
from retailblocks.http.auth import Forbidden, RateLimited, Unauthorized
from retailblocks.http.idempotency import KeyProblem
from retailblocks.http.metrics import observe, route_template
from retailblocks.http.problems import problem, problem_for, validation_problem
from retailblocks.http.sessions import BadSession
from retailblocks.http.state import api_for, api_in_scope
from retailblocks.manifest.api import DEFAULT_MAX_BODY_BYTES
from retailblocks.stack import Stack, assemble

access_log = logging.getLogger("retailblocks.http.access")
server_log = logging.getLogger("retailblocks.http")
REQUEST_ID = "X-Request-Id"


def create_app(
    stack: Stack | None = None,
    *,
    manifest: str | os.PathLike[str] | None = None,
    recover_on_start: bool = True,
    webhook_interval: float | None = 1.0,
    recover_every: float | None = None,
    threads: int | None = None,
    freeze_after_start: bool = False,
) -> FastAPI:
    """The ASGI app for ``stack``, or for the stack of ``manifest``, assembled when the server starts (and
    closed when it stops). At start, flows a crash left half-way are finished or undone and the report is
    logged.

    While it runs, a thread of its own delivers the manifest's webhooks (when it declares any), looking
    for new events every ``webhook_interval`` seconds (None: no delivery from this app). Requests never
    wait for it; the workers of one server, or several servers, share the work through leases.

    With ``recover_every`` (what ``blocks serve`` sets), another thread recovers every that many seconds
    what is left half-way and whose lease has run out — a worker killed mid-checkout, a payment whose
    outcome a provider has since told — and runs the blocks' housekeeping (expired reservations).

    ``threads`` caps how many requests run at once in this process's thread pool (see
    :func:`limit_request_threads`); None keeps the server's default. With ``freeze_after_start`` (what
    ``blocks serve`` sets in its workers, whose process is the app's alone), what is alive once the stack
    is assembled is set aside from the garbage collector (:func:`_freeze_startup_objects`)."""
    if (stack is None) == (manifest is None):
        raise TypeError("create_app takes a stack or a manifest path, not both")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_request_threads(threads)
        owned = stack is None
        running = stack if stack is not None else assemble(manifest, require_lock=True)  # type: ignore[arg-type]
        try:
            if owned:
                app.state.api = api_for(running)
            if recover_on_start:
                report = running.recover()
                server_log.info(
                    "recovered at start: %s",
                    json.dumps(
                        {
                            "resumed": len(report.resumed),
                            "compensated": len(report.compensated),
                            "stuck": len(report.stuck),
                            "skipped": len(report.skipped),
                        }
                    ),
                )
            if freeze_after_start:
                _freeze_startup_objects()
            with _delivering_webhooks(running, webhook_interval), _recovering(running, recover_every):
                yield
        finally:
            if owned:
                running.close()

    app = _new_app(lifespan)
    if stack is not None:
        app.state.api = api_for(stack)
    return app


def _freeze_startup_objects() -> None:
    """Collect once, then move every object still alive (the modules, the assembled stack, the routes and
    their schemas) to the collector's permanent generation (``gc.freeze``).

    A worker keeps them for its whole life, yet each full collection, triggered by the objects requests
    allocate, would walk all of them again, holding the interpreter's lock meanwhile: a pause in the middle
    of whichever requests are running. Measured with the HTTP benchmark (4 workers, PostgreSQL, runs
    alternating with and without): 134 / 120 / 115 / 100 against 122 / 101 / 98 / 92 complete checkouts a
    second, and a lower p99 in three pairs of four. Not for an app embedded in a process of its own:
    frozen objects are never collected, even once they are garbage.
    """
    gc.collect()
    gc.freeze()


def limit_request_threads(threads: int | None) -> None:
    """Run at most ``threads`` requests at once in the running event loop's thread pool (the rest wait
    their turn in the loop). Called from a lifespan, in the loop whose pool it limits.

    Why fewer can be faster: a checkout is many short database round trips, and the threads of one
    process hand the interpreter's lock to each other at every one of them. Measured on two cores, four
    threads checking out at once in one process used 8.0 ms of CPU per checkout, one thread 5.0 ms. With
    payment providers that answer in milliseconds, a few threads per worker (and a worker per core or two)
    serve more checkouts; with providers that take a second, a worker needs as many threads as checkouts
    it should keep waiting on them."""
    if threads is not None:
        to_thread.current_default_thread_limiter().total_tokens = threads


@contextmanager
def _delivering_webhooks(stack: Stack, interval: float | None) -> Iterator[None]:
    if interval is None or not stack.manifest.webhooks:
        yield
        return
    stop = threading.Event()
    # Each round first publishes what marketplace and social channels may now sell, so the listing changes
    # go out with it (retailblocks.connectors.listings).
    worker = threading.Thread(
        target=deliver_webhooks_until,
        args=(stack, stop),
        kwargs={"interval": interval, "before_round": stack.publish_listings},
        name="webhooks",
        daemon=True,
    )
    worker.start()
    try:
        yield
    finally:
        stop.set()
        # A request to a slow receiver may still be on the wire: it is not waited for (shutdown would take
        # as long); its outcome goes unrecorded and the event is sent again once the lease runs out.
        worker.join(timeout=2.0)
        if worker.is_alive():
            server_log.info("webhook delivery still waits for a receiver; its event is sent again later")


@contextmanager
def _recovering(stack: Stack, every: float | None) -> Iterator[None]:
    if every is None:
        yield
        return
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(every):
            try:
                report = stack.recover()
            except (RetailBlocksError, sa.exc.SQLAlchemyError) as error:
                # Logged by type: a database error's text can quote statement parameters.
                server_log.warning("periodic recovery failed (%s); trying again", type(error).__name__)
                continue
            if report.resumed or report.compensated or report.stuck:
                counts = {
                    "resumed": len(report.resumed),
                    "compensated": len(report.compensated),
                    "stuck": len(report.stuck),
                    "skipped": len(report.skipped),
                }
                server_log.info("recovered: %s", json.dumps(counts))

    worker = threading.Thread(target=sweep, name="recovery", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=5.0)


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI 3.1 document; no stack is needed to describe it."""
    return _new_app(None).openapi()


def operation_id(route: APIRoute) -> str:
    """A route's operationId when it names none: its function's name in camelCase, prefixed ``admin`` under
    /admin (``adminListCampaigns``) — stable names for generated clients, unlike the path-and-method ones."""
    first, *rest = route.name.split("_")
    name = first + "".join(word.capitalize() for word in rest)
    return "admin" + name[0].upper() + name[1:] if route.path_format.startswith("/admin") else name


def _new_app(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None) -> FastAPI:
    from retailblocks.http import admin, block_routes, carts, connectors, metrics, openapi, operations, store

    app = FastAPI(
        title="retailblocks",
        summary="A retailer's stack assembled from blocks: the store API for channels, and operations.",
        version="1",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.include_router(operations.router)
    app.include_router(metrics.router)
    app.include_router(store.router)
    app.include_router(carts.router)
    app.include_router(connectors.router)
    app.include_router(admin.router)
    # Not in the OpenAPI document: blocks' routes are each block's contract, and the document is the core's.
    app.mount(block_routes.PREFIX, block_routes.BlockRoutes(), name="blocks")
    _install_error_handlers(app)
    openapi.install(app)
    app.add_middleware(_BodyLimit)
    app.add_middleware(_Cors)
    app.add_middleware(_RequestLog)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RetailBlocksError)
    async def retailblocks_error(_request: Request, error: RetailBlocksError) -> Response:
        return problem_for(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> Response:
        return validation_problem(error.errors())

    @app.exception_handler(Unauthorized)
    async def unauthorized(_request: Request, error: Unauthorized) -> Response:
        return problem(401, "unauthorized", "Unauthorized", str(error), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(BadSession)
    async def bad_session(_request: Request, error: BadSession) -> Response:
        return problem(401, "shopper-session", "Shopper session needed", str(error))

    @app.exception_handler(Forbidden)
    async def forbidden(_request: Request, error: Forbidden) -> Response:
        return problem(403, "forbidden", "Forbidden", str(error))

    @app.exception_handler(RateLimited)
    async def rate_limited(_request: Request, error: RateLimited) -> Response:
        return problem(
            429, "rate-limited", "Too many requests", str(error), headers={"Retry-After": str(error.retry_after)}
        )

    @app.exception_handler(KeyProblem)
    async def key_problem(_request: Request, error: KeyProblem) -> Response:
        return problem(400, "idempotency-key", "Idempotency-Key needed", str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed", 413: "Request too large"}
        kind = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(error.status_code, "http-error")
        return problem(
            error.status_code,
            kind,
            titles.get(error.status_code, "HTTP error"),
            str(error.detail),
            headers=dict(error.headers or {}),
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> Response:
        # Logged with its type only: an unexpected error's message may quote anything it was handed.
        server_log.error("unexpected %s", type(error).__name__)
        return problem(500, "internal", "Internal error", "the server failed; it is safe to retry with the same key")


class _HttpMiddleware(abc.ABC):
    """A plain ASGI middleware that acts on HTTP requests and passes anything else (lifespan) through."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    @abc.abstractmethod
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request."""


class _RequestLog(_HttpMiddleware):
    """One JSON line per request, with an id echoed to the caller; never headers, bodies or queries.

    A plain ASGI middleware: it wraps ``send`` to stamp the id and learn the status, so the response
    streams through untouched (no task group or memory stream per request, as a ``call_next`` one has).
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = ""
        for name, value in scope.get("headers") or ():
            if name == _REQUEST_ID_HEADER:
                request_id = value.decode("latin-1")
                break
        if not (0 < len(request_id) <= 64 and request_id.isascii() and request_id.isprintable()):
            request_id = uuid.uuid4().hex
        stamp = (_REQUEST_ID_HEADER, request_id.encode("latin-1"))
        status = 500
        started = time.perf_counter()
        recorded = False

        def record() -> None:
            nonlocal recorded
            recorded = True
            elapsed = time.perf_counter() - started
            method = scope["method"]
            route = route_template(scope)
            observe(route, method, status, elapsed)
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": method,
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    }
                )
            )

        async def stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(name, value) for name, value in message.get("headers", ()) if name != stamp[0]]
                message = {**message, "headers": [*headers, stamp]}
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not recorded:
                # Counted before the last of the body leaves: a client that has its answer can already see
                # it in /metrics (recorded after sending, a scrape right after the answer could miss it).
                record()
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        finally:
            if not recorded:
                record()


_REQUEST_ID_HEADER = REQUEST_ID.lower().encode("latin-1")


class _BodyLimit(_HttpMiddleware):
    """413 for a body over the manifest's ``api.max_body_bytes``, whether it says its length or streams."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = api_in_scope(scope)
        limit = api.stack.manifest.api.max_body_bytes if api is not None else DEFAULT_MAX_BODY_BYTES
        declared = dict(scope.get("headers") or []).get(b"content-length")

        def too_large() -> Response:
            return problem(413, "too-large", "Request too large", f"the body may be at most {limit} bytes")

        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await too_large()(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await too_large()(scope, receive, send)


class _Cors(_HttpMiddleware):
    """CORS for web channels: an origin a store key lists in ``cors`` may call the API from a browser.

    A preflight carries no key, so it is answered for the origins any key lists; the request itself is then
    refused (403) when its key does not list the origin it came from (see store.store_key).
    """

    ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, Shopper-Token, Order-Token, If-Match, X-Request-Id"
    EXPOSED_HEADERS = "Idempotent-Replayed, X-Request-Id, Retry-After, ETag"

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        api = api_in_scope(scope)
        allowed = origin != "" and api is not None and origin in api.cors_origins
        if scope["method"] == "OPTIONS" and origin and b"access-control-request-method" in headers:
            if not allowed:
                await problem(403, "cors", "Origin not allowed", "no key of this stack lists this origin")(
                    scope, receive, send
                )
                return
            response = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
                    "Access-Control-Allow-Headers": self.ALLOWED_HEADERS,
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
            await response(scope, receive, send)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-expose-headers", self.EXPOSED_HEADERS.encode()),
                    (b"vary", b"Origin"),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_cors)


class _TooLarge(Exception):
    pass
