"""Crashes at every step of every flow, before and after the step's side effect, and processes killed at
random: afterwards nothing is held, nothing charged without an order, no points without a sale."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from retailblocks.flows.saga import SimulatedCrash
from retailblocks.model import OrderStatus
from retailblocks.simulation.invariants import check_invariants, stock_snapshot
from retailblocks.stack import Stack
from tests.helpers import cart, make_stack, member, write_manifest

CHECKOUT_STEPS = ["reserve", "authorize", "place", "capture", "deliver", "earn", "complete"]


def assert_consistent(stack: Stack, before) -> None:  # type: ignore[no-untyped-def]
    stack.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    report = stack.recover()
    assert not report.stuck, report
    stack.dispatch_events()
    orders = stack.orders()
    # Among them: no points kept by a failed or cancelled order (asked of membership per order).
    failures = [f"{i.name}: {i.detail}" for i in check_invariants(stack, before, orders) if not i.ok]
    assert not failures, failures
    for order in orders:
        assert order.status in (
            OrderStatus.FULFILLED,
            OrderStatus.FAILED,
            OrderStatus.CANCELLED,
            OrderStatus.REFUNDED,
            OrderStatus.PARTIALLY_REFUNDED,
        ), order.status


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", CHECKOUT_STEPS)
def test_a_crash_at_any_checkout_step_is_resumed_or_compensated(
    tmp_path: Path, database_url: str, step: str, when: str
) -> None:
    stack = make_stack(tmp_path, database_url)
    before = stock_snapshot(stack)
    stack.flows.faults.arm("checkout", step, when)
    with pytest.raises(SimulatedCrash):
        stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("+8613900000001")), key="crash")
    assert_consistent(stack, before)
    if step == "reserve":
        # The first step commits atomically: a crash in it leaves no trace, and a retry simply runs.
        assert stack.orders() == []
        retried = stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("+8613900000001")), key="crash")
        assert retried.status is OrderStatus.FULFILLED
        stack.close()
        return
    [order] = stack.orders()
    # A step that only writes to the database commits together with its progress record: crashing
    # "after" its writes but before the commit undoes them. Once "place" has committed, recovery
    # finishes the order; before that, it compensates.
    placed = CHECKOUT_STEPS.index(step) > CHECKOUT_STEPS.index("place")
    assert order.status is (OrderStatus.FULFILLED if placed else OrderStatus.FAILED)
    # The shopper retrying with the same key gets that outcome, not a second order.
    if placed:
        assert (
            stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("+8613900000001")), key="crash").id
            == order.id
        )
    stack.close()


@pytest.mark.parametrize("step", ["authorize", "place", "capture"])
def test_a_crash_while_compensating_is_finished_by_recovery(tmp_path: Path, database_url: str, step: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        before = stock_snapshot(stack)
        # The card is declined at capture time only for a declined number: use a declined card and crash
        # while undoing the step before the failure.
        stack.flows.faults.arm("checkout", f"undo-{step}", "before")
        stack.flows.faults.arm("checkout", "deliver", "before")
        with pytest.raises(SimulatedCrash):
            stack.checkout(cart(("MUG", 1), identities=member("+8613900000002")), key="undo")
        stack.flows.faults.clear()
        assert_consistent(stack, before)


@pytest.mark.parametrize("step", ["begin", "stop-delivery", "return-stock", "reverse-points", "return-money"])
def test_a_crash_during_cancel_is_finished_by_recovery(tmp_path: Path, database_url: str, step: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        before = stock_snapshot(stack)
        order = stack.checkout(cart(("BEANS", 1), identities=member("+8613900000003")), key="to-cancel")
        stack.flows.faults.arm("cancel", step, "after")
        with pytest.raises(SimulatedCrash):
            stack.cancel(order.id)
        assert_consistent(stack, before)
        expected = OrderStatus.FULFILLED if step == "begin" else OrderStatus.CANCELLED
        assert stack.order(order.id).status is expected


CHILD = """
import sys, random
from retailblocks import assemble
from retailblocks.errors import BusinessRejection
from retailblocks.model import Address, Cart, CartLine, Fulfilment, FulfilmentKind, Identity, PaymentRequest
stack = assemble(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
n = 0
while True:
    n += 1
    lines = tuple(CartLine(rng.choice(["BEANS", "MUG", "TEA"]), rng.randint(1, 2)) for _ in range(rng.randint(1, 3)))
    cart = Cart(channel=rng.choice(["web", "market"]), lines=lines,
                payments=(PaymentRequest("card", None, {"card_number": "4242424242424242"}),),
                identities=(Identity("phone", f"+86137{rng.randrange(20):08d}"),),
                fulfilment=Fulfilment(FulfilmentKind.DELIVERY, Address(country="CN", region="Shanghai")))
    try:
        stack.checkout(cart, key=f"child-{sys.argv[2]}-{n}")
    except BusinessRejection:
        pass
    print(n, flush=True)
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_process_killed_at_a_random_point_leaves_nothing_half_done(
    tmp_path: Path, database_url: str, seed: int
) -> None:
    with make_stack(tmp_path, database_url, stock=40) as stack:
        before = stock_snapshot(stack)
        manifest = write_manifest(tmp_path, database_url)
        script = tmp_path / "child.py"
        script.write_text(CHILD, encoding="utf-8")
        child = subprocess.Popen(
            [sys.executable, str(script), str(manifest), str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        # Kill the child mid-flight at a point the seed picks: once it has placed 1, 4 or 7 orders it is already
        # inside the next checkout. Every wait is bounded, so a child that hangs fails the test instead of it.
        placed = 0
        wanted = 1 + 3 * (seed - 1)
        with selectors.DefaultSelector() as waiting:
            waiting.register(child.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 60
            while placed < wanted:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not waiting.select(timeout=remaining):
                    child.kill()
                    pytest.fail(f"the child placed {placed} orders in 60 s: {child.communicate(timeout=30)[1]}")
                if not child.stdout.readline():
                    pytest.fail(f"the child died: {child.communicate(timeout=30)[1]}")
                placed += 1
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
        stack.recover(ignore_leases=True)
        assert_consistent(stack, before)
        assert stack.orders(), "the child placed no order before it was killed"
