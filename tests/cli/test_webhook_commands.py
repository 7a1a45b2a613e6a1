"""``blocks events`` for webhooks: deliver a round, list failed deliveries and dead letters, redeliver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retailblocks.stack import assemble
from tests.cli.harness import Outcome, blocks
from tests.helpers import SHOP_MANIFEST, cart, receive, write_manifest
from tests.webhook_receiver import ENV, SECRET, Receiver, webhooks_section


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(SECRET, lambda: datetime.now(UTC))
    yield found
    found.down()


def lines(outcome: Outcome) -> list[dict[str, object]]:
    assert outcome.status == 0, outcome.stdout + outcome.stderr
    assert SECRET not in outcome.stdout + outcome.stderr
    return [json.loads(line) for line in outcome.stdout.splitlines()]


def test_failures_are_listed_and_a_dead_letter_redelivered(tmp_path: Path, sqlite_url: str, receiver: Receiver) -> None:
    section = webhooks_section(receiver.url, max_attempts=1, events='["order.placed"]')
    manifest = write_manifest(tmp_path, sqlite_url, SHOP_MANIFEST + section)
    assert blocks("assemble", "-m", manifest, env=ENV).status == 0
    with assemble(manifest, environ=ENV) as stack:
        receive(stack, {"BEANS": 5})
        stack.checkout(cart(("BEANS", 1), channel="market"), key="cli")
        (placed,) = [e.id for e in stack.events(limit=1000) if e.type == "order.placed"]

    receiver.script = ["fail"]
    (failure,) = lines(blocks("events", "-m", manifest, "--deliver", "--failures", "--json", env=ENV))
    assert failure["event_id"] == placed and failure["subscriber"] == "webhook:erp"
    assert failure["state"] == "dead" and "HTTP 500" in str(failure["last_error"])
    shown = blocks("events", "-m", manifest, "--failures", env=ENV)
    assert shown.status == 0 and "0 retrying, 1 dead" in shown.stdout

    redelivered = blocks("events", "-m", manifest, "--redeliver", str(placed), "--subscriber", "webhook:erp", env=ENV)
    assert redelivered.status == 0 and f"re-armed 1 dead letters of event {placed}" in redelivered.stdout
    assert receiver.accepted("/erp") == [placed]
    assert lines(blocks("events", "-m", manifest, "--failures", "--json", env=ENV)) == []

    again = blocks("events", "-m", manifest, "--redeliver", str(placed), env=ENV)
    assert again.status == 2 and "has no dead letter" in again.one_error_line()
    alone = blocks("events", "-m", manifest, "--subscriber", "webhook:erp", env=ENV)
    assert alone.status == 2 and "--redeliver" in alone.one_error_line()
