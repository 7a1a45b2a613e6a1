"""A signed-in shopper's points and wallet over the store API: the balance, the coupons they hold, and
points redeemed for a partner's programme, once per key, settled with the partner as from Python."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.hookspecs import membership
from retailblocks.http import create_app
from retailblocks.stack import Stack, assemble
from tests.fusion.conftest import BRAND
from tests.helpers import receive, write_manifest
from tests.http.conftest import API_SECTION, KEYS_ENV, WEB_KEY, bearer
from tests.http.test_shoppers import PHONE, sign_in
from tests.http.test_store_api import cart_body, place

WEB = bearer(WEB_KEY)
BOB = {"kind": "phone", "value": "+8613800000002"}


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    manifest = write_manifest(tmp_path, database_url, textwrap.dedent(BRAND) + API_SECTION)
    with assemble(manifest, clock=clock, ids=RandomIds(0), environ=KEYS_ENV) as running:
        receive(running, dict.fromkeys(running.catalog, 10), locations=("dc", "store-a"))
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack), raise_server_exceptions=False) as test_client:
        yield test_client


def give_points(stack: Stack, member_id: str, points: int) -> None:
    with stack.context(flow="test") as ctx:
        stack.hooks.call(membership.membership_adjust, ctx, member_id, points, "welcome", f"welcome-{member_id}")


def redeem(client: TestClient, shopper: dict[str, str], points: int, key: str, partner: str = "metro") -> Any:
    return client.post(
        "/store/me/points/redemptions",
        json={"partner": partner, "points": points},
        headers={**shopper, "Idempotency-Key": key},
    )


def test_points_redeemed_for_a_partner_once_and_settled(client: TestClient, stack: Stack) -> None:
    alice = sign_in(client)
    member_id = client.get("/store/me", headers=alice).json()["id"]
    give_points(stack, member_id, 1000)
    assert client.get("/store/me", headers=alice).json()["points"] == 1000
    first = redeem(client, alice, 300, "r-1")
    assert first.status_code == 201, first.text
    redemption = first.json()
    assert redemption["points"] == 300 and redemption["balance"] == 700 and redemption["partner"] == "metro"
    again = redeem(client, alice, 300, "r-1")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == redemption
    assert client.get("/store/me", headers=alice).json()["points"] == 700
    settled = stack.settlement("metro", date(2026, 3, 2), date(2026, 3, 2))
    (line,) = [line for line in settled.lines if line.reference == redemption["id"]]
    # 300 points at 1.00 CNY per 100 points: the merchant owes the partner 3.00 CNY for them.
    assert line.kind == "points_out" and line.member_id == member_id and line.amount.amount == -300


def test_a_redemption_beyond_the_balance_is_refused_and_takes_nothing(client: TestClient, stack: Stack) -> None:
    alice = sign_in(client)
    member_id = client.get("/store/me", headers=alice).json()["id"]
    give_points(stack, member_id, 100)
    refused = redeem(client, alice, 500, "too-much")
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:retailblocks:problem:insufficient-points"
    assert client.get("/store/me", headers=alice).json()["points"] == 100
    assert stack.settlement("metro", date(2026, 3, 2), date(2026, 3, 2)).lines == ()


def test_a_redemption_needs_a_known_partner_a_shopper_and_a_key(client: TestClient) -> None:
    alice = sign_in(client)
    assert redeem(client, alice, 10, "p-1", partner="nobody").status_code == 422
    assert redeem(client, WEB, 10, "p-2").status_code == 401
    assert redeem(client, alice, 0, "p-3").status_code == 422
    no_key = client.post("/store/me/points/redemptions", json={"partner": "metro", "points": 10}, headers=alice)
    assert no_key.status_code == 400


def test_the_wallet_holds_the_members_own_usable_coupons(client: TestClient, stack: Stack) -> None:
    alice = sign_in(client)
    bob = sign_in(client, BOB)
    alice_id = client.get("/store/me", headers=alice).json()["id"]
    promotions = stack.block("promotions")
    with stack.context(flow="test") as ctx:
        issued = promotions.issue_coupons(ctx, "comeback-12", [alice_id], "comeback-test")  # type: ignore[attr-defined]
    (coupon,) = client.get("/store/me/coupons", headers=alice).json()["coupons"]
    assert coupon["code"] == issued[alice_id] and coupon["promotion_id"] == "comeback-12"
    assert coupon["uses_left"] == 1 and "12.00" in coupon["description"]
    assert client.get("/store/me/coupons", headers=bob).json()["coupons"] == []
    assert client.get("/store/me/coupons", headers=WEB).status_code == 401
    used = place(client, cart_body(("BEANS", 1), identities=[PHONE], coupons=[coupon["code"]]), "use-coupon")
    assert used.status_code == 201, used.text
    assert client.get("/store/me/coupons", headers=alice).json()["coupons"] == []
