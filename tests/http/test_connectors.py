"""A marketplace connector over HTTP: its orders imported once per order number, its channel's stock in bulk."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.http import create_app
from retailblocks.stack import Stack, assemble
from tests.connectors.test_marketplace import MARKET_MANIFEST
from tests.helpers import receive, write_manifest
from tests.http.conftest import API_SECTION, KEYS_ENV, MARKET_KEY, WEB_KEY, bearer

DELIVERY = {"kind": "delivery", "address": {"country": "CN", "region": "Shanghai", "city": "Shanghai"}}


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    manifest = write_manifest(tmp_path, database_url, textwrap.dedent(MARKET_MANIFEST) + API_SECTION)
    with assemble(manifest, clock=clock, ids=RandomIds(0), environ=KEYS_ENV) as running:
        receive(running, dict.fromkeys(running.catalog, 10), locations=("dc", "store-a"))
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack), raise_server_exceptions=False) as test_client:
        yield test_client


def send(client: TestClient, body: dict[str, object], *, key: str, api_key: str = MARKET_KEY):  # type: ignore[no-untyped-def]
    return client.post("/store/marketplace-orders", json=body, headers={**bearer(api_key), "Idempotency-Key": key})


def test_a_marketplace_order_is_imported_once_per_order_number(client: TestClient, stack: Stack) -> None:
    body = {
        "order_number": "TM-77",
        "lines": [{"sku": "BEANS", "quantity": 2}],
        "fulfilment": DELIVERY,
        "collected": 11000,
    }
    first = send(client, body, key="k-1")
    assert first.status_code == 201, first.text
    order = first.json()
    assert order["status"] == "fulfilled" and order["channel"] == "market"
    assert [p["method"] for p in order["payments"]] == ["marketplace"]
    # The connector retried under a new request key: the marketplace's order number finds the same order.
    again = send(client, body, key="k-2")
    assert again.status_code == 201 and again.json()["id"] == order["id"]
    changed = send(client, {**body, "lines": [{"sku": "BEANS", "quantity": 3}], "collected": None}, key="k-3")
    assert changed.status_code == 422 and "different request" in changed.json()["detail"]
    assert len(stack.orders()) == 1


def test_an_amount_the_channel_does_not_make_is_refused_with_both_figures(client: TestClient, stack: Stack) -> None:
    body = {"order_number": "TM-78", "lines": [{"sku": "MUG", "quantity": 1}], "fulfilment": DELIVERY, "collected": 100}
    answer = send(client, body, key="k-78")
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "collected 1.00 CNY" in answer.json()["detail"] and "40.00 CNY" in answer.json()["detail"]
    assert stack.orders() == []


def test_a_shop_channels_key_cannot_import_marketplace_orders(client: TestClient, stack: Stack) -> None:
    body = {"order_number": "TM-79", "lines": [{"sku": "MUG", "quantity": 1}], "fulfilment": DELIVERY}
    answer = send(client, body, key="k-79", api_key=WEB_KEY)
    assert answer.status_code == 422 and "only a marketplace's orders are imported" in answer.json()["detail"]
    paying = client.post(
        "/store/orders",
        json={
            "lines": [{"sku": "MUG", "quantity": 1}],
            "fulfilment": DELIVERY,
            "payments": [{"method": "marketplace", "details": {"order_number": "free"}}],
        },
        headers={**bearer(WEB_KEY), "Idempotency-Key": "free-mug"},
    )
    assert paying.status_code == 402
    assert all(order.status.value == "failed" for order in stack.orders())


def test_the_channel_reads_what_it_may_sell_of_everything_in_one_call(client: TestClient) -> None:
    send(
        client, {"order_number": "TM-80", "lines": [{"sku": "TEA", "quantity": 4}], "fulfilment": DELIVERY}, key="k-80"
    )
    feed = client.get("/store/stock", headers=bearer(MARKET_KEY))
    assert feed.status_code == 200
    assert feed.json() == {
        "channel": "market",
        "skus": [{"sku": "BEANS", "sellable": 10}, {"sku": "MUG", "sellable": 10}, {"sku": "TEA", "sellable": 6}],
    }
    assert client.get("/store/stock").status_code == 401


def test_a_served_stack_sends_listing_changes_to_the_channels_webhook(tmp_path: Path, database_url: str) -> None:
    """The server's delivery loop publishes what the marketplace may sell as it changes, signed, so the
    connector can keep the listing from overselling."""
    from tests.http.test_webhooks_http import wait_for
    from tests.webhook_receiver import ENV, SECRET, Receiver, webhooks_section

    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    receiver = Receiver(SECRET, clock.now)
    section = webhooks_section(receiver.url, events='["listing."]')
    text = textwrap.dedent(MARKET_MANIFEST) + API_SECTION + section
    try:
        with assemble(
            write_manifest(tmp_path, database_url, text), clock=clock, ids=RandomIds(0), environ={**KEYS_ENV, **ENV}
        ) as stack:
            receive(stack, {"TEA": 10}, locations=("dc",))
            with TestClient(create_app(stack, webhook_interval=0.05), raise_server_exceptions=False) as client:
                assert wait_for(lambda: len(receiver.accepted("/erp")) >= 1)  # the market may sell 10 TEA
                answer = send(
                    client,
                    {"order_number": "TM-90", "lines": [{"sku": "TEA", "quantity": 3}], "fulfilment": DELIVERY},
                    key="k-90",
                )
                assert answer.status_code == 201, answer.text

                def told() -> list[tuple[str | None, int]]:
                    sent = set(receiver.accepted("/erp"))
                    return [
                        (event.channel, event.payload["sellable"])
                        for event in stack.events(event_type="listing.", limit=100)
                        if event.id in sent and event.payload["sku"] == "TEA"
                    ]

                assert wait_for(lambda: ("market", 7) in told())
                assert all(r.signature_valid for r in receiver.received)
    finally:
        receiver.release()
        receiver.down()
