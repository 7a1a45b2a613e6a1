"""Flows never half-apply: refunds, cancels and checkouts either complete, are refused whole, or stop visibly
for an operator; keys blocks see derive from the flow itself; a stalled owner cannot redo what recovery took
over; and `blocks audit` catches every inconsistency between the orders and the blocks' ledgers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from retailblocks_logistics.testing import FakeCarrier

from retailblocks import assemble
from retailblocks.errors import (
    BusinessRejection,
    FlowStuck,
    FlowTakenOver,
    IdempotencyConflict,
    InvalidValue,
    NotRefundable,
)
from retailblocks.flows import api as flows_api
from retailblocks.flows.audit import audit_flows
from retailblocks.flows.saga import SimulatedCrash
from retailblocks.hookspecs import inventory, membership, payment
from retailblocks.model import Money, OrderStatus, PaymentRequest
from retailblocks.stack import Stack
from retailblocks.storage.tables import idempotency_keys, orders, outbox, saga_log, sagas
from tests.helpers import card, cart, levels, make_stack, member, write_manifest


def cny(text: str) -> Money:
    return Money.parse(f"{text} CNY")


def card_refunded(stack: Stack) -> int:
    """What the card gateway paid back, all charges together."""
    with stack.engine.connect() as connection:
        return int(
            connection.execute(sa.text("SELECT coalesce(sum(refunded), 0) FROM sandbox_card_gateway_charges")).scalar()
        )


def failing(stack: Stack) -> list[str]:
    return [f"{finding.name}: {finding.detail}" for finding in audit_flows(stack) if not finding.ok]


@contextmanager
def refusing(stack: Stack, way: str, spec: Any, error: Exception) -> Iterator[None]:
    """Every call of the hook ``spec`` through ``stack.hooks.<way>`` ("call" or "maybe") raises ``error``."""
    real = getattr(stack.hooks, way)

    def scripted(called: Any, *args: Any, **kwargs: Any) -> Any:
        if called is spec:
            raise error
        return real(called, *args, **kwargs)

    setattr(stack.hooks, way, scripted)
    try:
        yield
    finally:
        setattr(stack.hooks, way, real)


def checkout_aside(stack: Stack, the_cart: Any, key: str) -> tuple[threading.Thread, dict[str, Any]]:
    """Start a checkout in a thread of its own; its order (or its error) lands in the returned dict."""
    outcome: dict[str, Any] = {}

    def shopper() -> None:
        try:
            outcome["order"] = stack.checkout(the_cart, key=key)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=shopper)
    thread.start()
    return thread, outcome


def stock_every_sku(stack: Stack, units: int) -> None:
    with stack.context() as ctx:
        for sku in stack.catalog:
            stack.hooks.call(inventory.inventory_adjust, ctx, sku, "dc", units, "received", f"r-{sku}")


def saga_rows(stack: Stack, flow: str) -> list[Any]:
    with stack.engine.connect() as connection:
        return list(connection.execute(sa.select(sagas).where(sagas.c.flow == flow)).mappings())


def patch_refunds(stack: Stack, fail_on: Callable[[int], BaseException | None]) -> None:
    """Make the n-th provider refund (0-based) raise what ``fail_on(n)`` gives, if anything."""
    real = stack.hooks.call
    calls = {"n": 0}

    def call(spec: Any, *args: Any, **kwargs: Any) -> Any:
        if spec is payment.payment_refund:
            n = calls["n"]
            calls["n"] += 1
            problem = fail_on(n)
            if problem is not None:
                raise problem
        return real(spec, *args, **kwargs)

    stack.hooks.call = call  # type: ignore[method-assign]


# --- 1. keys blocks see derive from the flow -----------------------------------------------------------


def test_one_refund_key_on_two_orders_refunds_each_once(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        first = stack.checkout(cart(("MUG", 2)), key="a")
        second = stack.checkout(cart(("MUG", 2)), key="b")
        assert stack.refund(first.id, {0: 1}, key="R").refunded == cny("30.00")
        again = stack.refund(second.id, {0: 1}, key="R")
        assert again.refunded == cny("30.00") and again.lines[0].refunded_quantity == 1
        assert card_refunded(stack) == 6000
        assert failing(stack) == []


def test_split_payment_refunds_with_one_key_on_two_orders_never_collide(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        placed = []
        for n in range(2):
            with stack.context() as ctx:
                code = stack.hooks.call(payment.payment_issue, ctx, "gift_card", cny("20.00"), None, f"issue-{n}")
            pay = (PaymentRequest("gift_card", cny("10.00"), {"code": code}), card())
            placed.append(stack.checkout(cart(("MUG", 2), pay=pay), key=f"split-{n}"))
        for order in placed:
            refunded = stack.refund(order.id, {0: 1}, key="rf-0001")
            assert refunded.status is OrderStatus.PARTIALLY_REFUNDED and refunded.refunded == cny("30.00")
        assert failing(stack) == []


# --- 2 and 3. refused flows are refused whole, and their keys replay the refusal -------------------------


def test_a_refund_key_too_long_is_refused_before_anything_is_recorded(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(cart(("MUG", 1)), key="k")
        for _ in range(2):
            with pytest.raises(InvalidValue, match="at most 150"):
                stack.refund(order.id, key="x" * 201)
        assert stack.order(order.id).refunded == cny("0.00")
        assert saga_rows(stack, "refund") == []
        assert card_refunded(stack) == 0


def test_a_refund_the_provider_refuses_at_once_is_rejected_and_undone(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(cart(("MUG", 2)), key="k")
        patch_refunds(stack, lambda n: NotRefundable("the gateway refuses refunds today"))
        for _ in range(2):  # the key replays the refusal
            with pytest.raises(NotRefundable, match="refuses refunds"):
                stack.refund(order.id, {0: 1}, key="R")
        after = stack.order(order.id)
        assert after.refunded == cny("0.00") and after.lines[0].refunded_quantity == 0
        assert after.status is OrderStatus.FULFILLED
        [row] = saga_rows(stack, "refund")
        assert row["status"] == "rejected"
        assert failing(stack) == []


def test_a_refund_stopped_half_way_is_stuck_visibly_and_never_done(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        with stack.context() as ctx:
            code = stack.hooks.call(payment.payment_issue, ctx, "gift_card", cny("20.00"), None, "issue")
        pay = (PaymentRequest("gift_card", cny("10.00"), {"code": code}), card())
        order = stack.checkout(cart(("MUG", 2), pay=pay), key="split")
        patch_refunds(stack, lambda n: NotRefundable("the card gateway is refusing") if n == 1 else None)
        with pytest.raises(NotRefundable):
            stack.refund(order.id, key="R")
        with pytest.raises(FlowStuck, match="stuck"):  # asked again: the same answer, not success
            stack.refund(order.id, key="R")
        report = stack.recover()
        [stuck] = report.stuck
        assert "return-money" in report.reasons[stuck] and "refusing" in report.reasons[stuck]
        assert any("stuck after begin: return-money" in line for line in failing(stack))
        # Once mended, an operator runs it again and it completes: each provider refunded exactly once.
        del stack.hooks.call  # the provider works again: the class's own call
        retried = stack.recover(retry_stuck=True)
        assert retried.resumed == (stuck,) and retried.stuck == ()
        assert stack.order(order.id).status is OrderStatus.REFUNDED
        assert card_refunded(stack) == stack.order(order.id).total.amount - 1000
        assert failing(stack) == []


def test_a_cancel_refused_because_the_parcel_left_is_refused_again(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(cart(("MUG", 1)), key="k")
        # The carrier has the parcel: the order's details do not know yet, the logistics block does.
        shipment = order.shipments[0]
        with stack.context() as ctx:
            stack.block("logistics").track(ctx, shipment.id, "shipped")  # type: ignore[attr-defined]
        for _ in range(2):
            with pytest.raises(NotRefundable, match="already left"):
                stack.cancel(order.id)
        assert stack.order(order.id).status is OrderStatus.FULFILLED
        [row] = saga_rows(stack, "cancel")
        assert row["status"] == "rejected"
        assert stack.recover().stuck == ()
        assert failing(stack) == []


# --- 4. invalid requests leave nothing -----------------------------------------------------------------


def test_an_unroutable_payment_method_is_refused_before_any_flow(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        bogus = (PaymentRequest("bogus", None, {}),)
        for _ in range(2):
            with pytest.raises(InvalidValue, match="no payment block accepts method 'bogus'"):
                stack.checkout(cart(("MUG", 1), pay=bogus), key="bogus")
        assert stack.orders() == [] and saga_rows(stack, "checkout") == []
        assert stack.recover().stuck == ()


# --- 5. fencing -----------------------------------------------------------------------------------------


def test_an_owner_stalled_in_its_payment_call_stops_before_recording_it(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card's record of the checkout's last authorization commits with the step. An owner frozen after
    the gateway said yes, past its lease, finds recovery's takeover when it comes back to record: it stops
    there (on PostgreSQL before it takes any lock a compensation takes), and the new owner's void stands."""
    from retailblocks_sandbox_card.sandbox import SandboxGateway

    stack = assemble(write_manifest(tmp_path, database_url))  # system clocks
    stack.lease = timedelta(milliseconds=300)
    stock_every_sku(stack, 10)
    before = levels(stack)
    reached, release = threading.Event(), threading.Event()
    real_authorize = SandboxGateway.authorize

    def authorize_then_freeze(gateway: SandboxGateway, *args: Any, **kwargs: Any) -> Any:
        charge = real_authorize(gateway, *args, **kwargs)
        if not reached.is_set():
            reached.set()
            release.wait(30)
        return charge

    monkeypatch.setattr(SandboxGateway, "authorize", authorize_then_freeze)
    stopped: list[BaseException] = []
    real_hold = flows_api.hold

    def watched_hold(connection: sa.Connection, run: Any) -> None:
        try:
            real_hold(connection, run)
        except FlowTakenOver as error:
            stopped.append(error)
            raise

    monkeypatch.setattr(flows_api, "hold", watched_hold)
    thread, outcome = checkout_aside(stack, cart(("BEANS", 1)), "frozen-in-the-call")
    assert reached.wait(30)
    threading.Event().wait(0.6)  # the lease runs out
    report = stack.recover()
    assert report.compensated, report
    release.set()
    thread.join(30)
    assert len(stopped) == 1  # at its record's first statement
    # The shopper gets the flow's outcome, as a replay of the key would: recovery undid it.
    assert isinstance(outcome.get("error"), BusinessRejection), outcome
    with stack.engine.connect() as connection:
        charges = list(connection.execute(sa.text("SELECT voided, captured FROM sandbox_card_gateway_charges")))
        payments = list(connection.execute(sa.text("SELECT status FROM sandbox_card_payments")))
    assert [(bool(voided), captured) for voided, captured in charges] == [(True, 0)]
    assert [status for (status,) in payments] == ["voided"]  # the new owner's record, not the stalled one's
    assert [order.status for order in stack.orders()] in ([], [OrderStatus.FAILED])
    assert levels(stack) == before
    assert failing(stack) == []
    stack.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_stalled_owner_cannot_redo_what_recovery_took_over(tmp_path: Path, database_url: str, when: str) -> None:
    """The real clock: a checkout frozen past its (short) lease while recovery finishes it, then resumed."""
    if when == "after" and database_url.startswith("sqlite"):
        pytest.skip("a SQLite writer frozen inside its transaction holds the database's one write lock")
    stack = assemble(write_manifest(tmp_path, database_url))  # system clocks
    stack.lease = timedelta(milliseconds=300)
    stock_every_sku(stack, 10)
    # Frozen between transactions ("before" the group deliver, earn and complete run in), or inside one.
    reached, release = stack.flows.faults.hold("checkout", "deliver" if when == "before" else "earn", when)
    thread, outcome = checkout_aside(stack, cart(("BEANS", 1), identities=member("+8613900000009")), "frozen")
    assert reached.wait(30)
    threading.Event().wait(0.6)  # the lease runs out
    report = stack.recover()
    if when == "after" and not report.resumed:
        # PostgreSQL: the frozen transaction holds the order's rows; recovery did not hang behind them and
        # said so. Let the owner go, then recover what it could not finish.
        assert report.skipped, report
    release.set()
    thread.join(30)
    if not report.resumed:
        threading.Event().wait(0.6)
        report = stack.recover()
    assert "error" not in outcome, outcome
    order = stack.order(outcome["order"].id)
    assert order.status is OrderStatus.FULFILLED
    with stack.engine.connect() as connection:
        steps = [
            row.step for row in connection.execute(sa.select(saga_log.c.step).where(saga_log.c.saga_id == order.id))
        ]
        types = [row.type for row in connection.execute(sa.select(outbox.c.type).where(outbox.c.order_id == order.id))]
    assert sorted(steps) == sorted(set(steps)), steps  # no step done twice
    for once in ("order.completed", "points.earned", "order.paid", "order.placed"):
        assert types.count(once) == 1, (once, types)
    assert failing(stack) == []
    stack.close()


# --- 6. recovery happens where it is asked for, and says what it did --------------------------------------


def test_assembling_recovers_nothing_and_recover_reports_what_it_did(tmp_path: Path, database_url: str) -> None:
    stack = make_stack(tmp_path, database_url)
    stack.flows.faults.arm("checkout", "capture", "before")
    with pytest.raises(SimulatedCrash):
        stack.checkout(cart(("MUG", 1)), key="crash")
    stack.close()
    reopened = assemble(write_manifest(tmp_path, database_url), lease_clock=stack.lease_clock)
    assert [row["status"] for row in saga_rows(reopened, "checkout")] == ["running"]
    stack.lease_clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    report = reopened.recover()
    assert len(report.resumed) == 1
    assert reopened.orders()[0].status is OrderStatus.FULFILLED
    reopened.close()


# --- 10. the idempotency fingerprint covers the payment instrument ----------------------------------------


def test_the_same_key_with_another_card_is_a_conflict_and_no_card_is_stored(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        stack.checkout(cart(("MUG", 1)), key="k")
        with pytest.raises(IdempotencyConflict):
            stack.checkout(cart(("MUG", 1), pay=(card("5555555555554444"),)), key="k")
        with stack.engine.connect() as connection:
            stored = " ".join(str(v) for row in connection.execute(sa.select(idempotency_keys)) for v in row)
            stored += " ".join(str(v) for row in connection.execute(sa.select(sagas.c.state)) for v in row)
        assert "4242424242424242" not in stored and "5555555555554444" not in stored


# --- 7. the audit catches each inconsistency ---------------------------------------------------------------


def doctor(stack: Stack, statement: Any) -> None:
    with stack.engine.begin() as connection:
        connection.execute(statement)


def test_the_audit_fails_on_each_doctored_state(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(cart(("MUG", 2), identities=member("+8613900000010")), key="k")
        stack.refund(order.id, {0: 1}, key="R")
        stack.dispatch_events()
        assert failing(stack) == []

        # The order says more went back than the card gateway refunded.
        doctor(stack, orders.update().where(orders.c.id == order.id).values(refunded=orders.c.refunded + 100))
        assert any("paid out by its payment blocks" in line for line in failing(stack))
        doctor(stack, orders.update().where(orders.c.id == order.id).values(refunded=orders.c.refunded - 100))

        # A unit counted as restocked that stock never got back.
        doctor(stack, sa.text("UPDATE sql_inventory_allocations SET returned = returned - 1"))
        assert any("came back to stock" in line for line in failing(stack))
        doctor(stack, sa.text("UPDATE sql_inventory_allocations SET returned = returned + 1"))

        # A flow stuck, and a flow running with nobody owning it.
        doctor(stack, sagas.update().where(sagas.c.flow == "refund").values(status="stuck", error="x"))
        assert any("stuck" in line for line in failing(stack))
        doctor(stack, sagas.update().where(sagas.c.flow == "refund").values(status="running"))
        stack.lease_clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
        assert any("no live owner" in line for line in failing(stack))
        doctor(stack, sagas.update().where(sagas.c.flow == "refund").values(status="completed"))

        # An order event recorded twice.
        with stack.engine.begin() as connection:
            row = connection.execute(sa.select(outbox).where(outbox.c.type == "order.completed")).mappings().one()
            connection.execute(outbox.insert().values({k: v for k, v in row.items() if k != "id"}))
        assert any("order.completed ×2" in line for line in failing(stack))


def test_leases_are_on_the_wall_clock_whatever_the_business_clock(tmp_path: Path, database_url: str) -> None:
    """A simulation stamps its orders with a simulated date; another process recovering on the wall clock
    must not take over flows the simulation is still running."""
    from retailblocks.clock import ManualClock

    manifest = write_manifest(tmp_path, database_url)
    simulated = assemble(manifest, clock=ManualClock())  # business time in the past, leases on the wall
    with simulated.context() as ctx:
        simulated.hooks.call(inventory.inventory_adjust, ctx, "MUG", "dc", 5, "received", "r-mug")
    reached, release = simulated.flows.faults.hold("checkout", "capture", "before")
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(order=simulated.checkout(cart(("MUG", 1)), key="sim")))
    thread.start()
    assert reached.wait(30)
    operator = assemble(manifest)
    try:
        assert operator.recover() == type(operator.recover())()  # nothing due: the lease is live
    finally:
        release.set()
        thread.join(30)
        operator.close()
    assert outcome["order"].status is OrderStatus.FULFILLED
    assert failing(simulated) == []
    simulated.close()


# --- 11. a checkout undone after deliver leaves no booking at the carrier ----------------------------------


def test_a_step_after_deliver_that_fails_cancels_the_carriers_booking(tmp_path: Path, database_url: str) -> None:
    """Earn fails for good: its transaction, shared with deliver, rolls back the logistics block's record of the
    shipment, but the carrier was called before that transaction opened and holds the booking."""
    with make_stack(tmp_path, database_url) as stack:
        carrier = FakeCarrier()
        stack.block("logistics").use_carrier_api("sf", carrier)  # type: ignore[attr-defined]
        before = levels(stack)
        refusal = InvalidValue("the points ledger refuses this order (scripted)")
        with refusing(stack, "maybe", membership.membership_earn, refusal), pytest.raises(InvalidValue, match="ledger"):
            stack.checkout(cart(("MUG", 1), identities=member("+8613800000009")), key="earn-fails")
        assert len(carrier.bookings) == 1
        assert carrier.cancelled == {booking.tracking_number for booking in carrier.bookings.values()}
        (row,) = saga_rows(stack, "checkout")
        assert row["status"] == "compensated"
        assert levels(stack) == before
        assert card_refunded(stack) == 4000  # captured in an earlier transaction: the mug and its shipping paid back
        assert failing(stack) == []


# --- 12. a payment recorded in its step's transaction is undone with that step ---------------------------------


def test_a_gift_card_paying_alone_is_released_when_place_fails_for_good(tmp_path: Path, database_url: str) -> None:
    """The gift card's hold is written in the transaction of authorize and place; place fails for good, so the
    hold rolls back with it and compensation finds nothing held: the saga is compensated, not stuck."""
    with make_stack(tmp_path, database_url) as stack:
        with stack.context() as ctx:
            code = stack.hooks.call(payment.payment_issue, ctx, "gift_card", cny("100.00"), None, "issue")
        before = levels(stack)
        pay = (PaymentRequest("gift_card", None, {"code": code}),)  # the whole order, the last (only) share
        refusal = InvalidValue("the stock ledger refuses this order (scripted)")
        with refusing(stack, "call", inventory.inventory_commit, refusal), pytest.raises(InvalidValue, match="ledger"):
            stack.checkout(cart(("MUG", 1), pay=pay), key="place-fails")
        (row,) = saga_rows(stack, "checkout")
        assert row["status"] == "compensated"
        assert levels(stack) == before
        with stack.context() as ctx:
            assert stack.block("stored-value").balance(ctx, code) == cny("100.00")  # type: ignore[attr-defined]
        assert failing(stack) == []


def test_a_step_whose_commit_fails_is_not_done_and_recovery_finishes_the_flow(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's progress and the order's row are written as its transaction commits (on PostgreSQL in the
    commit's round trip): a commit that fails there leaves the step undone in the database and in the
    running flow alike, and the flow is finished once, as after any failed step."""
    from retailblocks.storage import UnitOfWork

    stack = make_stack(tmp_path, database_url)
    before = levels(stack)
    real_flush = UnitOfWork.flush_deferred
    failed: list[int] = []

    def failing_once(uow: UnitOfWork) -> None:
        if uow._deferred and not failed:  # the first step transaction with deferred writes
            failed.append(len(uow._deferred))
            raise sa.exc.OperationalError("COMMIT", None, Exception("the server went away"))
        real_flush(uow)

    monkeypatch.setattr(UnitOfWork, "flush_deferred", failing_once)
    with pytest.raises(sa.exc.OperationalError):
        stack.checkout(cart(("MUG", 1)), key="commit-fails")
    monkeypatch.setattr(UnitOfWork, "flush_deferred", real_flush)
    assert failed  # the failure struck
    # Undone whole: the order failed, its stock back, no flow left running, the ledgers agree.
    assert [order.status for order in stack.orders()] in ([], [OrderStatus.FAILED])
    assert levels(stack) == before
    assert [row["status"] for row in saga_rows(stack, "checkout")] in ([], ["compensated"])
    assert failing(stack) == []
    order = stack.checkout(cart(("MUG", 1)), key="after-the-failure")
    assert order.status is OrderStatus.FULFILLED
    assert failing(stack) == []
    stack.close()
