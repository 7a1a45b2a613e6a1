"""/admin/flows and /admin/events: flows left half-way and their recovery; the outbox, dead letters, redelivery."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from retailblocks import Block, Event, hookimpl
from retailblocks.assembly.discovery import BlockInfo, discover
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.errors import NotRefundable
from retailblocks.flows.saga import SimulatedCrash
from retailblocks.hookspecs import payment
from retailblocks.http import create_app
from retailblocks.model import Money, PaymentRequest
from retailblocks.stack import Stack, assemble
from tests.helpers import SHOP_MANIFEST, card, cart, receive, write_manifest
from tests.http.conftest import ADMIN_KEY, API_SECTION, KEYS_ENV, bearer

ADMIN = bearer(ADMIN_KEY)


def post(client: TestClient, path: str, body: dict[str, Any], key: str) -> Any:
    return client.post(path, json=body, headers={**ADMIN, "Idempotency-Key": key})


# -- flows -------------------------------------------------------------------------------------------


def test_a_crashed_checkout_is_listed_as_running_then_recovered(client: TestClient, stack: Stack) -> None:
    stack.lease = timedelta(seconds=-1)  # its owner's lease has run out at once: the flow is recovery's
    stack.flows.faults.arm("checkout", "capture", "before")
    with pytest.raises(SimulatedCrash):
        stack.checkout(cart(("TEA", 1)), key="crash")
    stack.flows.faults.clear()
    listed = client.get("/admin/flows", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    [flow] = listed.json()["data"]
    assert flow["flow"] == "checkout" and flow["status"] == "running" and flow["reason"] is None
    assert client.get("/admin/flows", params={"status": "stuck"}, headers=ADMIN).json()["data"] == []
    recovered = post(client, "/admin/flows/recover", {}, "recover-1")
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["resumed"] == [flow["id"]]
    assert stack.order(flow["order_id"]).status.value in ("paid", "fulfilled")
    assert client.get("/admin/flows", headers=ADMIN).json()["data"] == []
    replay = post(client, "/admin/flows/recover", {}, "recover-1")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == recovered.json()


def test_a_stuck_refund_is_listed_with_its_reason_and_retried_once_mended(client: TestClient, stack: Stack) -> None:
    with stack.context() as ctx:
        code = stack.hooks.call(payment.payment_issue, ctx, "gift_card", Money.parse("20.00 CNY"), None, "issue")
    pay = (PaymentRequest("gift_card", Money.parse("10.00 CNY"), {"code": code}), card())
    order = stack.checkout(cart(("MUG", 2), pay=pay), key="split")
    real = stack.hooks.call
    calls = Counter[str]()

    def call(spec: Any, *args: Any, **kwargs: Any) -> Any:
        if spec is payment.payment_refund:
            calls["n"] += 1
            if calls["n"] == 2:
                raise NotRefundable("the card gateway is refusing")
        return real(spec, *args, **kwargs)

    stack.hooks.call = call  # type: ignore[method-assign]
    refused = post(client, f"/admin/orders/{order.id}/refunds", {}, "refund-all")
    assert refused.status_code == 409, refused.text
    [flow] = client.get("/admin/flows", params={"status": "stuck"}, headers=ADMIN).json()["data"]
    assert flow["flow"] == "refund" and flow["order_id"] == order.id
    assert "refusing" in flow["reason"]
    del stack.hooks.call  # the gateway refunds again
    kept = post(client, "/admin/flows/recover", {}, "recover-stuck-1").json()
    assert [item["flow"] for item in kept["stuck"]] == [flow["id"]] and kept["resumed"] == []
    retried = post(client, "/admin/flows/recover", {"retry_stuck": True}, "recover-stuck-2")
    assert retried.json()["resumed"] == [flow["id"]]
    assert stack.order(order.id).status.value == "refunded"


# -- events ------------------------------------------------------------------------------------------


class Flaky(Block):
    """Fails on the event types the test names, until told otherwise."""

    name = "flaky"
    failing: ClassVar[set[str]] = set()
    received: ClassVar[Counter[int]] = Counter()

    @hookimpl
    def stack_event(self, event: Event) -> None:
        if event.type in self.failing:
            raise RuntimeError(f"flaky is down for {event.type}")
        self.received[event.id] += 1


@pytest.fixture
def flaky_client(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Stack]]:
    Flaky.failing.clear()
    Flaky.received.clear()
    installed = {**discover({}), "flaky": BlockInfo("flaky", "tests", "1.0", "tests:Flaky", block_class=Flaky)}
    text = textwrap.dedent(SHOP_MANIFEST).replace("routing:", "  - use: flaky\nrouting:") + API_SECTION
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    manifest = write_manifest(tmp_path, database_url, text)
    with assemble(manifest, clock=clock, ids=RandomIds(0), environ=KEYS_ENV, installed=installed) as stack:
        receive(stack, {"TEA": 10})
        with TestClient(create_app(stack, recover_on_start=False), raise_server_exceptions=False) as client:
            yield client, stack


def test_the_outbox_a_page_at_a_time(client: TestClient, stack: Stack) -> None:
    stack.checkout(cart(("TEA", 1)), key="e1")
    every = [e.id for e in stack.events(limit=10_000)]
    assert len(every) > 3
    seen: list[int] = []
    link: str | None = "/admin/events?limit=2"
    while link is not None:
        page = client.get(link, headers=ADMIN).json()
        seen += [event["id"] for event in page["data"]]
        link = page["next"]
    assert seen == every
    orders_only = client.get("/admin/events", params={"type": "order."}, headers=ADMIN).json()["data"]
    assert orders_only and all(event["type"].startswith("order.") for event in orders_only)


def test_a_dead_letter_is_listed_and_redelivered(flaky_client: tuple[TestClient, Stack]) -> None:
    client, stack = flaky_client
    Flaky.failing.add("order.placed")
    stack.checkout(cart(("TEA", 1)), key="d1")
    stack.dispatch_events()
    for _ in range(6):
        stack.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
        stack.dispatch_events()
    response = client.get("/admin/events/dead-letters", headers=ADMIN)
    assert response.status_code == 200, response.text
    [letter] = response.json()["data"]
    assert letter["event_type"] == "order.placed" and letter["subscriber"] == "flaky"
    assert "flaky is down" in letter["last_error"]
    Flaky.failing.clear()
    path = f"/admin/events/{letter['event_id']}/redeliver"
    done = post(client, path, {"subscriber": "flaky"}, "redeliver-1")
    assert done.status_code == 200, done.text
    assert done.json()["rearmed"] == 1 and done.json()["delivered"] >= 1
    assert Flaky.received[letter["event_id"]] == 1
    assert client.get("/admin/events/dead-letters", headers=ADMIN).json()["data"] == []
    replay = post(client, path, {"subscriber": "flaky"}, "redeliver-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert Flaky.received[letter["event_id"]] == 1  # delivered once
    again = post(client, path, {"subscriber": "flaky"}, "redeliver-2")
    assert again.json()["rearmed"] == 0
