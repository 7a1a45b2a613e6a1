"""Replays change nothing: the same key returns the same result, another request under it is refused,
and concurrent callers (threads, each with its own connection) agree."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from retailblocks.errors import IdempotencyConflict, InvalidValue, PaymentDeclined
from retailblocks.model import Money


def cny(text: str) -> Money:
    return Money.parse(f"{text} CNY")


def test_replayed_postings_change_nothing(till):
    code = till.issue("gift_card", cny("50.00"), "issue")
    assert till.issue("gift_card", cny("50.00"), "issue") == code
    wallet = till.issue("wallet", cny("10.00"), "top-up", member_id="alice")
    assert till.issue("wallet", cny("10.00"), "top-up", member_id="alice") == wallet

    auth = till.pay_card(code, cny("30.00"), "auth")
    assert till.pay_card(code, cny("30.00"), "auth").id == auth.id
    assert till.pay_card(code.lower(), cny("30.00"), "auth").id == auth.id
    capture = till.capture(auth, cny("20.00"), "capture")
    assert till.capture(auth, cny("20.00"), "capture") == capture
    refund = till.refund(auth, cny("5.00"), "refund")
    assert till.refund(auth, cny("5.00"), "refund") == refund
    till.void(auth, "void")
    till.void(auth, "void")

    assert till.status("auth").id == auth.id
    assert till.balance(code) == cny("35.00")  # 50 - 20 captured + 5 refunded
    assert till.balance("alice") == cny("10.00")
    assert till.balance("issuance") == cny("-60.00")
    counts = {
        kind: len(till.harness.events(kind))
        for kind in (
            "stored_value.issued",
            "payment.authorized",
            "payment.captured",
            "payment.refunded",
            "payment.voided",
        )
    }
    assert counts == {
        "stored_value.issued": 2,
        "payment.authorized": 1,
        "payment.captured": 1,
        "payment.refunded": 1,
        "payment.voided": 1,
    }
    assert till.audit() == []


def test_a_key_reused_for_another_request_is_refused(till):
    code = till.issue("gift_card", cny("50.00"), "issue")
    other = till.issue("gift_card", cny("50.00"), "issue-2")
    auth = till.pay_card(code, cny("30.00"), "auth")
    till.capture(auth, cny("10.00"), "capture")
    till.issue("wallet", cny("5.00"), "top-up", member_id="alice")

    attempts: list[Callable[[], Any]] = [
        lambda: till.issue("gift_card", cny("49.00"), "issue"),
        lambda: till.issue("wallet", cny("50.00"), "issue", member_id="alice"),
        lambda: till.issue("wallet", cny("5.00"), "top-up", member_id="bob"),
        lambda: till.pay_card(code, cny("31.00"), "auth"),
        lambda: till.pay_card(other, cny("30.00"), "auth"),
        lambda: till.pay_card(code, cny("1.00"), "capture"),
        lambda: till.capture(auth, cny("11.00"), "capture"),
        lambda: till.refund(auth, cny("10.00"), "capture"),
        lambda: till.void(auth, "capture"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidValue, match="idempotency key") as caught:
            attempt()
        assert isinstance(caught.value, IdempotencyConflict)
    assert till.balance(code) == cny("20.00")
    assert till.balance(other) == cny("50.00")
    assert till.audit() == []


def test_status_tells_what_became_of_a_key(till):
    code = till.issue("gift_card", cny("5.00"), "issue")
    assert till.status("never-tried") is None
    with pytest.raises(PaymentDeclined):
        till.pay_card(code, cny("6.00"), "declined")
    assert till.status("declined") is None
    auth = till.pay_card(code, cny("5.00"), "made")
    assert till.status("made") == auth
    assert till.status("issue") is None, "the key of an issue is no authorization"


def _run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at once; each result or raised exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as error:  # collected and asserted on by the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_ten_threads_with_one_key_make_one_hold(till):
    code = till.issue("gift_card", cny("50.00"), "issue")

    results = _run_together(10, lambda _: till.pay_card(code, cny("10.00"), "same-key"))

    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert len({auth.id for auth in results}) == 1
    assert till.balance(code) == cny("40.00")
    assert till.balance("holds") == cny("10.00")
    assert len(till.harness.events("payment.authorized")) == 1
    assert till.audit() == []


def test_ten_threads_on_a_card_worth_five_payments(till):
    code = till.issue("gift_card", cny("50.00"), "issue")

    results = _run_together(10, lambda i: till.pay_card(code, cny("10.00"), f"key-{i}"))

    declined = [r for r in results if isinstance(r, PaymentDeclined)]
    authorized = [r for r in results if not isinstance(r, Exception)]
    assert len(authorized) == 5
    assert len(declined) == 5, results
    assert {error.reason for error in declined} == {"insufficient_funds"}
    assert till.balance(code) == cny("0.00")
    assert till.balance("holds") == cny("50.00")
    assert till.audit() == []


def test_concurrent_captures_and_refunds_stay_within_bounds(till):
    code = till.issue("gift_card", cny("50.00"), "issue")
    auth = till.pay_card(code, cny("50.00"), "auth")

    captures = _run_together(8, lambda i: till.capture(auth, cny("10.00"), f"capture-{i}"))
    assert sum(1 for r in captures if not isinstance(r, Exception)) == 5
    refunds = _run_together(8, lambda i: till.refund(auth, cny("15.00"), f"refund-{i}"))
    assert sum(1 for r in refunds if not isinstance(r, Exception)) == 3

    assert till.balance("settled") == cny("5.00")
    assert till.balance(code) == cny("45.00")
    assert till.audit() == []
