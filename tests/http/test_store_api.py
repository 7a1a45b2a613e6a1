"""The store API: a channel's view of the stack, checkout once per Idempotency-Key, errors as problems."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from retailblocks.http.auth import RateLimiter
from retailblocks.stack import Stack
from tests.helpers import CARD_DECLINED, CARD_OK, levels
from tests.http.conftest import ADMIN_KEY, MARKET_KEY, REVOKED_KEY, SLOW_KEY, WEB_KEY, bearer

WEB = bearer(WEB_KEY)


def cart_body(*lines: tuple[str, int], card: str = CARD_OK, **extra: Any) -> dict[str, Any]:
    return {
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        "payments": [{"method": "card", "details": {"card_number": card}}],
        "fulfilment": {"kind": "pickup", "pickup_location": "store-a"},
        **extra,
    }


def place(client: TestClient, body: dict[str, Any], key: str, headers: dict[str, str] = WEB) -> Any:
    return client.post("/store/orders", json=body, headers={**headers, "Idempotency-Key": key})


def test_the_catalog_is_the_channels_own(client: TestClient) -> None:
    response = client.get("/store/catalog", headers=WEB)
    assert response.status_code == 200
    body = response.json()
    assert body["channel"] == "web"
    beans = next(p for p in body["products"] if p["sku"] == "BEANS")
    assert beans["price"] == {"amount": 5000, "currency": "CNY"}


def test_availability_per_location(client: TestClient) -> None:
    response = client.get("/store/availability", params=[("sku", "BEANS"), ("sku", "MUG")], headers=WEB)
    assert response.status_code == 200, response.text
    skus = {item["sku"]: item for item in response.json()["skus"]}
    assert skus["BEANS"]["available"] == 20  # 10 at the warehouse and 10 in the store, both the web's
    assert {loc["location"]: loc["available"] for loc in skus["BEANS"]["locations"]} == {"dc": 10, "store-a": 10}


def test_a_quote_explains_every_adjustment_and_keeps_nothing(client: TestClient, stack: Stack) -> None:
    before = levels(stack)
    response = client.post("/store/quotes", json=cart_body(("TEA", 2)), headers=WEB)
    assert response.status_code == 200, response.text
    quote = response.json()
    assert quote["subtotal"] == {"amount": 4000, "currency": "CNY"}
    (adjustment,) = quote["adjustments"]
    assert adjustment["promotion_id"] == "tea-10" and adjustment["amount"]["amount"] == 400
    assert adjustment["funder"] and adjustment["reason"]
    assert quote["total"]["amount"] == 3600
    assert levels(stack) == before
    assert stack.orders() == []


def test_checkout_once_per_key_and_replayed(client: TestClient, stack: Stack) -> None:
    body = cart_body(("BEANS", 1))
    first = place(client, body, "order-1")
    assert first.status_code == 201, first.text
    order = first.json()
    assert order["status"] in ("paid", "fulfilled") and order["total"]["amount"] == 5000
    again = place(client, body, "order-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == order
    assert len(stack.orders()) == 1


def test_a_key_reused_with_another_body_is_422(client: TestClient, stack: Stack) -> None:
    assert place(client, cart_body(("BEANS", 1)), "order-2").status_code == 201
    response = place(client, cart_body(("BEANS", 2)), "order-2")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:retailblocks:problem:idempotency-key-reused"
    assert len(stack.orders()) == 1


def test_keys_are_scoped_to_the_api_key_that_sent_them(client: TestClient, stack: Stack) -> None:
    web = place(client, cart_body(("BEANS", 1)), "same-key")
    market = place(client, cart_body(("BEANS", 1), fulfilment={"kind": "carry_out"}), "same-key", bearer(MARKET_KEY))
    assert web.status_code == 201 and market.status_code == 201, market.text
    assert web.json()["id"] != market.json()["id"]
    assert {o.channel for o in stack.orders()} == {"web", "market"}


def test_a_post_that_changes_state_needs_an_idempotency_key(client: TestClient, stack: Stack) -> None:
    response = client.post("/store/orders", json=cart_body(("BEANS", 1)), headers=WEB)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert stack.orders() == []


def test_rejections_are_problems_with_stable_types(client: TestClient) -> None:
    declined = place(client, cart_body(("BEANS", 1), card=CARD_DECLINED), "declined")
    assert declined.status_code == 402
    assert declined.json()["type"] == "urn:retailblocks:problem:payment-declined"
    replayed = place(client, cart_body(("BEANS", 1), card=CARD_DECLINED), "declined")
    assert replayed.status_code == 402 and replayed.headers["Idempotent-Replayed"] == "true"
    too_many = place(client, cart_body(("BEANS", 500)), "too-many")
    assert too_many.status_code == 409
    assert too_many.json()["type"] == "urn:retailblocks:problem:out-of-stock"
    unknown = place(client, cart_body(("NOPE", 1)), "unknown-sku")
    assert unknown.status_code == 404


def test_invalid_bodies_say_where(client: TestClient) -> None:
    response = place(client, {"lines": [{"sku": "BEANS", "quantity": 0}]}, "bad")
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:retailblocks:problem:invalid-request"
    assert any(item["where"] == "body.lines.0.quantity" for item in problem["errors"])
    not_json = client.post(
        "/store/orders",
        content=b"{not json",
        headers={**WEB, "Idempotency-Key": "x", "Content-Type": "application/json"},
    )
    assert not_json.status_code == 422


def test_who_may_call(client: TestClient) -> None:
    assert client.get("/store/catalog").status_code == 401
    assert client.get("/store/catalog", headers=bearer("rb_pk_wrong_0123456789abcdefghij")).status_code == 401
    assert client.get("/store/catalog", headers={"Authorization": WEB_KEY}).status_code == 401
    revoked = client.get("/store/catalog", headers=bearer(REVOKED_KEY))
    assert revoked.status_code == 401 and revoked.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/store/catalog", headers=bearer(ADMIN_KEY)).status_code == 403


def test_an_order_is_read_only_with_its_token_and_only_by_its_channel(client: TestClient) -> None:
    order = place(client, cart_body(("BEANS", 1)), "order-read").json()
    token = order["token"]
    mine = client.get(f"/store/orders/{order['id']}", headers={**WEB, "Order-Token": token})
    assert mine.status_code == 200 and mine.json()["id"] == order["id"] and mine.json()["token"] is None
    assert client.get(f"/store/orders/{order['id']}", headers=WEB).status_code == 404
    guessed = client.get(f"/store/orders/{order['id']}", headers={**WEB, "Order-Token": "0" * 40})
    assert guessed.status_code == 404
    other_channel = client.get(f"/store/orders/{order['id']}", headers={**bearer(MARKET_KEY), "Order-Token": token})
    assert other_channel.status_code == 404
    missing = client.get("/store/orders/ord_nope", headers={**WEB, "Order-Token": token})
    assert missing.status_code == 404


def test_oversized_bodies_are_413_and_leave_nothing(client: TestClient, stack: Stack) -> None:
    body = cart_body(("BEANS", 1), attribution="x" * 5000)
    response = place(client, body, "big")
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert stack.orders() == []


def test_no_key_appears_in_any_response_or_log(client: TestClient, caplog: Any) -> None:
    caplog.set_level("DEBUG")
    responses = [
        client.get("/store/catalog", headers=WEB),
        client.get("/store/catalog", headers=bearer(ADMIN_KEY)),
        client.get("/store/catalog", headers=bearer(WEB_KEY + "x")),
        place(client, cart_body(("BEANS", 1)), "logged"),
    ]
    seen = "\n".join(r.text + str(dict(r.headers)) for r in responses) + caplog.text
    for key in (WEB_KEY, ADMIN_KEY, CARD_OK):
        assert key not in seen


def test_health_and_readiness_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert client.get("/nowhere").json()["type"] == "urn:retailblocks:problem:not-found"


def test_a_key_over_its_rate_is_told_when_to_come_back(client: TestClient) -> None:
    # 60 a minute in bursts of 6: the seventh request at once is refused, with the wait in Retry-After.
    # "At once" on a clock that stands still: a slow machine taking a second over the burst would refill it.
    client.app.state.api.limiter = RateLimiter(clock=lambda: 1000.0)  # type: ignore[attr-defined]
    statuses = [client.get("/store/catalog", headers=bearer(SLOW_KEY)).status_code for _ in range(7)]
    assert statuses[:6] == [200] * 6 and statuses[6] == 429
    limited = client.get("/store/catalog", headers=bearer(SLOW_KEY))
    assert limited.json()["type"] == "urn:retailblocks:problem:rate-limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get("/store/catalog", headers=WEB).status_code == 200  # another key is not held back


def test_cors_for_the_origins_a_key_lists(client: TestClient) -> None:
    shop = "https://shop.example.com"
    preflight = client.options(
        "/store/catalog",
        headers={
            "Origin": shop,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == shop
    stranger = client.options(
        "/store/catalog", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert stranger.status_code == 403 and "Access-Control-Allow-Origin" not in stranger.headers
    from_shop = client.get("/store/catalog", headers={**WEB, "Origin": shop})
    assert from_shop.status_code == 200 and from_shop.headers["Access-Control-Allow-Origin"] == shop
    assert client.get("/store/catalog", headers={**WEB, "Origin": "https://evil.example"}).status_code == 403
    # The marketplace key lists no origin: it is a server's key, never a browser's.
    assert client.get("/store/catalog", headers={**bearer(MARKET_KEY), "Origin": shop}).status_code == 403


def test_a_line_may_leave_its_own_way(client: TestClient) -> None:
    from retailblocks.http.schemas import CartIn, cart_of
    from retailblocks.model import FulfilmentKind

    body = cart_body(("TEA", 1), ("BEANS", 1))
    body["lines"][1]["fulfilment"] = {"kind": "delivery", "address": {"country": "CN", "region": "Shanghai"}}
    response = client.post("/store/quotes", json=body, headers=WEB)
    assert response.status_code == 200, response.text
    cart = cart_of(CartIn.model_validate(body), "web", "CNY")
    assert cart.lines[0].fulfilment is None
    beans = cart.lines[1].fulfilment
    assert beans is not None and beans.kind is FulfilmentKind.DELIVERY and beans.address is not None
    assert beans.address.region == "Shanghai"
    body["lines"][1]["fulfilment"] = {"kind": "teleport"}
    refused = client.post("/store/quotes", json=body, headers=WEB)
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
