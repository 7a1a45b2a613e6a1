"""Blocks' own routes (the ``stack_routes`` hook), mounted under ``/blocks/{block_id}``.

The core checks no API key here: a block authenticates its callers itself (a provider's signature). What
the core does give every block route is the server's frame: the body limit and the access log (outer
middleware), and problem documents for what the block's app raises before it answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retailblocks.errors import RetailBlocksError
from retailblocks.hookspecs import lifecycle
from retailblocks.http.problems import problem, problem_for
from retailblocks.http.state import api_in_scope
from retailblocks.stack import Stack

server_log = logging.getLogger("retailblocks.http")

#: Where blocks' routes live: ``/blocks/{block_id}/…``.
PREFIX = "/blocks"


@attrs.frozen
class RouteTemplate:
    """What the access log and the metrics name a request by: a block's routes are one template per block,
    never the raw path (a block's paths may carry ids without bound)."""

    path: str


def block_apps(stack: Stack) -> dict[str, ASGIApp]:
    """Each block's routes, by block id; a block answering something that is not callable fails at once,
    naming the block, rather than at its first request."""
    found: dict[str, ASGIApp] = {}
    for block_id, app in stack.hooks.each(lifecycle.stack_routes, stack):
        if app is None:
            continue
        if not callable(app):
            raise TypeError(f"block {block_id!r} answered stack_routes with {type(app).__name__}, not an ASGI app")
        found[block_id] = app
    return found


class BlockRoutes:
    """The ASGI app mounted at ``/blocks``: sends each request to its block's app, under the block's prefix.

    The blocks' apps are read from the server's state, where they are put once the stack is assembled
    (which, for ``blocks serve``, happens when the server starts, after the routes are declared).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # blocks' routes speak HTTP only (a lifespan or websocket scope never reaches a block)
        block_id, _, rest = scope["path"].removeprefix(scope.get("root_path", "")).lstrip("/").partition("/")
        app = self._served(scope).get(block_id)
        if app is None:
            await problem(404, "not-found", "Not found", "no block of this stack has routes here")(scope, receive, send)
            return
        scope["route"] = RouteTemplate(f"{PREFIX}/{block_id}/*")
        # ASGI: path keeps root_path; the block's app routes on what follows it ("/notifications").
        prefix = f"{scope.get('root_path', '')}/{block_id}"
        child = {key: value for key, value in scope.items() if key != "raw_path"}
        child.update(root_path=prefix, path=f"{prefix}/{rest}")
        started = False
        frame_failed = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def watched_receive() -> Message:
            nonlocal frame_failed
            try:
                return await receive()
            except BaseException:
                # The server's own frame refused the request (the body limit): its answer, not the block's.
                frame_failed = True
                raise

        try:
            await app(child, watched_receive, watched_send)
        except Exception as error:
            if started or frame_failed:
                raise
            await self._problem(block_id, error)(scope, receive, send)

    @staticmethod
    def _problem(block_id: str, error: Exception) -> ASGIApp:
        if isinstance(error, RetailBlocksError):
            return problem_for(error)
        # The type only: a block's own message may quote what it was handed.
        server_log.error("block %s route failed: %s", block_id, type(error).__name__)
        return problem(502, "block-failed", "A block failed", f"block {block_id!r} failed to answer")

    @staticmethod
    def _served(scope: Scope) -> Mapping[str, ASGIApp]:
        api = api_in_scope(scope)
        return api.block_apps if api is not None else {}
