"""Data-subject requests over HTTP: the signed-in shopper exports or erases themselves, the back office does
it for a member; unknown members and bad bodies are refused with problem+json."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from retailblocks.stack import Stack
from tests.http.test_opt_outs import ADMIN, client, stack  # noqa: F401 - the fixtures
from tests.http.test_shoppers import PHONE, sign_in


def test_a_shopper_exports_then_erases_themselves_once_per_key(client: TestClient, stack: Stack) -> None:  # noqa: F811
    alice = sign_in(client)
    member_id = client.get("/store/me", headers=alice).json()["id"]
    exported = client.get("/store/me/export", headers=alice)
    assert exported.status_code == 200, exported.text
    document = exported.json()
    assert document["member"]["id"] == member_id
    assert {"kind": "phone", "value": PHONE["value"]} in document["identities"]

    erased = client.post("/store/me/erasure", headers={**alice, "Idempotency-Key": "e-1"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["member_id"] == member_id and erased.json()["identifiers"] >= 1
    again = client.post("/store/me/erasure", headers={**alice, "Idempotency-Key": "e-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert PHONE["value"] not in json.dumps(stack.export_member(member_id))
    assert not any(PHONE["value"] in json.dumps(e.payload) for e in stack.events(limit=10_000))


def test_the_back_office_erases_a_member_and_bad_requests_are_refused(client: TestClient, stack: Stack) -> None:  # noqa: F811
    alice = sign_in(client)
    member_id = client.get("/store/me", headers=alice).json()["id"]
    assert client.get(f"/admin/members/{member_id}/export", headers=ADMIN).status_code == 200
    path = f"/admin/members/{member_id}/erasure"
    no_source = client.post(path, json={}, headers={**ADMIN, "Idempotency-Key": "x-1"})
    assert no_source.status_code == 422
    nobody = client.post(
        "/admin/members/mem_nobody/erasure", json={"source": "ticket 7"}, headers={**ADMIN, "Idempotency-Key": "x-2"}
    )
    assert nobody.status_code == 404 and nobody.headers["content-type"].startswith("application/problem+json")
    assert client.get("/admin/members/mem_nobody/export", headers=ADMIN).status_code == 404
    shopper = client.post(path, json={"source": "x"}, headers={**alice, "Idempotency-Key": "x-3"})
    assert shopper.status_code in (401, 403)
    done = client.post(path, json={"source": "ticket 7"}, headers={**ADMIN, "Idempotency-Key": "x-4"})
    assert done.status_code == 200, done.text
    assert done.json()["identifiers"] >= 1
    assert PHONE["value"] not in json.dumps(stack.export_member(member_id))


def test_consent_over_http_for_oneself_and_from_the_back_office(client: TestClient, stack: Stack) -> None:  # noqa: F811
    alice = sign_in(client)
    member_id = client.get("/store/me", headers=alice).json()["id"]
    body = {"purpose": "marketing", "granted": False, "medium": "sms"}
    withdrew = client.post("/store/me/consents", json=body, headers={**alice, "Idempotency-Key": "c-1"})
    assert withdrew.status_code == 200, withdrew.text
    assert withdrew.json()["granted"] is False and withdrew.json()["source"].startswith("the member")
    admin_body = {"purpose": "profiling", "granted": False, "source": "letter of 2026-03-02"}
    path = f"/admin/members/{member_id}/consents"
    assert client.post(path, json=admin_body, headers={**ADMIN, "Idempotency-Key": "c-2"}).status_code == 200
    listed = client.get("/store/me/consents", headers=alice).json()["consents"]
    assert [(c["purpose"], c["medium"]) for c in listed] == [("marketing", "sms"), ("profiling", "any")]
    assert client.get(path, headers=ADMIN).json()["consents"] == listed
    unknown = client.post(
        "/store/me/consents", json={**body, "purpose": "selling"}, headers={**alice, "Idempotency-Key": "c-3"}
    )
    assert unknown.status_code == 422
    nobody = client.post(
        "/admin/members/mem_nobody/consents", json=admin_body, headers={**ADMIN, "Idempotency-Key": "c-4"}
    )
    assert nobody.status_code == 404
