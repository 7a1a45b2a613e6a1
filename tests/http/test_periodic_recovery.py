"""A served stack recovers on its own, every few seconds, what is left half-way once its lease runs out —
no restart and no operator needed for a worker that died mid-checkout."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retailblocks.flows.saga import SimulatedCrash
from retailblocks.http import create_app
from retailblocks.model import OrderStatus
from tests.helpers import cart, make_stack


def test_a_checkout_left_half_way_is_finished_by_the_servers_sweep(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        stack.flows.faults.arm("checkout", "capture", "before")
        with pytest.raises(SimulatedCrash):
            stack.checkout(cart(("BEANS", 1)), key="died")
        [order] = stack.orders()
        assert order.status is OrderStatus.PLACED
        app = create_app(stack, recover_on_start=False, webhook_interval=None, recover_every=0.05)
        with TestClient(app):
            time.sleep(0.3)
            # Its lease has not run out: the process that began it may still be working on it.
            assert stack.order(order.id).status is OrderStatus.PLACED
            stack.lease_clock.advance(stack.lease + timedelta(seconds=1))  # type: ignore[attr-defined]
            deadline = time.monotonic() + 20
            while stack.order(order.id).status is OrderStatus.PLACED and time.monotonic() < deadline:
                time.sleep(0.05)
        assert stack.order(order.id).status is OrderStatus.FULFILLED
