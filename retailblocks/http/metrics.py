"""Prometheus metrics at ``/metrics``, for an admin key with the ``metrics:read`` scope (or ``*``).

Two kinds of figures, so that every worker of ``blocks serve --workers N`` reports the same thing:

- what a worker sees pass (requests by method, route template and status; their latency) is counted in
  the worker, and with several workers kept in ``PROMETHEUS_MULTIPROC_DIR`` (which ``blocks serve`` makes,
  and removes on exit) so that any worker's scrape adds up all of them;
- what the stack's state says (checkouts by outcome, flows recovered, unfinished flows, outbox lag, dead
  letters, webhook delivery failures) is read from the database at scrape time.

Labels are bounded: a route is its template (``/store/orders/{order_id}``), never the raw path; a block's
routes are one template per block; unknown paths are ``unmatched`` and unusual methods ``OTHER``. No label
carries a key, a token or anything a caller sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from retailblocks.events.positions import behind
from retailblocks.hookspecs import lifecycle
from retailblocks.http.admin._common import READ_PROBLEMS, ApiDep, scoped
from retailblocks.http.block_routes import RouteTemplate
from retailblocks.manifest.api import ApiKey
from retailblocks.model import OrderStatus
from retailblocks.stack import Stack
from retailblocks.storage.tables import event_cursors, event_failures, orders, sagas

#: Set (by ``blocks serve --workers N``) to the directory the workers share their counts in.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: Seconds: a cached read is a few milliseconds, a checkout tens of them, anything past 5 s is trouble.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The worker's own counts, in a registry of their own (never the process-wide default one, which would
# add whatever else the process registered). With several workers their values live in the shared
# directory, read back through MultiProcessCollector.
_WORKER = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "retailblocks_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
    registry=_WORKER,
)
LATENCY = Histogram(
    "retailblocks_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ("method", "route"),
    buckets=_LATENCY_BUCKETS,
    registry=_WORKER,
)

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics (text exposition format); needs an admin key with metrics:read",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}, **READ_PROBLEMS},
)
async def metrics(caller: Annotated[ApiKey, Depends(scoped("metrics", "read"))], api: ApiDep) -> Response:
    body = await run_in_threadpool(exposition, api.stack)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def exposition(stack: Stack) -> bytes:
    """Every metric in the text format: the workers' counts and the stack's state, read now."""
    return generate_latest(_Scrape(stack))


def observe(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request to ``route`` (its template, :func:`route_template`), called by the access
    log middleware, which times every request."""
    method = method if method in _METHODS else "OTHER"
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/admin/orders/{order_id}``), ``unmatched`` if none did.

    FastAPI's route object knows only its path within its own router (``/orders/{order_id}``); the routers'
    prefixes in front of it are static, so they are the leading segments of the request's path. The result
    is kept only if it is one of the app's own templates (the OpenAPI document's paths); otherwise the
    route's own template stands. Either way the label is a template written in the code, never a value sent.
    """
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    if isinstance(route, RouteTemplate):
        return route.path
    own = str(getattr(route, "path_format", "") or "")
    if not own:
        return UNMATCHED
    path = str(scope.get("path", "")).removeprefix(str(scope.get("root_path", "")))
    segments = path.strip("/").split("/")
    own_segments = own.strip("/").split("/") if own.strip("/") else []
    prefix = segments[: len(segments) - len(own_segments)] if len(segments) >= len(own_segments) else []
    candidate = "/" + "/".join([*prefix, *own_segments]) if prefix or own_segments else "/"
    app = scope.get("app")
    if isinstance(app, FastAPI) and candidate in _templates(app):
        return candidate
    return own


def _templates(app: FastAPI) -> frozenset[str]:
    known: frozenset[str] | None = getattr(app.state, "route_templates", None)
    if known is None:
        known = frozenset(app.openapi().get("paths", {}))
        app.state.route_templates = known
    return known


class _Scrape:
    """What one scrape collects: the workers' counts and the stack's state."""

    def __init__(self, stack: Stack):
        self.stack = stack

    def collect(self) -> Iterator[Metric]:
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            shared = CollectorRegistry()
            MultiProcessCollector(shared, path=directory)  # type: ignore[no-untyped-call]
            yield from shared.collect()
        else:
            yield from _WORKER.collect()
        yield from stack_state(self.stack)


_ORDERS_BY_STATUS = sa.select(orders.c.status, sa.func.count()).group_by(orders.c.status)
# Grouped by plain columns (an expression with a bound value in GROUP BY is not the same expression as in
# the select list to PostgreSQL); the few groups are folded in Python.
_SAGAS_BY_STATE = sa.select(sagas.c.flow, sagas.c.status, sagas.c.attempts, sa.func.count()).group_by(
    sagas.c.flow, sagas.c.status, sagas.c.attempts
)
_SUBSCRIBERS = sa.select(event_cursors.c.subscriber)
_FAILURES = (
    sa.select(event_failures.c.subscriber, event_failures.c.dead, sa.func.count())
    .where(event_failures.c.delivered_at.is_(None))
    .group_by(event_failures.c.subscriber, event_failures.c.dead)
)


def stack_state(stack: Stack) -> Iterable[Metric]:
    """The figures read from the database, the same whichever worker is asked."""
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        by_status = {str(status): int(count) for status, count in connection.execute(_ORDERS_BY_STATUS)}
        sagas_by_state = [(str(f), str(s), a > 0, int(n)) for f, s, a, n in connection.execute(_SAGAS_BY_STATE)]
        # The stack's listeners are owed every event from the start until they have a cursor; webhooks
        # and the listings publisher count once they have one.
        subscribers = {*stack.hooks.implementers(lifecycle.stack_event), *connection.execute(_SUBSCRIBERS).scalars()}
        slowest_lag = max((behind(connection, subscriber) for subscriber in subscribers), default=0)
        failures = [
            (str(subscriber).startswith("webhook:"), bool(dead), int(n))
            for subscriber, dead, n in connection.execute(_FAILURES)
        ]
        connection.rollback()
    checkouts = GaugeMetricFamily(
        "retailblocks_checkouts",
        "Orders by where their checkout ended (the order's status: pending while it runs, failed if undone).",
        labels=("outcome",),
    )
    for outcome in OrderStatus:
        checkouts.add_metric((outcome.value,), by_status.get(outcome.value, 0))
    recovered = GaugeMetricFamily(
        "retailblocks_flows_recovered",
        "Flows recovery took over from a process that stopped (their owner's epoch raised), by flow and status.",
        labels=("flow", "status"),
    )
    unfinished = GaugeMetricFamily(
        "retailblocks_flows_unfinished",
        "Flows left half-way: running (recovery takes them once their lease ends) or stuck (waiting for an operator).",
        labels=("flow", "status"),
    )
    taken: dict[tuple[str, str], int] = {}
    open_flows: dict[tuple[str, str], int] = {}
    for flow, status, was_recovered, count in sagas_by_state:
        if was_recovered:
            taken[(flow, status)] = taken.get((flow, status), 0) + count
        if status in ("running", "stuck"):
            open_flows[(flow, status)] = open_flows.get((flow, status), 0) + count
    for labels, count in sorted(taken.items()):
        recovered.add_metric(labels, count)
    for labels, count in sorted(open_flows.items()):
        unfinished.add_metric(labels, count)
    lag = GaugeMetricFamily(
        "retailblocks_outbox_lag_events",
        "Events recorded but not yet handed to the slowest subscriber.",
    )
    lag.add_metric((), slowest_lag)
    dead_letters = GaugeMetricFamily("retailblocks_dead_letters", "Event deliveries given up after too many tries.")
    webhooks = GaugeMetricFamily(
        "retailblocks_webhook_failures",
        "Webhook deliveries that failed and are not delivered yet: retrying, or dead (given up).",
        labels=("state",),
    )
    webhook_counts = {"retrying": 0, "dead": 0}
    dead_total = 0
    for is_webhook, dead, count in failures:
        dead_total += count if dead else 0
        if is_webhook:
            webhook_counts["dead" if dead else "retrying"] += count
    dead_letters.add_metric((), dead_total)
    for state, count in webhook_counts.items():
        webhooks.add_metric((state,), count)
    return [checkouts, recovered, unfinished, lag, dead_letters, webhooks]
