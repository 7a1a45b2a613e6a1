"""Flow state is typed and frozen, and the rows an older release wrote still load and recover.

The documents below are saga rows exactly as the previous release wrote them (a ``dict`` of JSON data per
flow), for the scenarios each test sets up again: the same seed gives the same ids to the blocks' records.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from retailblocks.flows.saga import SagaStatus, SimulatedCrash, load_run
from retailblocks.flows.state import CheckoutState, FlowKind, RefundState, load_state, state_document
from retailblocks.model import OrderStatus, PaymentStatus
from retailblocks.stack import Stack
from retailblocks.storage.tables import sagas
from tests.helpers import cart, make_stack, member

#: A checkout an older release left running after placing its order, before capturing.
OLDER_CHECKOUT = json.loads(
    """
{
    "request_hash": "720393c99b927cd353fb35ba52686cc053e8804b326a9fb927139bc2af41da2e",
    "channel": "web",
    "key": "older",
    "member_id": "mem_23a78133287637ebdcd9",
    "plan": [
        {
            "method": "card",
            "amount": {
                "amount": 12800,
                "currency": "CNY"
            }
        }
    ],
    "reservation": {
        "id": "res_c17c23c6612f48268673",
        "lines": [
            {
                "sku": "BEANS",
                "location": "store-a",
                "quantity": 2,
                "backordered": false
            },
            {
                "sku": "TEA",
                "location": "store-a",
                "quantity": 1,
                "backordered": false
            }
        ],
        "expires_at": "2026-03-02T09:15:00+00:00"
    },
    "quote": {
        "block": "logistics",
        "option_id": "sf-std",
        "carrier": "sf",
        "amount": {
            "amount": 1000,
            "currency": "CNY"
        },
        "min_days": 1,
        "max_days": 3,
        "from_locations": [],
        "description": "SF Standard, 1-3 days"
    },
    "total": 12800,
    "authorizations": {
        "0": {
            "id": "ch_cca59e4d6e3c1846d424",
            "block": "card",
            "method": "card",
            "amount": {
                "amount": 12800,
                "currency": "CNY"
            },
            "status": "authorized",
            "reference": "visa ending 4242"
        }
    },
    "captures": {},
    "done": [
        "reserve",
        "authorize",
        "place"
    ]
}
"""
)

#: The same checkout crashed before placing, left half-undone by an older release's recovery.
OLDER_COMPENSATING_CHECKOUT = json.loads(
    """
{
    "channel": "web",
    "key": "older",
    "member_id": "mem_23a78133287637ebdcd9",
    "plan": [
        {
            "method": "card",
            "amount": {
                "amount": 12800,
                "currency": "CNY"
            }
        }
    ],
    "reservation": {
        "id": "res_c17c23c6612f48268673",
        "lines": [
            {
                "sku": "BEANS",
                "location": "store-a",
                "quantity": 2,
                "backordered": false
            },
            {
                "sku": "TEA",
                "location": "store-a",
                "quantity": 1,
                "backordered": false
            }
        ],
        "expires_at": "2026-03-02T09:15:00+00:00"
    },
    "quote": {
        "block": "logistics",
        "option_id": "sf-std",
        "carrier": "sf",
        "amount": {
            "amount": 1000,
            "currency": "CNY"
        },
        "min_days": 1,
        "max_days": 3,
        "from_locations": [],
        "description": "SF Standard, 1-3 days"
    },
    "total": 12800,
    "authorizations": {
        "0": {
            "id": "ch_cca59e4d6e3c1846d424",
            "block": "card",
            "method": "card",
            "amount": {
                "amount": 12800,
                "currency": "CNY"
            },
            "status": "authorized",
            "reference": "visa ending 4242"
        }
    },
    "captures": {},
    "compensating": true,
    "done": [
        "reserve"
    ],
    "request_hash": "720393c99b927cd353fb35ba52686cc053e8804b326a9fb927139bc2af41da2e"
}
"""
)

#: A refund of one unit an older release left running after its first step.
OLDER_REFUND = json.loads(
    """
{
    "lines": {
        "0": 1
    },
    "reason": "broken",
    "restock": true,
    "key": "older-refund",
    "channel": "web",
    "amount": 5000,
    "plan": {
        "0": 5000
    },
    "units": [
        {
            "sku": "BEANS",
            "quantity": 1
        }
    ],
    "lines_refunded": [
        {
            "index": 0,
            "quantity": 1
        }
    ],
    "member_id": "mem_23a78133287637ebdcd9",
    "total": 12800,
    "fully": false,
    "done": [
        "begin"
    ]
}
"""
)


def replace_state(stack: Stack, saga_id: str, document: dict[str, Any]) -> None:
    with stack.engine.begin() as connection:
        connection.execute(sagas.update().where(sagas.c.id == saga_id).values(state=document))


def stored(stack: Stack, saga_id: str) -> tuple[str, dict[str, Any]]:
    with stack.engine.connect() as connection:
        row = connection.execute(sa.select(sagas.c.status, sagas.c.state).where(sagas.c.id == saga_id)).one()
        connection.rollback()
    return row.status, dict(row.state)


def crashed_checkout(tmp_path: Path, database_url: str, step: str) -> tuple[Stack, str]:
    stack = make_stack(tmp_path, database_url)
    stack.flows.faults.arm("checkout", step, "before")
    with pytest.raises(SimulatedCrash):
        stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("+8613800000031")), key="older")
    [order] = stack.orders()
    return stack, order.id


def test_a_checkout_an_older_release_left_running_is_resumed(tmp_path: Path, database_url: str) -> None:
    stack, order_id = crashed_checkout(tmp_path, database_url, "capture")
    # The row as this release wrote it is the row the older one wrote, but for the request's keyed hash.
    assert stored(stack, order_id)[1] == {**OLDER_CHECKOUT, "request_hash": stored(stack, order_id)[1]["request_hash"]}
    replace_state(stack, order_id, OLDER_CHECKOUT)
    stack.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    report = stack.recover()
    assert report.resumed == (order_id,) and not report.stuck
    order = stack.order(order_id)
    assert order.status is OrderStatus.FULFILLED
    assert [p.status for p in order.payments] == [PaymentStatus.CAPTURED]
    status, state = stored(stack, order_id)
    assert status == SagaStatus.COMPLETED
    assert state["done"] == ["reserve", "authorize", "place", "capture", "deliver", "earn", "complete"]
    assert state["captures"] == {"0": 12800} and state["request_hash"] == OLDER_CHECKOUT["request_hash"]
    stack.close()


def test_a_checkout_an_older_release_left_compensating_is_undone(tmp_path: Path, database_url: str) -> None:
    stack, order_id = crashed_checkout(tmp_path, database_url, "place")
    replace_state(stack, order_id, OLDER_COMPENSATING_CHECKOUT)
    stack.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    report = stack.recover()
    assert report.compensated == (order_id,) and not report.stuck
    assert stack.order(order_id).status is OrderStatus.FAILED
    status, state = stored(stack, order_id)
    assert status == SagaStatus.COMPENSATED and state["done"] == [] and state["compensating"] is True
    stack.close()


def test_a_refund_an_older_release_left_running_is_finished(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("+8613800000031")), key="older")
        stack.flows.faults.arm("refund", "return-money", "before")
        with pytest.raises(SimulatedCrash):
            stack.refund(order.id, {0: 1}, key="older-refund", reason="broken")
        saga_id = "rfd_8c818e61c391e00c72596449"
        assert stored(stack, saga_id)[1] == OLDER_REFUND
        replace_state(stack, saga_id, OLDER_REFUND)
        stack.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
        report = stack.recover()
        assert report.resumed == (saga_id,) and not report.stuck
        refunded = stack.order(order.id)
        assert refunded.status is OrderStatus.PARTIALLY_REFUNDED and refunded.refunded.amount == 5000
        # Asked again under its key with the same lines, the refund is the one done, not a conflict.
        assert stack.refund(order.id, {0: 1}, key="older-refund", reason="broken") == stack.order(order.id)


def test_an_older_document_loads_whatever_keys_it_lacks_or_adds() -> None:
    state = load_state(RefundState, {"key": "k", "reason": "r", "some_later_key": 1, "done": ["begin"]})
    assert state == RefundState(key="k", reason="r")
    assert state_document(state)["lines"] is None


def test_settled_values_cannot_be_changed_in_place(tmp_path: Path, database_url: str) -> None:
    stack, order_id = crashed_checkout(tmp_path, database_url, "capture")
    with stack.engine.connect() as connection:
        run = load_run(connection, order_id)
        connection.rollback()
    assert run is not None and run.flow is FlowKind.CHECKOUT
    state = run.state
    assert isinstance(state, CheckoutState)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        state.total = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.authorizations[1] = state.authorizations[0]  # type: ignore[index]
    with pytest.raises(TypeError):
        state.captures[0] = 1  # type: ignore[index]
    assert state.reservation is not None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        state.reservation.id = "other"  # type: ignore[misc]
    assert isinstance(state.plan, tuple) and isinstance(state.reservation.lines, tuple)
    # Progress is a new value: the state it came from is as it was.
    captured = attrs.evolve(state, captures={**state.captures, 0: 12800})
    assert captured.captures == {0: 12800} and state.captures == {}
    stack.close()
