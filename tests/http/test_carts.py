"""Server-side carts: built step by step, each its channel's and its shopper's, changed without lost
updates, priced as a quote, checked out once into the same order POST /store/orders would place."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from retailblocks.errors import BusinessRejection
from retailblocks.flows import carts as carts_module
from retailblocks.flows.carts import CART_TTL, CartOwner, CartStatus
from retailblocks.model import Fulfilment, PaymentRequest
from retailblocks.stack import Stack
from retailblocks.storage.tables import carts
from tests.helpers import CARD_DECLINED, CARD_OK, levels
from tests.http.conftest import MARKET_KEY, WEB_KEY, api_stack, bearer
from tests.http.test_shoppers import sign_in
from tests.http.test_store_api import cart_body

WEB = bearer(WEB_KEY)
PICKUP = {"kind": "pickup", "pickup_location": "store-a"}
CARD = {"card_number": CARD_OK}


def post(client: TestClient, path: str, body: Any, key: str, headers: dict[str, str] = WEB) -> Any:
    return client.post(path, json=body, headers={**headers, "Idempotency-Key": key})


def new_cart(client: TestClient, key: str = "c1", headers: dict[str, str] = WEB) -> dict[str, Any]:
    created = post(client, "/store/carts", {}, key, headers)
    assert created.status_code == 201, created.text
    cart: dict[str, Any] = created.json()
    return cart


def ready_cart(client: TestClient, *lines: tuple[str, int], headers: dict[str, str] = WEB) -> str:
    """A cart with ``lines``, picked up in the store and paid by card: ready to check out."""
    cart_id = new_cart(client, headers=headers)["id"]
    for i, (sku, quantity) in enumerate(lines):
        added = post(client, f"/store/carts/{cart_id}/lines", {"sku": sku, "quantity": quantity}, f"l{i}", headers)
        assert added.status_code == 200, added.text
    assert client.put(f"/store/carts/{cart_id}/fulfilment", json=PICKUP, headers=headers).status_code == 200
    paid = client.put(f"/store/carts/{cart_id}/payments", json={"payments": [{"method": "card"}]}, headers=headers)
    assert paid.status_code == 200, paid.text
    return str(cart_id)


def test_a_cart_is_built_step_by_step(client: TestClient) -> None:
    cart = new_cart(client)
    assert cart["status"] == "open" and cart["lines"] == [] and cart["version"] == 1
    cart_id = cart["id"]
    post(client, f"/store/carts/{cart_id}/lines", {"sku": "TEA", "quantity": 2}, "a1")
    post(client, f"/store/carts/{cart_id}/lines", {"sku": "MUG", "quantity": 1}, "a2")
    merged = post(client, f"/store/carts/{cart_id}/lines", {"sku": "TEA", "quantity": 3}, "a3").json()
    assert merged["lines"] == [{"sku": "TEA", "quantity": 5}, {"sku": "MUG", "quantity": 1}]
    changed = client.patch(f"/store/carts/{cart_id}/lines/TEA", json={"quantity": 1}, headers=WEB)
    assert changed.status_code == 200 and changed.json()["lines"][0] == {"sku": "TEA", "quantity": 1}
    removed = client.delete(f"/store/carts/{cart_id}/lines/MUG", headers=WEB)
    assert removed.json()["lines"] == [{"sku": "TEA", "quantity": 1}]
    assert client.delete(f"/store/carts/{cart_id}/lines/MUG", headers=WEB).status_code == 404
    coupons = client.put(f"/store/carts/{cart_id}/coupons", json={"coupons": ["SAVE5", "SAVE5"]}, headers=WEB)
    assert coupons.json()["coupons"] == ["SAVE5"]
    read = client.get(f"/store/carts/{cart_id}", headers=WEB)
    assert read.status_code == 200
    assert read.headers["ETag"] == f'"{read.json()["version"]}"'
    assert read.json() == coupons.json()


def test_a_retried_addition_adds_once(client: TestClient) -> None:
    cart_id = new_cart(client)["id"]
    first = post(client, f"/store/carts/{cart_id}/lines", {"sku": "TEA", "quantity": 2}, "add-tea")
    again = post(client, f"/store/carts/{cart_id}/lines", {"sku": "TEA", "quantity": 2}, "add-tea")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert client.get(f"/store/carts/{cart_id}", headers=WEB).json()["lines"] == [{"sku": "TEA", "quantity": 2}]
    assert post(client, "/store/carts", {}, "c1").json()["id"] == cart_id  # creation is once per key too


def test_the_carts_quote_is_the_quote_of_the_same_cart(client: TestClient, stack: Stack) -> None:
    cart_id = ready_cart(client, ("TEA", 2), ("BEANS", 1))
    client.put(f"/store/carts/{cart_id}/coupons", json={"coupons": ["SAVE5"]}, headers=WEB)
    before = levels(stack)
    quoted = client.get(f"/store/carts/{cart_id}/quote", headers=WEB)
    assert quoted.status_code == 200, quoted.text
    direct = client.post("/store/quotes", json=cart_body(("TEA", 2), ("BEANS", 1), coupons=["SAVE5"]), headers=WEB)
    assert quoted.json() == direct.json()
    assert quoted.json()["discount"]["amount"] == 400 + 500  # tea-10 and the SAVE5 coupon
    assert levels(stack) == before and stack.orders() == []


def test_checkout_places_the_order_once_and_closes_the_cart(client: TestClient, stack: Stack) -> None:
    cart_id = ready_cart(client, ("BEANS", 2))
    checkout = post(client, f"/store/carts/{cart_id}/checkout", {"payment_details": [CARD]}, "co-1")
    assert checkout.status_code == 201, checkout.text
    order = checkout.json()
    direct = post(client, "/store/orders", cart_body(("BEANS", 2)), "direct").json()
    same_shape = ("status", "lines", "adjustments", "subtotal", "discount", "shipping", "total", "channel")
    assert {k: order[k] for k in same_shape} == {k: direct[k] for k in same_shape}
    read = client.get(f"/store/orders/{order['id']}", headers={**WEB, "Order-Token": order["token"]})
    assert read.status_code == 200
    # Another request, another key: the cart's one order again, nothing charged twice.
    again = post(client, f"/store/carts/{cart_id}/checkout", {"payment_details": [CARD]}, "co-2")
    assert again.status_code == 201 and again.json()["id"] == order["id"]
    assert len(stack.orders()) == 2
    cart = client.get(f"/store/carts/{cart_id}", headers=WEB).json()
    assert cart["status"] == "checked_out" and cart["order_id"] == order["id"]
    closed = post(client, f"/store/carts/{cart_id}/lines", {"sku": "TEA", "quantity": 1}, "late")
    assert closed.status_code == 409 and closed.json()["type"] == "urn:retailblocks:problem:cart-closed"
    assert client.delete(f"/store/carts/{cart_id}/lines/BEANS", headers=WEB).status_code == 409
    assert client.get(f"/store/carts/{cart_id}", headers=WEB).json()["lines"] == [{"sku": "BEANS", "quantity": 2}]
    with stack.engine.connect() as connection:  # the card number came with the checkout and stayed there
        kept = connection.execute(sa.select(carts.c.contents).where(carts.c.id == cart_id)).scalar_one()
    assert CARD_OK not in json.dumps(kept)


def test_a_refused_checkout_reopens_the_cart(client: TestClient, stack: Stack) -> None:
    cart_id = ready_cart(client, ("MUG", 1))
    declined = post(
        client, f"/store/carts/{cart_id}/checkout", {"payment_details": [{"card_number": CARD_DECLINED}]}, "d-1"
    )
    assert declined.status_code == 402, declined.text
    assert client.get(f"/store/carts/{cart_id}", headers=WEB).json()["status"] == "open"
    paid = post(client, f"/store/carts/{cart_id}/checkout", {"payment_details": [CARD]}, "d-2")
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] in ("paid", "fulfilled")


def test_an_empty_cart_or_missing_details_is_refused_before_anything(client: TestClient, stack: Stack) -> None:
    cart_id = new_cart(client)["id"]
    assert client.get(f"/store/carts/{cart_id}/quote", headers=WEB).status_code == 422
    assert post(client, f"/store/carts/{cart_id}/checkout", {}, "e-1").status_code == 422
    assert client.get(f"/store/carts/{cart_id}", headers=WEB).json()["status"] == "open"
    assert stack.orders() == []


def test_a_cart_is_its_channels_and_its_shoppers(client: TestClient) -> None:
    guest = new_cart(client, "guest")["id"]
    assert client.get(f"/store/carts/{guest}", headers=bearer(MARKET_KEY)).status_code == 404
    alice = sign_in(client)
    bob = sign_in(client, {"kind": "phone", "value": "+8613800000002"})
    hers = new_cart(client, "alice-cart", alice)["id"]
    assert client.get(f"/store/carts/{hers}", headers=alice).status_code == 200
    for stranger in (bob, WEB, bearer(MARKET_KEY)):
        assert client.get(f"/store/carts/{hers}", headers=stranger).status_code == 404
        added = post(client, f"/store/carts/{hers}/lines", {"sku": "TEA", "quantity": 1}, "x", stranger)
        assert added.status_code == 404
    # Keys are the shopper's own: Bob's key "alice-cart" starts Bob's cart, not Alice's again.
    assert new_cart(client, "alice-cart", bob)["id"] != hers
    token = alice["Shopper-Token"]
    # Its signature's last hex digit changed (a fixed "00" matched one signature in 256 and forged nothing).
    forged = {**WEB, "Shopper-Token": token[:-1] + ("1" if token[-1] == "0" else "0")}
    assert client.get(f"/store/carts/{hers}", headers=forged).status_code == 401


def test_a_bound_carts_prices_are_its_members(client: TestClient, stack: Stack) -> None:
    alice = sign_in(client)
    cart_id = ready_cart(client, ("BEANS", 1), headers=alice)
    order = post(client, f"/store/carts/{cart_id}/checkout", {"payment_details": [CARD]}, "m-1", alice).json()
    mine = client.get("/store/me/orders", headers=alice).json()["orders"]
    assert [o["id"] for o in mine] == [order["id"]]


def test_an_edit_as_of_a_stale_version_is_412(client: TestClient) -> None:
    cart = new_cart(client)
    cart_id, version = cart["id"], cart["version"]
    post(client, f"/store/carts/{cart_id}/lines", {"sku": "TEA", "quantity": 1}, "v1")
    stale = {**WEB, "If-Match": f'"{version}"'}
    refused = client.put(f"/store/carts/{cart_id}/coupons", json={"coupons": ["SAVE5"]}, headers=stale)
    assert refused.status_code == 412 and refused.json()["type"] == "urn:retailblocks:problem:stale-version"
    current = client.get(f"/store/carts/{cart_id}", headers=WEB).headers["ETag"]
    accepted = client.put(
        f"/store/carts/{cart_id}/coupons", json={"coupons": ["SAVE5"]}, headers={**WEB, "If-Match": current}
    )
    assert accepted.status_code == 200 and accepted.json()["version"] == version + 2
    assert (
        client.put(
            f"/store/carts/{cart_id}/coupons", json={"coupons": []}, headers={**WEB, "If-Match": "junk"}
        ).status_code
        == 412
    )


def test_bad_lines_are_422(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    cart_id = new_cart(client)["id"]
    lines = f"/store/carts/{cart_id}/lines"
    for i, body in enumerate(
        (
            {"sku": "NOPE", "quantity": 1},
            {"sku": "TEA", "quantity": 0},
            {"sku": "TEA", "quantity": -3},
            {"sku": "TEA", "quantity": 10**7},
            {"sku": "TEA", "quantity": 1, "price": 1},
        )
    ):
        refused = post(client, lines, body, f"bad-{i}")
        assert refused.status_code == 422, (body, refused.text)
    post(client, lines, {"sku": "TEA", "quantity": 999_999}, "big")
    assert post(client, lines, {"sku": "TEA", "quantity": 2}, "over").status_code == 422
    assert client.patch(f"{lines}/TEA", json={"quantity": 0}, headers=WEB).status_code == 422
    monkeypatch.setattr(carts_module, "MAX_CART_LINES", 2)
    post(client, lines, {"sku": "MUG", "quantity": 1}, "mug")
    too_many = post(client, lines, {"sku": "BEANS", "quantity": 1}, "beans")
    assert too_many.status_code == 422 and "at most 2 lines" in too_many.json()["detail"]
    assert [line["sku"] for line in client.get(f"/store/carts/{cart_id}", headers=WEB).json()["lines"]] == [
        "TEA",
        "MUG",
    ]


def test_an_untouched_cart_expires(client: TestClient, stack: Stack) -> None:
    cart_id = new_cart(client)["id"]
    stack.clock.advance(CART_TTL / 2)  # type: ignore[attr-defined]
    post(client, f"/store/carts/{cart_id}/lines", {"sku": "TEA", "quantity": 1}, "keep-alive")
    stack.clock.advance(CART_TTL / 2)  # type: ignore[attr-defined]
    assert client.get(f"/store/carts/{cart_id}", headers=WEB).status_code == 200  # the change extended it
    stack.clock.advance(CART_TTL)  # type: ignore[attr-defined]
    gone = client.get(f"/store/carts/{cart_id}", headers=WEB)
    assert gone.status_code == 410 and gone.json()["type"] == "urn:retailblocks:problem:cart-expired"
    assert post(client, f"/store/carts/{cart_id}/lines", {"sku": "TEA", "quantity": 1}, "late").status_code == 410


# -- concurrency, through the Python API the routes call ----------------------------------------------


def _at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i in range(count) on as many threads, started together; their results or errors."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except Exception as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def _concurrent_edits_lose_nothing_and_one_checkout_wins(stack: Stack) -> None:
    web = CartOwner("web")
    cart = stack.carts.create(web, key="concurrent")
    skus = ["TEA", "MUG", "BEANS"]
    added = _at_once(12, lambda i: stack.carts.add_line(cart.id, web, skus[i % 3], 1, key=f"add-{i}"))
    assert not [r for r in added if isinstance(r, Exception)]
    cart = stack.carts.cart(cart.id, web)
    assert {line.sku: line.quantity for line in cart.lines} == {"TEA": 4, "MUG": 4, "BEANS": 4}
    assert cart.version == 1 + 12
    # Stale versions: of edits all made as of one version, exactly one applies.
    stale = _at_once(6, lambda i: stack.carts.set_line(cart.id, web, "TEA", 10 + i, expected_version=cart.version))
    assert len([r for r in stale if not isinstance(r, Exception)]) == 1
    stack.carts.set_payments(cart.id, web, [PaymentRequest("card")])
    stack.carts.set_fulfilment(cart.id, web, Fulfilment("pickup", pickup_location="store-a"))
    # Checkouts racing edits: every checkout gets the one order; no edit lands after the cart closed.
    details = [{"card_number": CARD_OK}]

    def checkout_or_edit(i: int) -> Any:
        if i % 2:
            return stack.carts.add_line(cart.id, web, "TEA", 1, key=f"late-{i}")
        return stack.carts.checkout(cart.id, web, payment_details=details)

    outcomes = _at_once(10, checkout_or_edit)
    orders = {o.id for o in outcomes if hasattr(o, "total")}
    assert len(orders) == 1
    unexpected = [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, BusinessRejection)]
    assert not unexpected, unexpected
    closed = stack.carts.cart(cart.id, web)
    assert closed.status is CartStatus.CHECKED_OUT and closed.order_id in orders
    (order,) = [o for o in stack.orders() if o.id in orders]
    assert {line.sku: line.quantity for line in order.lines} == {line.sku: line.quantity for line in closed.lines}
    assert len(stack.orders()) == 1


@pytest.fixture
def stocked_stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    with api_stack(tmp_path, database_url, stock=50) as running:
        yield running


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_concurrent_edits_and_checkouts(stocked_stack: Stack) -> None:
    _concurrent_edits_lose_nothing_and_one_checkout_wins(stocked_stack)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_edits_and_checkouts_on_postgresql(stocked_stack: Stack) -> None:
    _concurrent_edits_lose_nothing_and_one_checkout_wins(stocked_stack)
