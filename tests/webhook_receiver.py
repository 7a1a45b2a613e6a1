"""A webhook receiver on 127.0.0.1 for tests: it answers as a script says (fail, time out, block, be down)
and keeps every request it was sent, checking each signature as it arrives."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from retailblocks.events.webhooks import InvalidSignature, verify_webhook
from retailblocks.stack import Stack

SECRET = "whsec_0123456789abcdefghijklmnop"
ENV = {"HOOK_SECRET": SECRET}


def webhooks_section(url: str, *, max_attempts: int = 8, timeout: float = 0.5, events: str = '["order."]') -> str:
    return f"""
webhooks:
  - id: erp
    url: "{url}/erp"
    events: {events}
    secret: ${{HOOK_SECRET}}
    timeout_seconds: {timeout}
    max_attempts: {max_attempts}
"""


def order_event_ids(stack: Stack) -> list[int]:
    return [event.id for event in stack.events(limit=10_000) if event.type.startswith("order.")]


@attrs.define
class Received:
    event_id: int
    event_type: str
    subscriber_path: str
    signature_valid: bool
    answered: int  # the status the receiver answered (0: it slept past the sender's timeout)


class Receiver:
    """``script`` is consumed one action per request: ``"ok"``, ``"fail"`` (500), ``"slow"`` (sleeps
    ``slow_seconds``, then 200: the sender has given up by then) or ``"block"`` (waits for
    :meth:`release`); when it runs out, ``"ok"``."""

    def __init__(self, secret: str, now: Callable[[], datetime], *, slow_seconds: float = 1.5):
        self.secret = secret
        self.now = now
        self.slow_seconds = slow_seconds
        self.script: list[str] = []
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}
        self.blocked = threading.Event()  # set while a "block" request waits
        self._released = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Close the port: connections are refused until :meth:`up`."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def release(self) -> None:
        self._released.set()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["Content-Length"]))
        path = request.path
        with self.lock:
            action = self.script.pop(0) if self.script else "ok"
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.most_in_flight[path] = max(self.most_in_flight.get(path, 0), self.in_flight[path])
        counted = True

        def done() -> None:
            nonlocal counted
            if counted:
                with self.lock:
                    self.in_flight[path] -= 1
                counted = False

        try:
            try:
                verify_webhook(self.secret, dict(request.headers.items()), body, self.now())
                valid = True
            except InvalidSignature:
                valid = False
            document = json.loads(body)
            status = 200
            if action == "fail":
                status = 500
            elif action == "slow":
                time.sleep(self.slow_seconds)
            elif action == "block":
                self.blocked.set()
                self._released.wait(30)
            else:
                time.sleep(0.01)  # long enough for a second sender to overlap, if one could
            with self.lock:
                self.received.append(
                    Received(document["id"], document["type"], path, valid, 0 if action == "slow" else status)
                )
            # No longer in flight once answered: the sender may send its next request as soon as it reads the
            # answer, possibly before this thread runs again.
            done()
            try:
                request.send_response(status)
                request.send_header("Content-Length", "0")
                request.end_headers()
            except OSError:
                pass  # the sender gave up waiting
        finally:
            done()

    def accepted(self, path: str = "/") -> list[int]:
        """Event ids in the order they were first received whole (answered 2xx, or in time for it)."""
        seen: list[int] = []
        with self.lock:
            for item in self.received:
                if item.subscriber_path == path and item.answered in (0, 200) and item.event_id not in seen:
                    seen.append(item.event_id)
        return seen
