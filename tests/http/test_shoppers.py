"""Shoppers over the store API: signed in by the channel's server, seeing only their own."""

from __future__ import annotations

from fastapi.testclient import TestClient

from retailblocks.stack import Stack
from tests.http.conftest import MARKET_KEY, WEB_KEY, WEB_SERVER_KEY, bearer
from tests.http.test_store_api import cart_body, place

WEB = bearer(WEB_KEY)
PHONE = {"kind": "phone", "value": "+8613800000001"}


def sign_in(client: TestClient, identity: dict[str, str] = PHONE) -> dict[str, str]:
    response = client.post("/store/sessions", json={"identities": [identity]}, headers=bearer(WEB_SERVER_KEY))
    assert response.status_code == 201, response.text
    return {**WEB, "Shopper-Token": response.json()["token"]}


def test_only_a_channel_servers_key_signs_shoppers_in(client: TestClient) -> None:
    refused = client.post("/store/sessions", json={"identities": [PHONE]}, headers=WEB)
    assert refused.status_code == 403
    session = client.post("/store/sessions", json={"identities": [PHONE]}, headers=bearer(WEB_SERVER_KEY))
    assert session.status_code == 201
    assert session.json()["member"]["identities"] == ["phone:+8613800000001"]


def test_a_shopper_sees_their_member_and_their_own_orders(client: TestClient, stack: Stack) -> None:
    alice = sign_in(client)
    bob = sign_in(client, {"kind": "phone", "value": "+8613800000002"})
    body = cart_body(("BEANS", 1), identities=[PHONE])
    order = place(client, body, "alice-1").json()
    place(client, cart_body(("MUG", 1), identities=[{"kind": "phone", "value": "+8613800000002"}]), "bob-1")
    me = client.get("/store/me", headers=alice).json()
    assert me["points"] >= 0 and "phone:+8613800000001" in me["identities"]
    mine = client.get("/store/me/orders", headers=alice).json()["orders"]
    assert [o["id"] for o in mine] == [order["id"]]
    theirs = client.get("/store/me/orders", headers=bob).json()["orders"]
    assert order["id"] not in [o["id"] for o in theirs] and len(theirs) == 1


def test_sessions_cannot_be_forged_or_carried_to_another_channel(client: TestClient) -> None:
    alice = sign_in(client)
    token = alice["Shopper-Token"]
    assert client.get("/store/me", headers=WEB).status_code == 401
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert client.get("/store/me", headers={**WEB, "Shopper-Token": forged}).status_code == 401
    other_member = token.replace(token.split(".")[0], "bWVtX290aGVy")
    assert client.get("/store/me", headers={**WEB, "Shopper-Token": other_member}).status_code == 401
    market = {**bearer(MARKET_KEY), "Shopper-Token": token}
    assert client.get("/store/me", headers=market).status_code == 401


def test_linking_a_second_identity(client: TestClient) -> None:
    alice = sign_in(client)
    openid = {"kind": "openid", "value": "o-alice"}
    linked = client.post("/store/me/identities", json={"identity": openid}, headers={**alice, "Idempotency-Key": "l1"})
    assert linked.status_code == 200, linked.text
    assert "openid:o-alice" in linked.json()["identities"]
    again = sign_in(client, openid)
    assert client.get("/store/me", headers=again).json()["id"] == linked.json()["id"]
