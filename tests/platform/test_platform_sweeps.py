"""A served platform looks after every active merchant on its own, as a single stack's server does for its
one: flows a dead worker left half-way are recovered, and webhooks are delivered, without a request to
that merchant and without a restart; a paused merchant's storage is left alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retailblocks.flows.saga import SimulatedCrash
from retailblocks.http.platform import create_platform_app
from retailblocks.model import OrderStatus
from retailblocks.platform.operations import Platform, assemble_platform, open_platform, pause_merchant
from retailblocks.stack import Stack
from tests.helpers import cart, receive
from tests.platform.conftest import ENV
from tests.webhook_receiver import ENV as HOOK_ENV
from tests.webhook_receiver import SECRET, Receiver, order_event_ids, webhooks_section

ENVIRON = {**ENV, **HOOK_ENV}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(SECRET, lambda: datetime.now(UTC))
    try:
        yield running
    finally:
        running.down()


@pytest.fixture
def platform(platform_path: Path, receiver: Receiver) -> Iterator[Platform]:
    south = platform_path.parent / "south" / "blocks.yaml"
    south.write_text(south.read_text(encoding="utf-8") + webhooks_section(receiver.url), encoding="utf-8")
    assemble_platform(platform_path, environ=ENVIRON)
    with open_platform(platform_path, environ=ENVIRON) as opened:
        yield opened


def crash_a_checkout(stack: Stack) -> str:
    """A checkout that died after charging and before capturing, its lease already run out."""
    receive(stack, {"BEANS": 3})
    stack.lease = timedelta(0)
    stack.flows.faults.arm("checkout", "capture", "before")
    with pytest.raises(SimulatedCrash):
        stack.checkout(cart(("BEANS", 1)), key="died")
    [order] = stack.orders()
    assert order.status is OrderStatus.PLACED
    return order.id


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_merchants_checkout_left_half_way_is_finished_without_a_request_to_it(platform: Platform) -> None:
    north = platform.stack("north")
    order_id = crash_a_checkout(north)
    app = create_platform_app(platform, recover_every=0.05)
    with TestClient(app):
        assert wait_for(lambda: north.order(order_id).status is not OrderStatus.PLACED)
    assert north.order(order_id).status is OrderStatus.FULFILLED


def test_a_merchants_webhooks_are_delivered_without_a_request_to_it(platform: Platform, receiver: Receiver) -> None:
    south = platform.stack("south")
    receive(south, {"MILK": 2}, locations=("shop",))
    south.checkout(cart(("MILK", 1), delivery=False), key="south-1")
    sent = order_event_ids(south)
    assert sent
    with TestClient(create_platform_app(platform, webhook_interval=0.05)):
        assert wait_for(lambda: set(sent) <= set(receiver.accepted("/erp")))
    assert all(item.signature_valid for item in receiver.received)


def test_a_paused_merchant_is_neither_recovered_nor_delivered_for(
    platform: Platform, platform_path: Path, receiver: Receiver
) -> None:
    north, south = platform.stack("north"), platform.stack("south")
    order_id = crash_a_checkout(north)
    receive(south, {"MILK": 2}, locations=("shop",))
    south.checkout(cart(("MILK", 1), delivery=False), key="south-1")
    pause_merchant(platform_path, "north", environ=ENVIRON)
    pause_merchant(platform_path, "south", environ=ENVIRON)
    platform.statuses(fresh=True)
    with TestClient(create_platform_app(platform, recover_every=0.05, webhook_interval=0.05)):
        time.sleep(0.5)
    assert north.order(order_id).status is OrderStatus.PLACED
    assert receiver.received == []
