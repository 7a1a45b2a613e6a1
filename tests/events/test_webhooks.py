"""Webhooks out: events signed, retried, dead-lettered, redelivered, in order, never in a checkout's way."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.clock import ManualClock
from retailblocks.events.webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InvalidSignature,
    sign,
    verify_webhook,
)
from retailblocks.manifest import ManifestError, parse_manifest
from retailblocks.stack import Stack, assemble
from retailblocks.storage.tables import event_leases
from tests.helpers import SHOP_MANIFEST, cart, receive, write_manifest
from tests.webhook_receiver import ENV, SECRET, Receiver, order_event_ids, webhooks_section

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def receiver(clock: ManualClock) -> Iterator[Receiver]:
    found = Receiver(SECRET, clock.now)
    yield found
    found.release()
    found.down()


def webhook_stack(tmp_path: Path, database_url: str, clock: ManualClock, section: str) -> Stack:
    manifest = write_manifest(tmp_path, database_url, SHOP_MANIFEST + section)
    stack = assemble(manifest, clock=clock, environ=ENV)
    receive(stack, {"BEANS": 50, "MUG": 50})
    return stack


# -- the manifest ------------------------------------------------------------------------------------


def manifest_error(section: str, environ: dict[str, str] = ENV) -> str:
    text = SHOP_MANIFEST.replace('"DATABASE"', '"sqlite:///shop.db"') + section
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, path="shop/blocks.yaml", environ=environ)
    return str(caught.value)


def test_a_valid_section_is_read_and_keeps_its_secret_out_of_sight() -> None:
    text = SHOP_MANIFEST.replace('"DATABASE"', '"sqlite:///shop.db"') + webhooks_section("https://erp.example.com")
    manifest = parse_manifest(text, path="shop/blocks.yaml", environ=ENV)
    (hook,) = manifest.webhooks
    assert (hook.id, hook.url, hook.events, hook.max_attempts) == ("erp", "https://erp.example.com/erp", ("order.",), 8)
    assert hook.subscriber == "webhook:erp" and hook.secret == SECRET.encode()
    assert hook.wants("order.placed") and not hook.wants("stock.reserved") and not hook.wants("orders.x")
    assert SECRET not in repr(manifest) and SECRET not in repr(hook)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (webhooks_section("ftp://erp.example.com"), "expected an http:// or https:// URL"),
        (webhooks_section("https://user:hunter2hunter2@erp.example.com"), "cannot carry a user or password"),
        ("webhooks:\n  - {id: erp, url: 'https://e.example.com', events: ['*']}\n", "missing required key 'secret'"),
        (
            "webhooks:\n  - {id: erp, url: 'https://e.example.com', events: ['*'],\n"
            "     secret: 'in-the-file-0123456789abc'}\n",
            "must come from the environment",
        ),
        (
            "webhooks:\n  - {id: erp, url: 'https://e.example.com', events: ['*'], secret: '${HOOK_SECRET}', "
            "timeout: 3}\n",
            "unknown key 'timeout'; did you mean 'timeout_seconds'?",
        ),
        (webhooks_section("https://e.example.com", events="[]"), "non-empty list"),
        (webhooks_section("https://e.example.com", events='["Order Placed"]'), "expected an event type"),
        (webhooks_section("https://e.example.com", max_attempts=0), "expected 1 to 50 attempts"),
        (webhooks_section("https://e.example.com", timeout=600), "expected 0.1 to 60 seconds"),
        (
            webhooks_section("https://a.example.com") + webhooks_section("https://b.example.com").split("\n", 2)[2],
            "duplicate webhook id 'erp'",
        ),
    ],
)
def test_what_is_wrong_with_a_webhook_is_said_where(section: str, expected: str) -> None:
    message = manifest_error(section)
    assert expected in message
    assert "shop/blocks.yaml:" in message and "webhooks[" in message
    assert "hunter2" not in message and "in-the-file" not in message


def test_a_short_secret_is_refused_without_being_shown() -> None:
    message = manifest_error(webhooks_section("https://e.example.com"), {"HOOK_SECRET": "short-secret"})
    assert "too short" in message and "short-secret" not in message


# -- signatures ---------------------------------------------------------------------------------------


def signed(body: bytes, timestamp: int, secret: str = SECRET, event_id: int = 7) -> dict[str, str]:
    return {
        ID_HEADER: str(event_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret.encode(), timestamp, body),
    }


def test_a_signed_delivery_verifies_and_a_tampered_or_replayed_one_does_not() -> None:
    body = json.dumps({"id": 7, "type": "order.placed"}).encode()
    stamp = int(START.timestamp())
    headers = signed(body, stamp)
    assert verify_webhook(SECRET, headers, body, START + timedelta(seconds=30)) == 7
    assert verify_webhook(SECRET, {k.lower(): v for k, v in headers.items()}, body, START) == 7
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(SECRET, headers, body.replace(b"placed", b"refunded"), START)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook(SECRET, {**headers, TIMESTAMP_HEADER: str(stamp + 1)}, body, START)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_webhook("another-secret-0123456789abcdef", headers, body, START)
    with pytest.raises(InvalidSignature, match="replay"):
        verify_webhook(SECRET, headers, body, START + timedelta(minutes=6))
    with pytest.raises(InvalidSignature, match="carries"):
        verify_webhook(SECRET, {ID_HEADER: "7"}, body, START)
    with pytest.raises(InvalidSignature, match="not the event"):
        verify_webhook(SECRET, signed(body, stamp, event_id=8), body, START)
    # While a secret is rotated, a delivery may carry two signatures: one valid is enough.
    rotating = {**headers, SIGNATURE_HEADER: "v1=00ff, " + headers[SIGNATURE_HEADER]}
    assert verify_webhook(SECRET, rotating, body, START) == 7


# -- delivery -----------------------------------------------------------------------------------------


def test_a_receiver_that_fails_times_out_and_is_down_gets_every_event_in_order(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    with webhook_stack(tmp_path, database_url, clock, webhooks_section(receiver.url)) as stack:
        for n in range(3):
            stack.checkout(cart(("BEANS", 1), channel="market"), key=f"w{n}")
        wanted = order_event_ids(stack)
        assert len(wanted) >= 6
        receiver.script = ["ok", "fail", "fail", "slow"]
        reports = []
        for round_number in range(40):
            if round_number == 3:
                receiver.down()
            if round_number == 6:
                receiver.up()
            reports.append(stack.deliver_webhooks())
            clock.advance(timedelta(minutes=30))
            if set(wanted) <= set(receiver.accepted("/erp")) and not stack.delivery_failures():
                break
        assert receiver.accepted("/erp") == wanted  # every one, in order (of first reception)
        assert all(item.signature_valid for item in receiver.received)
        assert sum(r.failed for r in reports) >= 5  # two 500s, a time-out, refused connections
        assert any("no answer within" in str(r) or r.failed for r in reports)
        assert sum(r.dead for r in reports) == 0 and stack.delivery_failures() == []
        # Nothing is sent twice once it was answered: only the timed-out event came again.
        times = [item.event_id for item in receiver.received]
        assert {event_id for event_id in times if times.count(event_id) > 1} <= {wanted[1], wanted[2]}
        assert stack.deliver_webhooks().delivered == 0


def test_only_the_wanted_types_are_sent(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    section = webhooks_section(receiver.url, events='["order.placed", "stock."]')
    with webhook_stack(tmp_path, database_url, clock, section) as stack:
        stack.checkout(cart(("BEANS", 1), channel="market"), key="types")
        stack.deliver_webhooks()
        types = {item.event_type for item in receiver.received}
        assert "order.placed" in types and any(t.startswith("stock.") for t in types)
        assert not any(t.startswith("order.") and t != "order.placed" for t in types)
        expected = [e.id for e in stack.events(limit=10_000) if e.type == "order.placed" or e.type.startswith("stock.")]
        assert receiver.accepted("/erp") == expected


def test_a_delivery_failing_max_attempts_times_is_a_dead_letter_until_redelivered(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    section = webhooks_section(receiver.url, max_attempts=2, events='["order.placed"]')
    with webhook_stack(tmp_path, database_url, clock, section) as stack:
        stack.checkout(cart(("BEANS", 1), channel="market"), key="dead")
        receiver.script = ["fail", "fail"]
        assert stack.deliver_webhooks().failed == 1
        clock.advance(timedelta(seconds=4))
        assert stack.deliver_webhooks().delivered == 0  # the backoff (5 s) has not run out: nothing sent
        clock.advance(timedelta(seconds=2))
        assert stack.deliver_webhooks().dead == 1
        (letter,) = stack.dead_letters()
        assert letter.subscriber == "webhook:erp" and letter.event_type == "order.placed"
        assert letter.attempts == 2 and "HTTP 500" in letter.last_error
        assert [(f.subscriber, f.dead) for f in stack.delivery_failures()] == [("webhook:erp", True)]

        redelivery = stack.redeliver(letter.event_id, "webhook:erp")
        assert redelivery.rearmed == 1
        assert stack.deliver_webhooks().delivered == 1
        assert stack.dead_letters() == [] and stack.delivery_failures() == []
        assert receiver.accepted("/erp") == [letter.event_id]


def test_a_dead_letter_lets_the_subscribers_newer_events_go_on(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    section = webhooks_section(receiver.url, max_attempts=1, events='["order.placed"]')
    with webhook_stack(tmp_path, database_url, clock, section) as stack:
        stack.checkout(cart(("BEANS", 1), channel="market"), key="first")
        stack.checkout(cart(("BEANS", 1), channel="market"), key="second")
        receiver.script = ["fail"]
        report = stack.deliver_webhooks()
        assert (report.dead, report.delivered) == (1, 1)
        first, second = [e.id for e in stack.events(limit=10_000) if e.type == "order.placed"]
        assert receiver.accepted("/erp") == [second] and [d.event_id for d in stack.dead_letters()] == [first]


def test_two_delivery_loops_never_send_to_one_subscriber_at_once(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    with webhook_stack(tmp_path, database_url, clock, webhooks_section(receiver.url)) as stack:
        for n in range(4):
            stack.checkout(cart(("BEANS", 1), channel="market"), key=f"lease{n}")
        wanted = order_event_ids(stack)
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                start.wait()
                for _ in range(200):
                    stack.deliver_webhooks(limit=3)
                    if set(wanted) <= set(receiver.accepted("/erp")):
                        return
            except BaseException as error:  # reported by the test, not lost in a thread
                errors.append(error)

        threads = [threading.Thread(target=loop) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert receiver.most_in_flight["/erp"] == 1
        assert receiver.accepted("/erp") == wanted
        assert [item.event_id for item in receiver.received] == wanted  # and none twice


def test_a_lease_held_elsewhere_is_left_alone_until_it_runs_out(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    with webhook_stack(tmp_path, database_url, clock, webhooks_section(receiver.url)) as stack:
        stack.checkout(cart(("BEANS", 1), channel="market"), key="held")
        now = stack.lease_clock.now()
        with stack.engine.begin() as connection:
            connection.execute(
                event_leases.insert().values(
                    subscriber="webhook:erp", holder="another-process", lease_until=now + timedelta(minutes=1)
                )
            )
        assert stack.deliver_webhooks().busy == 1 and receiver.received == []
        with stack.engine.begin() as connection:  # the other process died: its lease ran out
            connection.execute(
                event_leases.update()
                .where(event_leases.c.subscriber == "webhook:erp")
                .values(lease_until=now - timedelta(seconds=1))
            )
        assert stack.deliver_webhooks().delivered == len(order_event_ids(stack))
        with stack.engine.connect() as connection:
            holder = connection.execute(sa.select(event_leases.c.holder)).scalar()
        assert holder == ""  # released at the end of the round


def test_checkouts_complete_while_a_receiver_blocks_delivery(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver
) -> None:
    section = webhooks_section(receiver.url, timeout=30)
    with webhook_stack(tmp_path, database_url, clock, section) as stack:
        stack.checkout(cart(("BEANS", 1), channel="market"), key="before")
        receiver.script = ["block"]
        delivering = threading.Thread(target=stack.deliver_webhooks)
        delivering.start()
        assert receiver.blocked.wait(10)
        orders = [stack.checkout(cart(("MUG", 1), channel="market"), key=f"during{n}") for n in range(5)]
        assert {order.status.value for order in orders} == {stack.order(orders[0].id).status.value}
        assert len(stack.orders()) == 6 and orders[0].status.value in ("paid", "fulfilled")
        assert delivering.is_alive()  # the checkouts did not wait for the receiver
        receiver.release()
        delivering.join(30)
        for _ in range(10):
            stack.deliver_webhooks()
        assert receiver.accepted("/erp") == order_event_ids(stack)


@pytest.mark.parametrize("history", [False, True])
def test_a_webhook_added_to_a_stack_with_a_history_starts_from_now_unless_it_asks_for_the_history(
    tmp_path: Path, database_url: str, clock: ManualClock, receiver: Receiver, history: bool
) -> None:
    with webhook_stack(tmp_path, database_url, clock, "") as stack:
        stack.checkout(cart(("BEANS", 1), channel="market"), key="before")
        before = order_event_ids(stack)
    section = webhooks_section(receiver.url) + ("    history: true\n" if history else "")
    manifest = write_manifest(tmp_path, database_url, SHOP_MANIFEST + section)
    with assemble(manifest, clock=clock, environ=ENV) as stack:
        stack.checkout(cart(("BEANS", 1), channel="market"), key="after")
        after = [event_id for event_id in order_event_ids(stack) if event_id not in before]
        stack.deliver_webhooks()
        assert receiver.accepted("/erp") == (before + after if history else after)
    # Assembling again keeps the subscriber where it got to: nothing is skipped, nothing sent twice.
    with assemble(manifest, clock=clock, environ=ENV) as stack:
        stack.checkout(cart(("BEANS", 1), channel="market"), key="later")
        later = [event_id for event_id in order_event_ids(stack) if event_id not in before + after]
        stack.deliver_webhooks()
        assert receiver.accepted("/erp") == (before if history else []) + after + later


def test_history_is_true_or_false() -> None:
    assert "expected true or false" in manifest_error(
        webhooks_section("https://e.example.com") + "    history: yes please\n"
    )
