"""Serving a platform: every merchant from one app, under ``/m/{merchant}/…``.

One FastAPI app (the same routes as a single stack's) serves them all: :class:`PlatformRouter`, in front of
it, takes ``/m/{merchant}`` off the path, finds the merchant's :class:`~retailblocks.http.state.Api` (its
stack, assembled on the first request, its keys, its idempotent requests) and puts it in the request's
scope, where every route looks for it. A merchant's keys are checked against its own key ring only, so
they open nothing of another merchant; an unknown merchant answers 404 and a paused one 503, both as
problem documents. The merchants' statuses are read from the platform's table (every few seconds), so a
pause or a merchant added reaches every worker without a restart.

While it serves, two threads of each worker go over the active merchants as a single stack's server does
for its one: a periodic recovery (flows a dead worker left half-way are finished or undone once their lease
runs out, whether or not anyone asks for that merchant), and webhook delivery for the merchants that
declare webhooks. Both are safe in every worker at once: flows and subscribers are leased in the database.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import parse_qsl

import sqlalchemy as sa
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from retailblocks.errors import RetailBlocksError, UnknownObject
from retailblocks.http.app import _new_app, limit_request_threads
from retailblocks.http.auth import KeyRing, Unauthorized
from retailblocks.http.problems import problem, problem_for
from retailblocks.http.state import API_SCOPE_KEY, Api, api_for
from retailblocks.platform.manifest import MerchantStatus
from retailblocks.platform.operations import Platform, open_platform
from retailblocks.stack import Stack

server_log = logging.getLogger("retailblocks.http")
_MERCHANT_PATH = re.compile(r"^/m/([a-z0-9][a-z0-9-]{0,39})(/.*)?$")
#: Served without a merchant: the process's own health.
_PLATFORM_PATHS = ("/healthz",)


class PlatformRouter:
    """The ASGI app of a platform: ``/m/{merchant}/…`` to the shared app, with the merchant's Api."""

    def __init__(self, platform: Platform, app: FastAPI):
        self.platform = platform
        self.app = app
        self._apis: dict[str, Api] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path in _PLATFORM_PATHS:
            await self.app(scope, receive, send)
            return
        if path == "/readyz":
            ready = await run_in_threadpool(self.ready)
            await JSONResponse(
                {"status": "ready" if ready == "ok" else "not ready", "checks": {"platform database": ready}},
                status_code=200 if ready == "ok" else 503,
            )(scope, receive, send)
            return
        if path == "/platform" or path.startswith("/platform/"):
            response = await run_in_threadpool(
                self.platform_route, scope["method"], path, _bearer(scope), _query(scope)
            )
            await response(scope, receive, send)
            return
        found = _MERCHANT_PATH.match(path)
        if found is None:
            await problem(404, "not-found", "Not found", "a platform serves its merchants under /m/{merchant}/")(
                scope, receive, send
            )
            return
        merchant_id, rest = found.group(1), found.group(2) or "/"
        try:
            api = await run_in_threadpool(self.api, merchant_id)
        except _Paused as paused:
            if paused.moving:
                response = problem(
                    503,
                    "merchant-moving",
                    "Merchant moving",
                    f"merchant {merchant_id!r} is being moved to another database; try again shortly",
                    headers={"Retry-After": "5"},
                )
            else:
                response = problem(
                    503,
                    "merchant-paused",
                    "Merchant paused",
                    f"merchant {merchant_id!r} is paused by the platform; try again later",
                    headers={"Retry-After": "60"},
                )
            await response(scope, receive, send)
            return
        except UnknownObject:
            await problem(404, "unknown-merchant", "Unknown merchant", f"no merchant {merchant_id!r} here")(
                scope, receive, send
            )
            return
        except RetailBlocksError as error:
            await problem_for(error)(scope, receive, send)
            return
        if rest.startswith("/platform/rights/"):
            body = await _body(receive)
            response = await run_in_threadpool(
                self.rights_route, merchant_id, api, scope["method"], rest, _bearer(scope), _query(scope), body
            )
            await response(scope, receive, send)
            return
        prefix = f"/m/{merchant_id}"
        inner = {
            **scope,
            "path": rest,
            "raw_path": rest.encode("latin-1"),
            "root_path": scope.get("root_path", "") + prefix,
            API_SCOPE_KEY: api,
        }
        await self.app(inner, receive, send)

    def api(self, merchant_id: str) -> Api:
        """The merchant's Api if it is registered and active; raises UnknownObject or _Paused."""
        status = self.platform.statuses().get(merchant_id)
        if status is None:
            # Perhaps added since: read the table (and the file, for its manifest) again before saying no.
            status = self.platform.statuses(fresh=True).get(merchant_id)
        if status is None:
            raise UnknownObject(f"no merchant {merchant_id!r}")
        if status is not MerchantStatus.ACTIVE:
            raise _Paused(moving=status is MerchantStatus.MOVING)
        if not any(entry.id == merchant_id for entry in self.platform.manifest.merchants):
            self.platform.reload()
        # The platform's stack of the merchant is the one on the database it lives on now (a move
        # replaces it); an Api kept for an earlier stack is made again.
        stack = self.platform.stack(merchant_id)
        with self._lock:
            api = self._apis.get(merchant_id)
        if api is not None and api.stack is stack:
            return api
        # As a single stack's server does at start: flows a crash left half-way are finished or undone.
        stack.recover()
        with self._lock:
            api = self._apis.get(merchant_id)
            if api is None or api.stack is not stack:
                api = self._apis[merchant_id] = api_for(stack)
            return api

    def move(self, merchant_id: str, query: dict[str, str] | None) -> Response:
        """``POST /platform/merchants/{merchant}/move?to=DATABASE``: the move of ``blocks platform move``,
        run to its end in this request (the merchant answers 503 meanwhile)."""
        from retailblocks.platform.move import move_merchant

        target = (query or {}).get("to")
        if not target:
            return problem(400, "invalid-input", "Invalid input", "name the database to move to: ?to=DATABASE")
        try:
            moved = move_merchant(self.platform, merchant_id, target)
        except RetailBlocksError as error:
            return problem_for(error)
        self.platform.statuses(fresh=True)
        return JSONResponse(moved.as_json())

    def settlement(self, query: dict[str, str]) -> Response:
        """``GET /platform/settlement?period=2026-11[&merchant=ID]``: each merchant's statement with the
        platform, as ``blocks platform settle --json`` prints it (the same function)."""
        from retailblocks.platform.rights import parse_period, settlement_json

        try:
            start, end = parse_period(query.get("period", ""))
            merchant = query.get("merchant")
            settlement = self.platform.settle(start, end, [merchant] if merchant else None)
        except RetailBlocksError as error:
            return problem_for(error)
        return JSONResponse(settlement_json(settlement))

    def rights_route(
        self,
        merchant_id: str,
        api: Api,
        method: str,
        path: str,
        presented: str | None,
        query: dict[str, str],
        body: bytes,
    ) -> Response:
        """``/m/{merchant}/platform/rights/…``: the platform's shared rights, for the merchant's own keys
        (scope ``orders:write``; ``orders:read`` for a balance), acting for that merchant only — the same
        :class:`~retailblocks.platform.rights.SharedRights` calls a block makes in process."""
        from retailblocks.platform.rights import entry_json

        try:
            caller = api.keys.authenticate(presented)
        except Unauthorized as error:
            return problem(401, "unauthorized", "Unauthorized", str(error), headers={"WWW-Authenticate": "Bearer"})
        action = path.removeprefix("/platform/rights/")
        if action == "balance" and method == "GET":
            if not caller.allows("orders", "read"):
                return problem(403, "forbidden", "Forbidden", "this key lacks the scope orders:read")
            try:
                balance = self.platform.rights.balance(query.get("member", ""))
            except RetailBlocksError as error:
                return problem_for(error)
            value = {"amount": balance.value.amount, "currency": balance.value.currency}
            return JSONResponse({"member": balance.member, "points": balance.points, "value": value})
        if method != "POST" or action not in _RIGHTS_ACTIONS:
            return problem(404, "not-found", "Not found", "the rights routes: GET balance?member=…, POST "
                           + ", ".join(sorted(_RIGHTS_ACTIONS)))  # fmt: skip
        if not caller.allows("orders", "write"):
            return problem(403, "forbidden", "Forbidden", "this key lacks the scope orders:write")
        try:
            fields = json.loads(body or b"{}")
        except ValueError:
            return problem(400, "invalid-input", "Invalid input", "the body is not JSON")
        allowed, required = _RIGHTS_ACTIONS[action]
        if not isinstance(fields, dict) or set(fields) - set(allowed) or set(required) - set(fields):
            optional = sorted(set(allowed) - set(required))
            also = f" (and optionally {', '.join(optional)})" if optional else ""
            return problem(
                400, "invalid-input", "Invalid input", f"{action} takes a JSON object with {', '.join(required)}{also}"
            )
        if any(not isinstance(fields[name], bool if name == "refund" else int if name == "points" else str)
               or isinstance(fields[name], bool) != (name == "refund") for name in fields):  # fmt: skip
            return problem(400, "invalid-input", "Invalid input", "member, code, reference and key are strings, "
                           "points a whole number, refund true or false")  # fmt: skip
        rights = self.platform.rights
        try:
            if action in ("points/earn", "points/spend"):
                operation = rights.earn if action == "points/earn" else rights.spend
                entry = operation(merchant_id, fields["member"], fields["points"], reference=fields["reference"],
                                  key=fields["key"])  # fmt: skip
            elif action == "points/reverse":
                entry = rights.reverse_points(merchant_id, fields["key"])
            elif action == "coupons/redeem":
                entry = rights.redeem_coupon(merchant_id, fields["code"], reference=fields["reference"],
                                             key=fields["key"])  # fmt: skip
            else:
                released = rights.release_coupon(merchant_id, fields["key"], refund=fields.get("refund", False))
                if released is None:
                    return JSONResponse({"released": False, "reason": "the coupon's on_refund is keep"})
                entry = released
        except RetailBlocksError as error:
            return problem_for(error)
        return JSONResponse(entry_json(entry))

    def ready(self) -> str:
        """Whether the platform's table answers (each merchant's own readiness is /m/{merchant}/readyz)."""
        try:
            self.platform.statuses(fresh=True)
        except (RetailBlocksError, sa.exc.SQLAlchemyError) as error:
            return f"unreachable ({type(error).__name__})"
        return "ok"

    def platform_route(
        self, method: str, path: str, presented: str | None, query: dict[str, str] | None = None
    ) -> Response:
        """The platform's own routes, for its keys (``platform:read``, ``platform:write``): the merchants
        with their live status, and pausing or resuming one (the functions ``blocks platform`` calls)."""
        try:
            caller = KeyRing(self.platform.manifest.keys).authenticate(presented)
        except Unauthorized as error:
            return problem(401, "unauthorized", "Unauthorized", str(error), headers={"WWW-Authenticate": "Bearer"})
        if path == "/platform/merchants" and method == "GET":
            if not caller.allows("platform", "read"):
                return problem(403, "forbidden", "Forbidden", "this key lacks the scope platform:read")
            statuses = self.platform.statuses(fresh=True)
            merchants = [
                {
                    "id": entry.id,
                    "database": self.platform.database_of(entry.id),
                    "status": statuses[entry.id].value if entry.id in statuses else "unassembled",
                }
                for entry in self.platform.manifest.merchants
            ]
            return JSONResponse({"merchants": merchants})
        if path == "/platform/settlement" and method == "GET":
            if not caller.allows("platform", "read"):
                return problem(403, "forbidden", "Forbidden", "this key lacks the scope platform:read")
            return self.settlement(query or {})
        action = _ACTION.match(path)
        if action is None or method != "POST":
            return problem(404, "not-found", "Not found", "the platform's routes: GET /platform/merchants, "
                           "GET /platform/settlement?period=PERIOD, "
                           "POST /platform/merchants/{merchant}/pause|resume|move?to=DATABASE")  # fmt: skip
        if not caller.allows("platform", "write"):
            return problem(403, "forbidden", "Forbidden", "this key lacks the scope platform:write")
        if action.group(2) == "move":
            return self.move(action.group(1), query)
        status = MerchantStatus.PAUSED if action.group(2) == "pause" else MerchantStatus.ACTIVE
        try:
            summary = self.platform.set_status(action.group(1), status)
        except RetailBlocksError as error:
            return problem_for(error)
        self.platform.statuses(fresh=True)
        return JSONResponse({"id": summary.id, "status": summary.status, "database": summary.database})


#: Each rights action's body fields: (allowed, required).
_RIGHTS_ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "points/earn": (("member", "points", "reference", "key"), ("member", "points", "reference", "key")),
    "points/spend": (("member", "points", "reference", "key"), ("member", "points", "reference", "key")),
    "points/reverse": (("key",), ("key",)),
    "coupons/redeem": (("code", "reference", "key"), ("code", "reference", "key")),
    "coupons/release": (("key", "refund"), ("key",)),
}
#: The most a rights request's body may be.
_MAX_RIGHTS_BODY = 16_384


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= _MAX_RIGHTS_BODY:
            chunks.append(chunk)
        more = message.get("more_body", False)
    # An oversized body is cut short, so it is not JSON: answered 400.
    return b"".join(chunks)


_ACTION = re.compile(r"^/platform/merchants/([a-z0-9][a-z0-9-]{0,39})/(pause|resume|move)$")


def _query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            text = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            return token if scheme.lower() == "bearer" else None
    return None


class _Paused(Exception):
    def __init__(self, *, moving: bool):
        super().__init__()
        self.moving = moving


def create_platform_app(
    platform: Platform | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    recover_every: float | None = None,
    webhook_interval: float | None = None,
    threads: int | None = None,
) -> PlatformRouter:
    """The ASGI app serving ``platform`` (or the platform at ``path``, opened when the server starts and
    closed when it stops). Merchants' stacks are assembled on their first request, or by the sweeps.

    With ``recover_every`` (what ``blocks serve`` sets) a thread recovers every active merchant that often;
    with ``webhook_interval`` another delivers the webhooks of every active merchant that declares some.
    ``threads`` caps the requests running at once in this process (see :func:`limit_request_threads`)."""
    if (platform is None) == (path is None):
        raise TypeError("create_platform_app takes a platform or a path, not both")
    opened = platform if platform is not None else open_platform(path)  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        limit_request_threads(threads)
        try:
            server_log.info("serving platform %s", json.dumps({"merchants": len(opened.manifest.merchants)}))
            with (
                _sweeping(opened, "recovery", recover_every, _recover),
                _sweeping(opened, "webhooks", webhook_interval, _deliver),
            ):
                yield
        finally:
            if platform is None:
                opened.close()

    return PlatformRouter(opened, _new_app(lifespan))


def _recover(stack: Stack) -> None:
    report = stack.recover()
    if report.resumed or report.compensated or report.stuck:
        counts = {"resumed": len(report.resumed), "compensated": len(report.compensated), "stuck": len(report.stuck)}
        server_log.info("recovered %s: %s", stack.manifest.merchant.id, json.dumps(counts))


def _deliver(stack: Stack) -> None:
    from retailblocks.events.webhooks import deliver_webhooks

    if stack.manifest.webhooks:
        # What marketplace and social channels may now sell goes out in the same round, as for one stack.
        stack.publish_listings()
        deliver_webhooks(stack)


@contextmanager
def _sweeping(platform: Platform, name: str, every: float | None, work: Callable[[Stack], None]) -> Iterator[None]:
    """Run ``work`` on each active merchant's stack every ``every`` seconds in a thread of its own."""
    if every is None:
        yield
        return
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(every):
            for entry in platform.manifest.merchants:
                if stop.is_set():
                    return
                # Read again before each merchant: a paused or moving merchant's storage is not written to.
                if platform.statuses().get(entry.id) is not MerchantStatus.ACTIVE:
                    continue
                try:
                    work(platform.stack(entry.id))
                except (RetailBlocksError, sa.exc.SQLAlchemyError, OSError) as error:
                    # Logged by type: a database error's text can quote statement parameters.
                    server_log.warning("%s of merchant %s failed (%s); trying again", name, entry.id,
                                       type(error).__name__)  # fmt: skip

    worker = threading.Thread(target=sweep, name=f"platform-{name}", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=5.0)
