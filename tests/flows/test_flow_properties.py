"""Properties of the aftercare flows under any sequence of requests: random orders, refunds and cancels with
random keys — colliding across orders, invalid, retried — never leave the orders and the blocks' ledgers
apart. The money the payment blocks paid out equals what the orders say was refunded, and the units stock
got back equal the units refunds and cancels restocked (both checked by the core's audit, order by order)."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retailblocks.errors import RetailBlocksError
from retailblocks.flows.audit import audit_flows
from retailblocks.hookspecs import payment
from retailblocks.model import Money, Order, PaymentRequest
from tests.helpers import card, cart, make_stack

#: Keys drawn from a small pool so that they collide across orders and operations; two are invalid.
KEYS = st.sampled_from(["k1", "k2", "k3", "shared", "x" * 151, ""])

checkout = st.tuples(
    st.just("checkout"), st.sampled_from(["BEANS", "MUG", "TEA"]), st.integers(1, 3), st.booleans(), KEYS
)
refund = st.tuples(
    st.just("refund"),
    st.integers(0, 5),
    st.one_of(st.none(), st.dictionaries(st.integers(0, 1), st.integers(0, 3), max_size=2)),
    st.booleans(),
    KEYS,
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 5), st.one_of(st.none(), KEYS))
retry = st.tuples(st.just("retry"))
SEEDS = itertools.count(1)
ACTIONS = st.lists(st.one_of(checkout, refund, cancel, retry), min_size=1, max_size=12)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_orders_and_ledgers_never_drift_apart(tmp_path: Path, database_url: str, actions: list[tuple]) -> None:  # type: ignore[type-arg]
    run(tmp_path, database_url, actions)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_orders_and_ledgers_never_drift_apart_on_postgresql(
    tmp_path: Path,
    database_url: str,
    actions: list[tuple],  # type: ignore[type-arg]
) -> None:
    run(tmp_path, database_url, actions)


def run(tmp_path: Path, database_url: str, actions: list[tuple]) -> None:  # type: ignore[type-arg]
    # One database per test, shared by its examples: every example adds orders, and the audit covers them all.
    # Each example's stack draws its ids from its own seed (ids of one database must never repeat).
    seed = next(SEEDS)
    stack = make_stack(tmp_path, database_url, stock=50, seed=seed)
    try:
        placed: list[Order] = list(stack.orders())
        last = None
        for action in actions:
            if action[0] == "retry":
                if last is None:
                    continue
                action = last
            last = action
            # Refused, replayed as refused, or conflicting: all allowed; half-applied is not.
            with contextlib.suppress(RetailBlocksError):
                perform(stack, action, placed, f"e{seed}-")
        failures = [f"{f.name}: {f.detail}" for f in audit_flows(stack) if not f.ok]
        assert failures == [], failures
        assert stack.recover().stuck == ()
    finally:
        stack.close()


def perform(stack, action: tuple, placed: list[Order], scope: str = "") -> None:  # type: ignore[no-untyped-def, type-arg]
    """Apply one action. Checkout keys collide within an example but not across the examples sharing the
    database (else every later example's checkouts would only replay or conflict); refund keys collide
    across orders on purpose, and invalid keys stay invalid."""
    kind = action[0]
    if kind == "checkout":
        _, sku, quantity, split, key = action
        pay = (card(),)
        if split:
            with stack.context() as ctx:
                code = stack.hooks.call(
                    payment.payment_issue, ctx, "gift_card", Money(1000, "CNY"), None, f"gift-{key}-{sku}"
                )
            pay = (PaymentRequest("gift_card", Money(500, "CNY"), {"code": code}), card())
        order = stack.checkout(cart((sku, quantity), pay=pay), key=f"{scope}{key}" if key.isalnum() else key)
        if all(o.id != order.id for o in placed):
            placed.append(order)
    elif kind == "refund" and placed:
        _, index, lines, restock, key = action
        order = placed[index % len(placed)]
        stack.flows.refund(order.id, lines, key=key, restock=restock)
    elif kind == "cancel" and placed:
        _, index, key = action
        stack.cancel(placed[index % len(placed)].id, key=key)
