"""/admin/orders: filters, cursor pages that neither skip nor repeat under inserts, cancel and refund once."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from retailblocks.stack import Stack
from tests.helpers import cart, levels, member
from tests.http.conftest import ADMIN_KEY, bearer

ADMIN = bearer(ADMIN_KEY)


def place(stack: Stack, key: str, **extra: Any) -> str:
    return stack.checkout(cart(("TEA", 1), **extra), key=key).id


def post(client: TestClient, path: str, body: dict[str, Any], key: str) -> Any:
    return client.post(path, json=body, headers={**ADMIN, "Idempotency-Key": key})


def test_pages_follow_each_other_without_skipping_or_repeating_while_orders_are_placed(
    client: TestClient, stack: Stack
) -> None:
    before = [place(stack, f"p{n}") for n in range(7)]
    seen: list[str] = []
    link: str | None = "/admin/orders?limit=3&channel=web"
    pages = 0
    while link is not None:
        response = client.get(link, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 3
        seen += [order["id"] for order in page["data"]]
        place(stack, f"during-{pages}")  # placed between two pages
        place(stack, f"market-{pages}", channel="market")  # filtered out
        link = page["next"]
        pages += 1
        assert pages < 20
    assert len(seen) == len(set(seen)), "an order was listed twice"
    assert set(before) <= set(seen), "an order that existed before the first page was skipped"
    listed = [o.id for o in stack.orders(channel="web")]
    assert seen == [order_id for order_id in listed if order_id in seen]  # the stack's own order


def test_filters_by_status_and_member(client: TestClient, stack: Stack) -> None:
    mine = place(stack, "m1", identities=member("+8613800000001"))
    place(stack, "m2")
    member_id = stack.order(mine).member_id
    assert member_id
    response = client.get("/admin/orders", params={"member": member_id}, headers=ADMIN)
    assert [o["id"] for o in response.json()["data"]] == [mine]
    response = client.get("/admin/orders", params={"status": "cancelled"}, headers=ADMIN)
    assert response.json() == {"data": [], "next_cursor": None, "next": None}
    assert client.get("/admin/orders", params={"status": "lost"}, headers=ADMIN).status_code == 422


def test_a_cursor_not_from_this_listing_is_400(client: TestClient, stack: Stack) -> None:
    place(stack, "c1")
    for cursor in ("not-a-cursor", "ZXZlbnRzOjE", "b3JkZXJzOm5vLXN1Y2g"):  # garbage, an events cursor, no order
        response = client.get("/admin/orders", params={"cursor": cursor}, headers=ADMIN)
        assert response.status_code in (400, 404), response.text
        assert response.headers["content-type"] == "application/problem+json"


def test_one_order_and_an_unknown_one(client: TestClient, stack: Stack) -> None:
    order_id = place(stack, "o1")
    response = client.get(f"/admin/orders/{order_id}", headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["id"] == order_id and response.json()["token"] is None
    missing = client.get("/admin/orders/ord_missing", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:retailblocks:problem:not-found"


def test_cancel_restocks_once_and_replays(client: TestClient, stack: Stack) -> None:
    stock_before = levels(stack)
    order_id = place(stack, "x1")
    first = post(client, f"/admin/orders/{order_id}/cancel", {"reason": "customer called"}, "cancel-1")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "cancelled"
    again = post(client, f"/admin/orders/{order_id}/cancel", {"reason": "customer called"}, "cancel-1")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert levels(stack) == stock_before
    other_body = post(client, f"/admin/orders/{order_id}/cancel", {"reason": "another"}, "cancel-1")
    assert other_body.status_code == 422


def test_refund_by_line_returns_money_once(client: TestClient, stack: Stack) -> None:
    order = stack.checkout(cart(("TEA", 3), ("MUG", 1)), key="r1")
    body = {"lines": [{"index": 0, "quantity": 2}], "reason": "broken"}
    first = post(client, f"/admin/orders/{order.id}/refunds", body, "refund-1")
    assert first.status_code == 200, first.text
    refunded = first.json()
    tea = order.lines[0]
    assert refunded["status"] == "partially_refunded"
    assert refunded["refunded"]["amount"] == 2 * (tea.total.amount // 3)
    again = post(client, f"/admin/orders/{order.id}/refunds", body, "refund-1")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == refunded
    assert stack.order(order.id).refunded.amount == refunded["refunded"]["amount"]  # type: ignore[union-attr]
    too_many = post(client, f"/admin/orders/{order.id}/refunds", {"lines": [{"index": 0, "quantity": 5}]}, "r-2")
    assert too_many.status_code in (409, 422), too_many.text
    assert post(client, f"/admin/orders/{order.id}/refunds", body, "").status_code == 400  # no key


def test_a_post_without_an_idempotency_key_is_400(client: TestClient, stack: Stack) -> None:
    order_id = place(stack, "k1")
    response = client.post(f"/admin/orders/{order_id}/cancel", json={}, headers=ADMIN)
    assert response.status_code == 400
    assert response.json()["type"] == "urn:retailblocks:problem:idempotency-key"
    assert stack.order(order_id).status.value != "cancelled"
