"""Webhooks as a server delivers them: a background loop per app that no request waits for; dead letters
listed and redelivered through the admin API."""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.http import create_app
from retailblocks.stack import Stack, assemble
from tests.helpers import SHOP_MANIFEST, receive, write_manifest
from tests.http.conftest import ADMIN_KEY, API_SECTION, KEYS_ENV, WEB_KEY, bearer
from tests.http.test_store_api import cart_body
from tests.webhook_receiver import ENV, SECRET, Receiver, order_event_ids, webhooks_section

ADMIN = bearer(ADMIN_KEY)
WEB = bearer(WEB_KEY)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def receiver(clock: ManualClock) -> Iterator[Receiver]:
    found = Receiver(SECRET, clock.now)
    yield found
    found.release()
    found.down()


def hooked_stack(directory: Path, database_url: str, clock: ManualClock, section: str) -> Stack:
    text = textwrap.dedent(SHOP_MANIFEST) + API_SECTION + section
    stack = assemble(
        write_manifest(directory, database_url, text), clock=clock, ids=RandomIds(0), environ={**KEYS_ENV, **ENV}
    )
    receive(stack, dict.fromkeys(stack.catalog, 20), locations=("dc", "store-a"))
    return stack


def wait_for(condition: object, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_store_checkouts_complete_while_the_servers_delivery_loop_waits_on_a_receiver(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    section = webhooks_section(receiver.url, timeout=30)
    with hooked_stack(tmp_path, database_url, clock, section) as stack:
        receiver.script = ["block"]
        app = create_app(stack, webhook_interval=0.05)
        with TestClient(app, raise_server_exceptions=False) as client:
            first = client.post("/store/orders", json=cart_body(("BEANS", 1)), headers={**WEB, "Idempotency-Key": "o0"})
            assert first.status_code == 201, first.text
            assert receiver.blocked.wait(20)  # the app's own loop took the first event to the receiver
            for n in range(1, 5):
                placed = client.post(
                    "/store/orders", json=cart_body(("MUG", 1)), headers={**WEB, "Idempotency-Key": f"o{n}"}
                )
                assert placed.status_code == 201, placed.text
            assert receiver.accepted("/erp") == []  # every checkout answered while delivery was held up
            receiver.release()
            assert wait_for(lambda: receiver.accepted("/erp") == order_event_ids(stack))
            failures = client.get("/admin/events/failures", headers=ADMIN)
            assert failures.status_code == 200 and failures.json() == {"data": []}
        assert all(item.signature_valid for item in receiver.received)
        assert SECRET not in caplog.text


def test_a_webhooks_dead_letter_is_listed_and_redelivered_through_the_admin_api(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    section = webhooks_section(receiver.url, max_attempts=1, events='["order.placed"]')
    with (
        hooked_stack(tmp_path, database_url, clock, section) as stack,
        TestClient(create_app(stack, webhook_interval=None), raise_server_exceptions=False) as client,
    ):
        placed = client.post("/store/orders", json=cart_body(("BEANS", 1)), headers={**WEB, "Idempotency-Key": "d"})
        assert placed.status_code == 201, placed.text
        receiver.script = ["fail"]
        assert stack.deliver_webhooks().dead == 1

        letters = client.get("/admin/events/dead-letters", headers=ADMIN).json()["data"]
        assert [(d["subscriber"], d["event_type"], d["attempts"]) for d in letters] == [
            ("webhook:erp", "order.placed", 1)
        ]
        failures = client.get("/admin/events/failures", headers=ADMIN).json()["data"]
        assert [(f["subscriber"], f["state"], f["next_attempt_at"]) for f in failures] == [
            ("webhook:erp", "dead", None)
        ]
        event_id = letters[0]["event_id"]
        redelivered = client.post(
            f"/admin/events/{event_id}/redeliver",
            json={"subscriber": "webhook:erp"},
            headers={**ADMIN, "Idempotency-Key": "again"},
        )
        assert redelivered.status_code == 200, redelivered.text
        assert redelivered.json()["rearmed"] == 1
        assert stack.deliver_webhooks().delivered == 1
        assert client.get("/admin/events/dead-letters", headers=ADMIN).json() == {"data": []}
        assert receiver.accepted("/erp") == [event_id]
        for response in (placed, redelivered):
            assert SECRET not in response.text
