"""/admin/stock: levels and movements, and goods received, corrections and counts, each once per key."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from retailblocks.stack import Stack
from tests.helpers import levels
from tests.http.conftest import ADMIN_KEY, bearer

ADMIN = bearer(ADMIN_KEY)


def post(client: TestClient, path: str, body: dict[str, Any], key: str) -> Any:
    return client.post(path, json=body, headers={**ADMIN, "Idempotency-Key": key})


def test_levels_per_sku_and_location(client: TestClient) -> None:
    response = client.get("/admin/stock/levels", params=[("sku", "BEANS")], headers=ADMIN)
    assert response.status_code == 200, response.text
    rows = {row["location"]: row for row in response.json()["data"]}
    assert set(rows) == {"dc", "store-a"}
    assert rows["dc"] == {
        "sku": "BEANS",
        "location": "dc",
        "on_hand": 10,
        "reserved": 0,
        "allocated": 0,
        "available": 10,
    }
    everything = client.get("/admin/stock/levels", headers=ADMIN).json()["data"]
    assert {row["sku"] for row in everything} == {"BEANS", "MUG", "TEA"}


def test_a_receipt_adds_once_per_key(client: TestClient, stack: Stack) -> None:
    body = {"sku": "MUG", "location": "dc", "quantity": 5, "reason": "PO-17"}
    first = post(client, "/admin/stock/receipts", body, "receipt-1")
    assert first.status_code == 201, first.text
    assert first.json() == {"sku": "MUG", "location": "dc", "delta": 5, "on_hand": 15}
    again = post(client, "/admin/stock/receipts", body, "receipt-1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert levels(stack)[("MUG", "dc")][0] == 15
    assert post(client, "/admin/stock/receipts", {**body, "quantity": 6}, "receipt-1").status_code == 422


def test_adjust_and_count_are_movements_with_their_reasons(client: TestClient, stack: Stack) -> None:
    adjusted = post(
        client, "/admin/stock/adjustments", {"sku": "TEA", "location": "dc", "delta": -2, "reason": "damaged"}, "a1"
    )
    assert adjusted.status_code == 201, adjusted.text
    assert adjusted.json()["on_hand"] == 8
    counted = post(client, "/admin/stock/counts", {"sku": "TEA", "location": "dc", "counted": 11}, "c1")
    assert counted.status_code == 201, counted.text
    assert counted.json() == {"sku": "TEA", "location": "dc", "delta": 3, "on_hand": 11}
    response = client.get("/admin/stock/movements", params={"sku": "TEA", "limit": 2}, headers=ADMIN)
    assert response.status_code == 200
    newest = response.json()["data"]
    assert [(m["kind"], m["delta"], m["reason"]) for m in newest] == [
        ("adjust", -2, "damaged"),
        ("count", 3, "counted"),
    ]


def test_bad_stock_requests_are_refused_with_one_message(client: TestClient, stack: Stack) -> None:
    before = levels(stack)
    cases = [
        ("/admin/stock/receipts", {"sku": "MUG", "location": "nowhere", "quantity": 1}),
        ("/admin/stock/receipts", {"sku": "NOPE", "location": "dc", "quantity": 1}),
        ("/admin/stock/receipts", {"sku": "MUG", "location": "dc", "quantity": 0}),
        ("/admin/stock/adjustments", {"sku": "MUG", "location": "dc", "delta": 0, "reason": "x"}),
        ("/admin/stock/adjustments", {"sku": "MUG", "location": "dc", "delta": 1, "reason": ""}),
        ("/admin/stock/counts", {"sku": "MUG", "location": "dc", "counted": -1}),
        ("/admin/stock/counts", {"sku": "MUG", "location": "dc", "counted": 1, "extra": True}),
    ]
    for n, (path, body) in enumerate(cases):
        response = post(client, path, body, f"bad-{n}")
        assert 400 <= response.status_code < 500, (path, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]
    assert levels(stack) == before
