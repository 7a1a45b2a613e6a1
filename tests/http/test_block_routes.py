"""Blocks' own routes under /blocks/{block_id}: the sandbox card gateway's signed notifications resolve a
checkout whose authorization timed out, through the real HTTP app."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from retailblocks_sandbox_card import notify
from retailblocks_sandbox_card.tables import gateway_charges, gateway_notifications

from retailblocks.assembly.lockfile import write_lock
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.http import create_app
from retailblocks.stack import Stack, assemble
from tests.helpers import SHOP_MANIFEST, receive, write_manifest
from tests.http.conftest import API_SECTION, KEYS_ENV, WEB_KEY, bearer

CALLBACK_SECRET = "whsec_sandbox_0123456789abcdefghij"
TIMES_OUT_AUTHORIZED = "4000000000000119"
TIMES_OUT_NOT_AUTHORIZED = "4000000000000127"
ROUTE = "/blocks/card/notifications"
PROBLEM = "application/problem+json"


def card_manifest() -> str:
    # The gateway's own answer comes an hour after a time-out: far later than a flow's lease, so only the
    # notification can resolve the checkout before recovery takes it up.
    card = (
        "config: {secret_key: sk_test_core_tests, timeout_resolution: 1h, callback_secret: '${CARD_CALLBACK_SECRET}'}"
    )
    text = textwrap.dedent(SHOP_MANIFEST).replace("config: {secret_key: sk_test_core_tests}", card)
    assert card in text
    return text + API_SECTION


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    manifest = write_manifest(tmp_path, database_url, card_manifest())
    environ = {**KEYS_ENV, "CARD_CALLBACK_SECRET": CALLBACK_SECRET}
    with assemble(manifest, clock=clock, ids=RandomIds(0), lease_clock=clock, environ=environ) as running:
        receive(running, dict.fromkeys(running.catalog, 10), locations=("dc", "store-a"))
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack, recover_on_start=False), raise_server_exceptions=False) as test_client:
        yield test_client


def checkout(client: TestClient, card: str, key: str) -> Any:
    body = {
        "lines": [{"sku": "BEANS", "quantity": 1}],
        "payments": [{"method": "card", "details": {"card_number": card}}],
        "fulfilment": {"kind": "pickup", "pickup_location": "store-a"},
    }
    return client.post("/store/orders", json=body, headers={**bearer(WEB_KEY), "Idempotency-Key": key})


def queued(stack: Stack) -> list[tuple[str, bytes]]:
    return notify.pending(stack.engine)


def signed(body: bytes, at: datetime, secret: str = CALLBACK_SECRET) -> dict[str, str]:
    return {notify.SIGNATURE_HEADER: notify.signature(secret, int(at.timestamp()), body)}


def send(client: TestClient, body: bytes, headers: Mapping[str, str]) -> Any:
    return client.post(ROUTE, content=body, headers={"Content-Type": "application/json", **headers})


def timed_out_checkout(client: TestClient, stack: Stack, card: str) -> bytes:
    """A checkout whose authorization timed out: refused to the shopper, its flow left for recovery, and
    the gateway's notification queued."""
    response = checkout(client, card, "timeout-1")
    assert response.status_code == 402, response.text
    assert response.json()["type"] == "urn:retailblocks:problem:payment-declined"
    [flow] = stack.unfinished_flows()
    assert flow.status == "running"
    [(_id, body)] = queued(stack)
    return body


def recover_after_lease(stack: Stack) -> Any:
    stack.clock.advance(stack.lease + timedelta(seconds=1))  # type: ignore[attr-defined]
    return stack.recover()


def test_signed_notification_of_an_authorization_lets_recovery_release_it(client: TestClient, stack: Stack) -> None:
    body = timed_out_checkout(client, stack, TIMES_OUT_AUTHORIZED)
    # Without the notification, recovery cannot finish: the gateway cannot tell yet (for an hour).
    report = recover_after_lease(stack)
    assert report.compensated == () and len(stack.unfinished_flows()) == 1

    answer = send(client, body, signed(body, stack.clock.now()))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "authorized"
    assert len(stack.events(event_type="payment.authorized")) == 1

    report = recover_after_lease(stack)
    assert len(report.compensated) == 1
    assert stack.unfinished_flows() == []
    # The hold the shopper was told would be released is released at the gateway.
    with stack.engine.connect() as connection:
        [voided] = connection.execute(sa.select(gateway_charges.c.voided)).scalars()
    assert voided
    assert len(stack.events(event_type="payment.voided")) == 1


def test_signed_notification_of_no_authorization_compensates(client: TestClient, stack: Stack) -> None:
    body = timed_out_checkout(client, stack, TIMES_OUT_NOT_AUTHORIZED)
    answer = send(client, body, signed(body, stack.clock.now()))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "not_authorized"
    report = recover_after_lease(stack)
    assert len(report.compensated) == 1 and stack.unfinished_flows() == []
    assert stack.events(event_type="payment.authorized") == []
    assert [level.reserved for level in stack.stock_levels(["BEANS"])] == [0, 0]


def test_the_same_notification_twice_records_it_once(client: TestClient, stack: Stack) -> None:
    body = timed_out_checkout(client, stack, TIMES_OUT_AUTHORIZED)
    first = send(client, body, signed(body, stack.clock.now()))
    stack.clock.advance(timedelta(seconds=30))  # type: ignore[attr-defined]
    again = send(client, body, signed(body, stack.clock.now()))
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(stack.events(event_type="payment.authorized")) == 1


def test_delivery_marks_only_what_the_route_accepted(client: TestClient, stack: Stack) -> None:
    timed_out_checkout(client, stack, TIMES_OUT_AUTHORIZED)
    sent: list[int] = []

    def down(_url: str, _body: bytes, _headers: Mapping[str, str]) -> int:
        raise ConnectionRefusedError

    def through_the_app(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        assert url == f"http://testserver{ROUTE}"
        sent.append(send(client, body, headers).status_code)
        return sent[-1]

    url = f"http://testserver{ROUTE}"
    failed = notify.deliver(stack.engine, CALLBACK_SECRET, url, stack.clock, send=down)
    assert failed.delivered == () and len(failed.failed) == 1 and len(queued(stack)) == 1
    wrong_secret = notify.deliver(
        stack.engine, "whsec_not_the_right_one_0123456789", url, stack.clock, send=through_the_app
    )
    assert wrong_secret.delivered == () and sent == [401]
    done = notify.deliver(stack.engine, CALLBACK_SECRET, url, stack.clock, send=through_the_app)
    assert len(done.delivered) == 1 and sent == [401, 200]
    assert queued(stack) == []
    assert notify.deliver(stack.engine, CALLBACK_SECRET, url, stack.clock, send=through_the_app).delivered == ()
    with stack.engine.connect() as connection:
        assert connection.execute(sa.select(gateway_notifications.c.attempts)).scalar_one() == 3


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    document: dict[str, Any] = response.json()
    assert document["status"] == status
    return document


def test_forged_stale_and_replayed_notifications_are_refused(client: TestClient, stack: Stack) -> None:
    body = timed_out_checkout(client, stack, TIMES_OUT_AUTHORIZED)
    now = stack.clock.now()
    unsigned = problem_of(send(client, body, {}), 401)
    assert unsigned["type"] == "urn:retailblocks:problem:unauthenticated"
    problem_of(send(client, body, signed(body, now, "whsec_forged_by_someone_else_012345")), 401)
    problem_of(send(client, body, {notify.SIGNATURE_HEADER: "v1=abc"}), 401)
    problem_of(send(client, body, {notify.SIGNATURE_HEADER: "t=abc,v1=abc"}), 401)
    # The body changed under a signature made for another.
    tampered = body.replace(b'"amount":5000', b'"amount":1')
    problem_of(send(client, tampered, signed(body, now)), 401)
    stale = problem_of(send(client, body, signed(body, now - timedelta(minutes=6))), 401)
    assert "seconds away from now" in stale["detail"]
    problem_of(send(client, body, signed(body, now + timedelta(minutes=6))), 401)
    # A notification captured on the wire and sent again later is stale by then.
    captured = signed(body, now)
    stack.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    problem_of(send(client, body, captured), 401)
    # Nothing of it was recorded.
    assert stack.events(event_type="payment.authorized") == []


def test_bad_requests_to_the_route(client: TestClient, stack: Stack) -> None:
    now = stack.clock.now()
    unknown = notify.notification_body("ntf_x", notify.FAILED, "never-attempted", 5000, "CNY", None).encode()
    assert "never-attempted" in problem_of(send(client, unknown, signed(unknown, now)), 404)["detail"]
    for malformed in (b"{not json", b"[]", b'{"id": "n", "type": "authorization.maybe"}'):
        problem_of(send(client, malformed, signed(malformed, now)), 400)
    no_charge = json.dumps(
        {"id": "n", "type": notify.SUCCEEDED, "idempotency_key": "k", "amount": 1, "currency": "CNY"}
    ).encode()
    assert "'charge'" in problem_of(send(client, no_charge, signed(no_charge, now)), 400)["detail"]
    problem_of(client.get(ROUTE), 405)
    problem_of(client.post("/blocks/card/elsewhere", content=b"{}"), 404)
    problem_of(client.post("/blocks/inventory/notifications", content=b"{}"), 404)
    problem_of(client.post("/blocks/nothing-here", content=b"{}"), 404)
    # The server's body limit holds for blocks' routes too.
    problem_of(send(client, b"x" * 5000, {}), 413)


def test_a_notification_for_another_amount_is_refused(client: TestClient, stack: Stack) -> None:
    body = timed_out_checkout(client, stack, TIMES_OUT_AUTHORIZED)
    other = body.replace(b'"amount":5000', b'"amount":4000')
    assert other != body
    problem_of(send(client, other, signed(other, stack.clock.now())), 400)


def test_the_callback_secret_is_never_shown(client: TestClient, stack: Stack, caplog: Any) -> None:
    caplog.set_level("DEBUG")
    body = timed_out_checkout(client, stack, TIMES_OUT_AUTHORIZED)
    responses = [
        send(client, body, signed(body, stack.clock.now())),
        send(client, body, {}),
        send(client, b"{not json", signed(b"{not json", stack.clock.now())),
        client.get("/admin/blocks", headers=bearer(KEYS_ENV["ADMIN_KEY"])),
        client.get("/openapi.json"),
    ]
    assert responses[0].status_code == 200 and responses[3].status_code == 200
    lock = write_lock(stack.plan).read_text(encoding="utf-8")
    card = stack.block("card")
    seen = "\n".join(r.text + str(dict(r.headers)) for r in responses) + caplog.text + lock + repr(card)
    seen += repr(card.config) + json.dumps([body.decode() for _id, body in queued(stack)])
    assert CALLBACK_SECRET not in seen
    assert "0123456789abcdefghij" not in seen
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "retailblocks.http.access"]
    assert {line["route"] for line in access if line["route"].startswith("/blocks/")} == {"/blocks/card/*"}


def test_without_a_callback_secret_the_block_mounts_nothing(tmp_path: Path, database_url: str) -> None:
    from tests.http.conftest import api_stack

    with api_stack(tmp_path, database_url, stock=0) as plain, TestClient(create_app(plain)) as test_client:
        problem_of(test_client.post(ROUTE, content=b"{}"), 404)


def test_the_notify_command_sends_signed_notifications_and_keeps_the_refused(tmp_path: Path, database_url: str) -> None:
    import http.server
    import threading

    from retailblocks_sandbox_card import GatewayTimeout, SandboxGateway

    from retailblocks.model import Money
    from tests.cli.harness import blocks

    manifest = write_manifest(tmp_path, database_url, card_manifest())
    environ = {**KEYS_ENV, "CARD_CALLBACK_SECRET": CALLBACK_SECRET}
    assert blocks("assemble", "-m", manifest, env=environ).status == 0
    with assemble(manifest, environ=environ) as running:
        gateway = SandboxGateway(running.engine, clock=running.clock, ids=running.ids)
        with pytest.raises(GatewayTimeout):
            gateway.authorize(TIMES_OUT_AUTHORIZED, Money(5000, "CNY"), idempotency_key="cli-1")
        engine = running.engine

        received: list[tuple[str, bytes, str | None]] = []
        answer = [503]

        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, body, self.headers.get(notify.SIGNATURE_HEADER)))
                self.send_response(answer[0])
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            refused = blocks("sandbox-card", "notify", "-m", manifest, "--url", url, env=environ)
            assert refused.status == 1 and "1 left for later" in refused.stdout
            assert len(notify.pending(engine)) == 1
            answer[0] = 200
            sent = blocks("sandbox-card", "notify", "-m", manifest, "--url", url + "/", "--json", env=environ)
            assert sent.status == 0, sent.stderr
            assert len(json.loads(sent.stdout)["delivered"]) == 1
        finally:
            server.shutdown()
            server.server_close()
        assert notify.pending(engine) == []
        path, body, signature = received[-1]
        assert path == ROUTE
        notify.verify(CALLBACK_SECRET, body, signature, datetime.now(UTC))
        assert json.loads(body)["idempotency_key"] == "cli-1"
        assert CALLBACK_SECRET not in refused.stdout + refused.stderr + sent.stdout + sent.stderr
    bad_url = blocks("sandbox-card", "notify", "-m", manifest, "--url", "ftp://example.com", env=environ)
    assert bad_url.status == 2 and "--url" in bad_url.one_error_line()
