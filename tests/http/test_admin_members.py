"""/admin/members: profiles and timelines, linking identities (and so merging), undoing a merge."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from retailblocks.stack import Stack
from tests.helpers import cart, member
from tests.http.conftest import ADMIN_KEY, bearer

ADMIN = bearer(ADMIN_KEY)
PHONE_A, PHONE_B = "+8613800000001", "+8613800000002"


def post(client: TestClient, path: str, body: dict[str, Any], key: str) -> Any:
    return client.post(path, json=body, headers={**ADMIN, "Idempotency-Key": key})


def phone(number: str) -> dict[str, str]:
    return {"kind": "phone", "value": number}


def test_a_members_profile_and_timeline(client: TestClient, stack: Stack) -> None:
    order = stack.checkout(cart(("TEA", 2), identities=member(PHONE_A)), key="a1")
    assert order.member_id
    response = client.get(f"/admin/members/{order.member_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["profile"]["member_id"] == order.member_id and view["profile"]["orders"] == 1
    assert view["profile"]["monetary"]["amount"] == order.total.amount
    assert f"phone:{PHONE_A}" in view["profile"]["identities"]
    assert any(entry["order_id"] == order.id for entry in view["timeline"])
    found = client.get("/admin/members/lookup", params={"identity": f"phone:{PHONE_A}"}, headers=ADMIN)
    assert found.status_code == 200 and found.json() == view
    listed = client.get("/admin/members", headers=ADMIN).json()["data"]
    assert [p["member_id"] for p in listed] == [order.member_id]
    assert client.get("/admin/members/mem_nobody", headers=ADMIN).status_code == 404
    unknown = client.get("/admin/members/lookup", params={"identity": "phone:+8613899999999"}, headers=ADMIN)
    assert unknown.status_code == 404


def test_linking_two_members_identities_merges_them_and_the_merge_can_be_undone(
    client: TestClient, stack: Stack
) -> None:
    first = stack.checkout(cart(("TEA", 1), identities=member(PHONE_A)), key="m1").member_id
    second = stack.checkout(cart(("TEA", 1), identities=member(PHONE_B)), key="m2").member_id
    assert first and second and first != second
    linked = post(client, "/admin/members/link", {"identities": [phone(PHONE_A), phone(PHONE_B)]}, "link-1")
    assert linked.status_code == 200, linked.text
    survivor = linked.json()["id"]
    assert {f"phone:{PHONE_A}", f"phone:{PHONE_B}"} <= set(linked.json()["identities"])
    again = post(client, "/admin/members/link", {"identities": [phone(PHONE_A), phone(PHONE_B)]}, "link-1")
    assert again.headers["Idempotent-Replayed"] == "true"
    [merge] = client.get(f"/admin/members/{survivor}/merges", headers=ADMIN).json()["data"]
    assert {merge["survivor"], merge["absorbed"]} == {first, second} and merge["reverted_at"] is None
    undone = post(client, f"/admin/members/merges/{merge['id']}/undo", {"reason": "two people"}, "undo-1")
    assert undone.status_code == 200, undone.text
    assert undone.json()["reverted_at"] is not None and undone.json()["id"] == merge["id"]
    absorbed = client.get(f"/admin/members/{merge['absorbed']}", headers=ADMIN)
    assert absorbed.status_code == 200 and absorbed.json()["profile"]["member_id"] == merge["absorbed"]


def test_linking_identities_of_nobody_is_404_and_bad_identities_are_422(client: TestClient) -> None:
    strangers = [phone("+8613811111111"), phone("+8613822222222")]
    nobody = post(client, "/admin/members/link", {"identities": strangers}, "l-1")
    assert nobody.status_code == 404, nobody.text
    one = post(client, "/admin/members/link", {"identities": [phone(PHONE_A)]}, "l-2")
    assert one.status_code == 422
    hostile = post(client, "/admin/members/link", {"identities": [phone("\x00"), phone(PHONE_A)]}, "l-3")
    assert hostile.status_code in (404, 422), hostile.text
