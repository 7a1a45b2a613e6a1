"""Opting out over HTTP: the signed-in shopper for themselves, the back office for a member; campaigns then
send that member nothing by the medium."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.fusion.campaigns import in_holdout
from retailblocks.http import create_app
from retailblocks.stack import Stack, assemble
from tests.fusion.test_campaign_messages import WELCOME, brand
from tests.helpers import write_manifest
from tests.http.conftest import ADMIN_KEY, API_SECTION, KEYS_ENV, bearer
from tests.http.test_shoppers import PHONE, sign_in

ADMIN = bearer(ADMIN_KEY)


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    manifest = write_manifest(tmp_path, database_url, textwrap.dedent(brand(WELCOME)) + API_SECTION)
    with assemble(manifest, clock=clock, ids=RandomIds(0), environ=KEYS_ENV) as running:
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack), raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_shopper_opts_out_once_per_key_and_is_sent_nothing(client: TestClient, stack: Stack) -> None:
    alice = sign_in(client)
    member_id = client.get("/store/me", headers=alice).json()["id"]
    opted = client.post("/store/me/opt-outs", json={"medium": "sms"}, headers={**alice, "Idempotency-Key": "o-1"})
    assert opted.status_code == 200, opted.text
    assert opted.json() == {"member_id": member_id, "medium": "sms", "blocks": ["reach-sandbox"]}
    again = client.post("/store/me/opt-outs", json={"medium": "sms"}, headers={**alice, "Idempotency-Key": "o-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    stack.ingest_signals(
        f'{{"identity": "phone:{PHONE["value"]}", "type": "social.like", "at": "2026-03-01T10:00:00Z"}}', "jsonl"
    )
    run = stack.run_campaign("welcome")
    held_out = in_holdout("spring", member_id, 3_000)
    assert run.messages == ({} if held_out else {"opted_out": 1})


def test_the_back_office_records_an_opt_out_and_bad_requests_are_refused(client: TestClient, stack: Stack) -> None:
    alice = sign_in(client)
    member_id = client.get("/store/me", headers=alice).json()["id"]
    path = f"/admin/members/{member_id}/opt-outs"
    recorded = client.post(
        path, json={"medium": "sms", "source": "phone call"}, headers={**ADMIN, "Idempotency-Key": "a-1"}
    )
    assert recorded.status_code == 200, recorded.text
    unknown_medium = client.post(
        path, json={"medium": "fax", "source": "x"}, headers={**ADMIN, "Idempotency-Key": "a-2"}
    )
    assert unknown_medium.status_code == 422
    no_source = client.post(path, json={"medium": "sms"}, headers={**ADMIN, "Idempotency-Key": "a-3"})
    assert no_source.status_code == 422
    nobody = client.post(
        "/admin/members/mem_nobody/opt-outs",
        json={"medium": "sms", "source": "x"},
        headers={**ADMIN, "Idempotency-Key": "a-4"},
    )
    assert nobody.status_code == 404 and nobody.headers["content-type"].startswith("application/problem+json")
    shopper_on_admin = client.post(
        path, json={"medium": "sms", "source": "x"}, headers={**alice, "Idempotency-Key": "a-5"}
    )
    assert shopper_on_admin.status_code in (401, 403)
