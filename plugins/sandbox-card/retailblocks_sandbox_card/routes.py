"""The block's HTTP route, mounted by the core under ``/blocks/<block id>`` (the ``stack_routes`` hook).

``POST /notifications``: the gateway's signed notification of a timed-out authorization's outcome (see
:mod:`retailblocks_sandbox_card.notify`). A plain ASGI app, so the block needs no web framework; errors
are raised as the core's error classes, which the core answers as problem documents.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from retailblocks.errors import UnknownObject
from retailblocks_sandbox_card.notify import SIGNATURE_HEADER

Message = MutableMapping[str, Any]
#: Verifies and records one notification: ``(body, signature header) -> the answer's document``.
Receiver = Callable[[bytes, str | None], Mapping[str, Any]]

NOTIFICATIONS = "/notifications"


def notification_app(
    receive_notification: Receiver,
) -> Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]:
    """The ASGI app of the block's route, around the block's :meth:`receive_notification`."""
    signature_header = SIGNATURE_HEADER.lower().encode("latin-1")

    async def app(
        scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        path = str(scope["path"]).removeprefix(str(scope.get("root_path", "")))
        if path != NOTIFICATIONS:
            raise UnknownObject(f"this block has one route, POST {NOTIFICATIONS}")
        if scope["method"] != "POST":
            problem = {
                "type": "urn:retailblocks:problem:method-not-allowed",
                "title": "Method not allowed",
                "status": 405,
                "detail": f"{NOTIFICATIONS} takes POST",
            }
            await _send_json(send, 405, problem)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        header = next((value for name, value in scope.get("headers", ()) if name == signature_header), None)
        # The database work is synchronous: off the event loop, like the core's own routes.
        answer = await asyncio.to_thread(
            receive_notification, body, header.decode("latin-1") if header is not None else None
        )
        await _send_json(send, 200, answer)

    return app


async def _send_json(send: Callable[[Message], Awaitable[None]], status: int, document: Mapping[str, Any]) -> None:
    body = json.dumps(document).encode("utf-8")
    content_type = b"application/json" if status < 400 else b"application/problem+json"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode("ascii"))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
