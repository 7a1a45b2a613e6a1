"""The retail day through the wire (``blocks demo --http``): the stack served by ``blocks serve`` in its own
processes, and the day's shoppers, tills and back office as HTTP clients in processes of their own.

Shoppers check out with their channel's store key (``POST /store/orders``, a replay under the same
Idempotency-Key); the back office receives the opening stock, issues gift cards, runs the midday
campaigns, cancels and refunds, writes off a broken item and recovers flows through ``/admin``. What has
no HTTP face because it is not the merchant's to send — carriers reporting parcels, members who joined
before the day, partner programmes — happens beside the server, in the database it shares, as the
outside world would. The summary and the invariants are read from that database as for a day in process.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import attrs

from retailblocks.errors import BusinessRejection, EnvironmentFailure, InvalidInput, RetailBlocksError
from retailblocks.manifest.api import key_digest
from retailblocks.model import Cart, Channel, Money

#: How long the server may take to start and report ready.
START_SECONDS = 60.0
#: Shoppers a client process takes at a time (the progress bar moves by this much).
CHUNK = 8


@attrs.frozen
class Keys:
    """The keys the day's clients use: one store key per channel, one admin key. Only their digests are
    written (see :func:`api_section`), so a kept directory serves again without them."""

    store: Mapping[str, str]
    admin: str

    @classmethod
    def new(cls, channels: Sequence[Channel]) -> Keys:
        return cls({c.id: f"rb_pk_{secrets.token_hex(16)}" for c in channels}, f"rb_sk_{secrets.token_hex(16)}")


def api_section(channels: Sequence[Channel], keys: Keys) -> str:
    """The ``api:`` section giving each channel a store key and the back office an admin key, by digest."""
    lines = ["", "api:", "  keys:"]
    for channel in channels:
        digest = key_digest(keys.store[channel.id])
        lines.append(
            f'    - {{id: {channel.id}-clients, channel: {channel.id}, key: "sha256:{digest}", '
            "rate_per_minute: 1000000}"
        )
    lines.append(
        f'    - {{id: back-office, scopes: ["*"], key: "sha256:{key_digest(keys.admin)}", rate_per_minute: 1000000}}'
    )
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(manifest: Path, *, workers: int) -> Iterator[str]:
    """``blocks serve`` for ``manifest`` on a free local port until the block ends; yields its base URL."""
    port = free_port()
    log = (manifest.parent / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retailblocks.cli",
            "serve",
            "-m",
            str(manifest),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process, manifest.parent / "serve.log")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    client = Client(base, "")
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                raise EnvironmentFailure(f"blocks serve stopped at start (exit {process.returncode}): {tail}")
            try:
                status, _ = client.request("GET", "/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
    finally:
        client.close()
    raise EnvironmentFailure(f"blocks serve did not report ready within {START_SECONDS:.0f} s (its log: {log})")


class Client:
    """JSON over one kept-alive HTTP connection, with a bearer key."""

    def __init__(self, base: str, key: str):
        host, _, port = base.removeprefix("http://").partition(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=60)
        self._key = key

    def request(
        self, method: str, path: str, body: Any = None, *, idempotency_key: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        payload = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            try:
                self._connection.request(method, path, body=payload, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as error:
                # Closed, the connection opens afresh on the next request. A kept-alive connection the server
                # closed meanwhile is tried once more: every POST carries its Idempotency-Key, so sending it
                # again cannot do anything twice.
                self._connection.close()
                stale = isinstance(error, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError)
                if attempt == 2 or not stale:
                    raise
        return response.status, json.loads(data) if data else None

    def close(self) -> None:
        self._connection.close()


def cart_document(cart: Cart) -> dict[str, Any]:
    """``cart`` as the store API's cart (its channel is the key's)."""
    fulfilment: dict[str, Any] = {"kind": cart.fulfilment.kind.value}
    address = cart.fulfilment.address
    if address is not None:
        fulfilment["address"] = {
            name: getattr(address, name)
            for name in ("country", "region", "city", "postal_code", "line1", "name", "phone")
        }
    if cart.fulfilment.pickup_location is not None:
        fulfilment["pickup_location"] = cart.fulfilment.pickup_location
    if cart.fulfilment.option_id is not None:
        fulfilment["option_id"] = cart.fulfilment.option_id
    return {
        "lines": [{"sku": line.sku, "quantity": line.quantity} for line in cart.lines],
        "payments": [
            {"method": p.method, "amount": p.amount.amount if p.amount else None, "details": dict(p.details)}
            for p in cart.payments
        ],
        "identities": [{"kind": i.kind.value, "value": i.value} for i in cart.identities],
        "fulfilment": fulfilment,
        "coupons": list(cart.coupons),
    }


class WireError(RetailBlocksError):
    """The server answered a request of the day with an error that is not a shopper's rejection."""


def _answer(status: int, document: Any, what: str) -> Any:
    """The document of a success; a business rejection as its exception; anything else as WireError."""
    if 200 <= status < 300:
        return document
    kind = str((document or {}).get("type", "")).rpartition(":")[2]
    detail = str((document or {}).get("detail", ""))
    if status in (402, 409) and kind != "still-running":
        rejection = BusinessRejection(detail)
        rejection.cause = str(document.get("cause") or kind.replace("-", "_"))
        raise rejection
    if status in (400, 404, 422):
        raise InvalidInput(f"{what}: {detail}")
    raise WireError(f"{what}: the server answered {status} ({kind or 'no problem type'}): {detail}")


@attrs.frozen
class Purchase:
    """One shopper's checkout as a client process sends it."""

    number: int
    channel: str
    key: str
    cart: dict[str, Any]
    replay: bool


@attrs.frozen
class Outcome:
    number: int
    channel: str
    replay: bool
    order_id: str | None
    cause: str | None


def _shop_chunk(base: str, keys: Mapping[str, str], purchases: Sequence[Purchase]) -> list[Outcome]:
    """What one client process does with its shoppers: each checks out, some send their request twice."""
    clients: dict[str, Client] = {}
    outcomes: list[Outcome] = []
    try:
        for purchase in purchases:
            client = clients.get(purchase.channel) or clients.setdefault(
                purchase.channel, Client(base, keys[purchase.channel])
            )
            try:
                order = _answer(
                    *client.request("POST", "/store/orders", purchase.cart, idempotency_key=purchase.key),
                    what=f"shopper {purchase.number}",
                )
                if purchase.replay:
                    again = _answer(
                        *client.request("POST", "/store/orders", purchase.cart, idempotency_key=purchase.key),
                        what=f"shopper {purchase.number} again",
                    )
                    if again["id"] != order["id"]:
                        raise AssertionError("a replayed checkout placed a second order")
                outcomes.append(Outcome(purchase.number, purchase.channel, purchase.replay, order["id"], None))
            except BusinessRejection as rejection:
                outcomes.append(Outcome(purchase.number, purchase.channel, purchase.replay, None, rejection.cause))
    finally:
        for client in clients.values():
            client.close()
    return outcomes


class Wire:
    """The day's clients: shoppers in ``processes`` client processes, the back office in this one."""

    def __init__(self, base: str, keys: Keys, *, processes: int):
        self.base = base
        self.keys = keys
        self.processes = max(1, processes)
        self.office = Client(base, keys.admin)
        # Spawned, not forked: the parent holds database connections a child must not share. One pool for the
        # day, so its processes start once.
        self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=get_context("spawn"))

    def shop(self, purchases: Sequence[Purchase], progress: Callable[[int], None] | None) -> list[Outcome]:
        chunks = [purchases[i : i + CHUNK] for i in range(0, len(purchases), CHUNK)]
        outcomes: list[Outcome] = []
        futures = [self._pool.submit(_shop_chunk, self.base, dict(self.keys.store), chunk) for chunk in chunks]
        for future, chunk in zip(futures, chunks, strict=True):
            outcomes.extend(future.result())
            if progress is not None:
                progress(len(chunk))
        return outcomes

    def _office(self, method: str, path: str, body: Any = None, *, key: str | None = None) -> Any:
        return _answer(*self.office.request(method, path, body, idempotency_key=key), what=f"{method} {path}")

    def receive(self, sku: str, location: str, quantity: int, reason: str, key: str) -> None:
        body = {"sku": sku, "location": location, "quantity": quantity, "reason": reason}
        self._office("POST", "/admin/stock/receipts", body, key=key)

    def write_off(self, sku: str, location: str, reason: str, key: str) -> None:
        body = {"sku": sku, "location": location, "delta": -1, "reason": reason}
        self._office("POST", "/admin/stock/adjustments", body, key=key)

    def issue_gift_card(self, value: Money, key: str) -> str:
        return str(self._office("POST", "/admin/wallets/gift-cards", {"amount": value.amount}, key=key)["reference"])

    def run_campaign(self, campaign_id: str, key: str) -> int:
        return int(self._office("POST", f"/admin/campaigns/{campaign_id}/run", key=key)["reach"])

    def cancel(self, order_id: str, reason: str, key: str) -> None:
        self._office("POST", f"/admin/orders/{order_id}/cancel", {"reason": reason}, key=key)

    def refund(self, order_id: str, lines: Mapping[int, int], key: str) -> None:
        body = {"lines": [{"index": index, "quantity": quantity} for index, quantity in lines.items()]}
        self._office("POST", f"/admin/orders/{order_id}/refunds", body, key=key)

    def recover(self, key: str) -> int:
        """Flows the servers left half-way, finished or undone; returns how many are stuck."""
        return len(self._office("POST", "/admin/flows/recover", {}, key=key)["stuck"])

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        self.office.close()
