"""POST /store/orders with a cart whose lines leave in several ways: one order, its groups shown by the
store's and the admin's order JSON, each group reserved where it leaves from and shipped on its own."""

from __future__ import annotations

from fastapi.testclient import TestClient

from retailblocks.stack import Stack
from tests.helpers import CARD_OK, levels
from tests.http.conftest import ADMIN_KEY, WEB_KEY, bearer

WEB = bearer(WEB_KEY)
SHANGHAI = {"country": "CN", "region": "Shanghai"}


def test_a_mixed_cart_is_placed_as_one_order_in_groups(client: TestClient, stack: Stack) -> None:
    body = {
        "lines": [
            {"sku": "BEANS", "quantity": 2, "fulfilment": {"kind": "pickup", "pickup_location": "store-a"}},
            {"sku": "MUG", "quantity": 1},
        ],
        "payments": [{"method": "card", "details": {"card_number": CARD_OK}}],
        "fulfilment": {"kind": "delivery", "address": SHANGHAI},
    }
    quoted = client.post("/store/quotes", json=body, headers=WEB)
    assert quoted.status_code == 200, quoted.text
    placed = client.post("/store/orders", json=body, headers={**WEB, "Idempotency-Key": "mixed"})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "fulfilled" and order["total"] == quoted.json()["total"]
    assert order["groups"] == quoted.json()["groups"]
    groups = [
        (g["fulfilment"]["kind"], g["lines"], g["shipping_option"], g["shipping"]["amount"]) for g in order["groups"]
    ]
    assert groups == [("pickup", [0], "click-and-collect", 0), ("delivery", [1], "sf-std", 1000)]
    assert order["shipping"]["amount"] == 1000
    read = client.get(f"/store/orders/{order['id']}", headers={**WEB, "Order-Token": order["token"]})
    assert read.status_code == 200 and read.json()["groups"] == order["groups"]
    admin = client.get(f"/admin/orders/{order['id']}", headers=bearer(ADMIN_KEY))
    assert admin.status_code == 200 and admin.json()["groups"] == order["groups"]
    # The beans from the store they are collected at; the mug from wherever logistics ships it.
    stock = levels(stack)
    assert stock[("BEANS", "store-a")][0] == 8 and stock[("BEANS", "dc")][0] == 10
    assert stock[("MUG", "store-a")][0] + stock[("MUG", "dc")][0] == 19
    assert len(stack.order(order["id"]).shipments) == 2


def test_an_order_that_leaves_one_way_shows_no_groups(client: TestClient) -> None:
    body = {
        "lines": [{"sku": "BEANS", "quantity": 1}],
        "payments": [{"method": "card", "details": {"card_number": CARD_OK}}],
        "fulfilment": {"kind": "pickup", "pickup_location": "store-a"},
    }
    placed = client.post("/store/orders", json=body, headers={**WEB, "Idempotency-Key": "one-way"})
    assert placed.status_code == 201, placed.text
    assert placed.json()["groups"] == []
