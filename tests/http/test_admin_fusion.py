"""/admin/segments, campaigns, settlement and ingest, over the brand the boundaryless stories are told about."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.http import create_app
from retailblocks.model import Identity
from retailblocks.stack import Stack, assemble
from tests.fusion.conftest import BRAND
from tests.helpers import cart, receive, write_manifest
from tests.http.conftest import ADMIN_KEY, API_SECTION, KEYS_ENV, bearer

ADMIN = bearer(ADMIN_KEY)
PHONE = "+8613800000002"


@pytest.fixture
def brand(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Stack]]:
    manifest = write_manifest(tmp_path, database_url, textwrap.dedent(BRAND) + API_SECTION)
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with assemble(manifest, clock=clock, ids=RandomIds(0), environ=KEYS_ENV) as stack:
        receive(stack, dict.fromkeys(stack.catalog, 20), locations=("dc", "store-a"))
        with TestClient(create_app(stack), raise_server_exceptions=False) as client:
            yield client, stack


def post(client: TestClient, path: str, key: str, **kwargs: Any) -> Any:
    headers = {**ADMIN, "Idempotency-Key": key, **kwargs.pop("headers", {})}
    return client.post(path, headers=headers, **kwargs)


def test_a_segment_a_campaign_run_once_and_its_report(brand: tuple[TestClient, Stack]) -> None:
    client, stack = brand
    visits = [
        stack.checkout(
            cart(("TEA", 1), channel="store-a", identities=(Identity("phone", f"+86138000001{n:02}"),)), key=f"v{n}"
        )
        for n in range(2)
    ]
    segments = {s["id"]: s for s in client.get("/admin/segments", headers=ADMIN).json()["data"]}
    regulars = sorted(str(v.member_id) for v in visits)
    assert segments["store-regulars"]["members"] == regulars and segments["store-regulars"]["count"] == 2
    assert [c["id"] for c in client.get("/admin/campaigns", headers=ADMIN).json()["data"]] == ["comeback"]
    run = post(client, "/admin/campaigns/comeback/run", "run-1", json={})
    assert run.status_code == 200, run.text
    assert run.json() == {
        "campaign": "comeback",
        "segment_size": 2,
        "issued": 2,
        "reach": 2,
        "held_out": 0,
        "messages": {},
    }
    assert post(client, "/admin/campaigns/comeback/run", "run-2", json={}).json()["issued"] == 0
    report = client.get("/admin/campaigns/comeback/report", headers=ADMIN)
    assert report.status_code == 200, report.text
    assert report.json()["reach"] == 2 and report.json()["orders"] == []
    assert client.get("/admin/campaigns/nope/report", headers=ADMIN).status_code in (404, 422)
    assert post(client, "/admin/campaigns/nope/run", "run-3", json={}).status_code in (404, 422)


def test_a_partners_settlement_for_a_period(brand: tuple[TestClient, Stack]) -> None:
    client, stack = brand
    order = stack.checkout(cart(("BEANS", 2), identities=(Identity("phone", PHONE),), coupons=("MALL8",)), key="c1")
    response = client.get("/admin/settlement/metro", params={"from": "2026-03-02", "to": "2026-03-02"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    settled = response.json()
    [line] = settled["lines"]
    assert line["kind"] == "discount" and line["reference"] == order.id and line["amount"]["amount"] == 800
    assert settled["net"]["amount"] == 800 and settled["partner_owes_merchant"]["amount"] == 800
    backwards = client.get("/admin/settlement/metro", params={"from": "2026-03-05", "to": "2026-03-01"}, headers=ADMIN)
    assert 400 <= backwards.status_code < 500
    not_a_day = client.get("/admin/settlement/metro", params={"from": "March", "to": "2026-03-01"}, headers=ADMIN)
    assert not_a_day.status_code == 422
    nobody = client.get("/admin/settlement/nobody", params={"from": "2026-03-01", "to": "2026-03-02"}, headers=ADMIN)
    assert 400 <= nobody.status_code < 500


def signal(tag: str, **fields: Any) -> str:
    return json.dumps(
        {"identity": f"phone:{PHONE}", "type": "social.like", "at": "2026-03-01T10:30:00+08:00", "id": tag, **fields}
    )


def test_an_upload_reports_each_bad_line_and_adds_the_good_ones_once(brand: tuple[TestClient, Stack]) -> None:
    client, _stack = brand
    body = "\n".join([signal("s1"), "{not json", signal("s2", at="yesterday"), signal("s3")]) + "\n"
    headers = {"Content-Type": "application/x-ndjson"}
    first = post(client, "/admin/ingest", "ingest-1", content=body, headers=headers)
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["read"], report["added"]) == (4, 2)
    assert [bad["line"] for bad in report["bad"]] == [2, 3] and all(bad["reason"] for bad in report["bad"])
    replay = post(client, "/admin/ingest", "ingest-1", content=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == report
    again = post(client, "/admin/ingest", "ingest-2", content=body, headers=headers)
    assert again.json()["added"] == 0 and again.json()["duplicates"] == 2
    csv = "identity,type,at,id\nphone:+8613800000002,store.visit,2026-03-01T11:00:00Z,v1\n"
    as_csv = post(client, "/admin/ingest", "ingest-3", content=csv, headers={"Content-Type": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.json()["added"] == 1, as_csv.json()
    unknown = post(client, "/admin/ingest", "ingest-4", content=body, headers={"Content-Type": "text/plain"})
    assert unknown.status_code == 400 and "x-ndjson" in unknown.json()["detail"]
    by_query = post(
        client, "/admin/ingest?format=jsonl", "ingest-5", content=body, headers={"Content-Type": "text/plain"}
    )
    assert by_query.status_code == 200


def test_a_statement_issued_confirmed_paid_and_exported_over_http(brand: tuple[TestClient, Stack]) -> None:
    client, stack = brand
    order = stack.checkout(cart(("BEANS", 2), identities=(Identity("phone", PHONE),), coupons=("MALL8",)), key="s1")
    period = {"from": "2026-03-02", "to": "2026-03-02"}
    base = "/admin/settlement/metro/statements"
    draft = client.get(f"{base}/draft", params=period, headers=ADMIN)
    assert draft.status_code == 200, draft.text
    assert draft.json()["status"] == "draft" and draft.json()["id"] is None
    not_over = post(client, base, "st-0", json=period)
    assert not_over.status_code == 422 and "not over yet" in not_over.json()["detail"]
    stack.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    issued = post(client, base, "st-1", json=period)
    assert issued.status_code == 201, issued.text
    statement = issued.json()
    [line] = statement["lines"]
    assert line["reference"] == order.id and statement["total"] == {"amount": 800, "currency": "CNY"}
    again = post(client, base, "st-2", json=period)  # another key, the same period
    assert again.status_code == 201 and again.json()["id"] == statement["id"]
    listed = client.get(base, headers=ADMIN).json()["data"]
    assert [s["id"] for s in listed] == [statement["id"]]
    exported = client.get(f"{base}/{statement['id']}", params={"format": "csv"}, headers=ADMIN)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[1].split(",")[11] == "800"
    early = post(client, f"{base}/{statement['id']}/payment", "st-3", json={"reference": "TRX-9"})
    assert early.status_code == 409 and early.json()["cause"] == "statement_out_of_order"
    assert post(client, f"{base}/{statement['id']}/confirm", "st-4", json={}).json()["status"] == "confirmed"
    paid = post(client, f"{base}/{statement['id']}/payment", "st-5", json={"reference": "TRX-9"})
    assert paid.status_code == 200 and paid.json()["payment_reference"] == "TRX-9"
    assert client.get(f"{base}/stmt_nope", headers=ADMIN).status_code == 404
    # Another partner's path does not reach this partner's statement.
    assert client.get(f"/admin/settlement/other/statements/{statement['id']}", headers=ADMIN).status_code == 404
    extra = post(client, base, "st-6", json={**period, "total": 1})
    assert extra.status_code == 422
    store = client.get(base, headers=bearer("rb_pk_web_0123456789abcdefghij"))
    assert store.status_code == 403
