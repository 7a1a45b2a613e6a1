"""/admin/wallets (gift cards and wallets, issued once per key) and /admin/blocks (the assembled stack)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from retailblocks.model import PaymentRequest
from retailblocks.stack import Stack
from tests.helpers import cart, member
from tests.http.conftest import ADMIN_KEY, KEYS_ENV, bearer

ADMIN = bearer(ADMIN_KEY)


def post(client: TestClient, path: str, body: dict[str, Any], key: str) -> Any:
    return client.post(path, json=body, headers={**ADMIN, "Idempotency-Key": key})


def test_a_gift_card_is_issued_once_per_key_and_pays(client: TestClient, stack: Stack) -> None:
    first = post(client, "/admin/wallets/gift-cards", {"amount": 5000}, "gc-1")
    assert first.status_code == 201, first.text
    card = first.json()
    assert card["method"] == "gift_card" and card["balance"] == {"amount": 5000, "currency": "CNY"}
    again = post(client, "/admin/wallets/gift-cards", {"amount": 5000}, "gc-1")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == card
    second = post(client, "/admin/wallets/gift-cards", {"amount": 5000}, "gc-2")
    assert second.json()["reference"] != card["reference"]
    order = stack.checkout(
        cart(("TEA", 1), pay=(PaymentRequest("gift_card", None, {"code": card["reference"]}),)), key="o"
    )
    assert order.status.value in ("paid", "fulfilled")
    assert post(client, "/admin/wallets/gift-cards", {"amount": 0}, "gc-3").status_code == 422
    # The number is handed over once: the outbox, which the admin API lists, only ever shows it masked.
    events = client.get("/admin/events", params={"limit": 1000}, headers=ADMIN)
    assert events.status_code == 200 and "stored_value.issued" in events.text
    assert card["reference"] not in events.text


def test_a_wallet_is_topped_up_once_per_key(client: TestClient, stack: Stack) -> None:
    member_id = stack.checkout(cart(("TEA", 1), identities=member("+8613800000009")), key="m").member_id
    assert member_id
    assert client.get(f"/admin/wallets/{member_id}", headers=ADMIN).json()["balance"]["amount"] == 0
    topped = post(client, f"/admin/wallets/{member_id}/top-ups", {"amount": 2000}, "top-1")
    assert topped.status_code == 201, topped.text
    assert topped.json()["member_id"] == member_id and topped.json()["balance"]["amount"] == 2000
    post(client, f"/admin/wallets/{member_id}/top-ups", {"amount": 2000}, "top-1")  # replayed
    post(client, f"/admin/wallets/{member_id}/top-ups", {"amount": 500}, "top-2")
    assert client.get(f"/admin/wallets/{member_id}", headers=ADMIN).json()["balance"]["amount"] == 2500


def test_the_assembled_blocks_show_no_secret(client: TestClient, stack: Stack) -> None:
    response = client.get("/admin/blocks", headers=ADMIN)
    assert response.status_code == 200, response.text
    described = response.json()
    assert {b["id"] for b in described["blocks"]} >= {"inventory", "card", "loyalty"}
    assert described["routing"]["payment_methods"]["card"] == "card"
    assert described["lock"] == {"locked": False, "changes": []}  # a test stack, never assembled by `blocks assemble`
    text = response.text
    assert "sk_test_core_tests" not in text
    for secret in KEYS_ENV.values():
        assert secret not in text


def test_the_lock_once_written_matches(client: TestClient, stack: Stack) -> None:
    from retailblocks.assembly.lockfile import write_lock

    write_lock(stack.plan)
    assert client.get("/admin/blocks", headers=ADMIN).json()["lock"] == {"locked": True, "changes": []}
