"""A stack refuses values beyond model.limits with InvalidValue, the same on SQLite and PostgreSQL, and
records nothing for them (issue 10, items 11 and 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retailblocks.errors import InvalidValue
from retailblocks.model import Cart, CartLine, Fulfilment, FulfilmentKind
from retailblocks.model.limits import MAX_AMOUNT
from retailblocks.stack import Stack
from tests.helpers import SHOP_MANIFEST, card, cart, levels, make_stack

# BEANS at the largest price there is: ten thousand of them come to 10**19 minor units, past 2**63 - 1.
EXPENSIVE = SHOP_MANIFEST.replace('price: "50.00 CNY"', f'price: "{MAX_AMOUNT // 100}.00 CNY"')
TABLES = ("orders", "order_lines", "sagas", "saga_log", "idempotency_keys", "outbox")


def counts(stack: Stack) -> dict[str, int]:
    with stack.engine.connect() as connection:
        return {table: int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()) for table in TABLES}


def test_a_checkout_whose_total_passes_max_amount_is_refused_and_records_nothing(
    tmp_path: Path, database_url: str
) -> None:
    stack = make_stack(tmp_path, database_url, text=EXPENSIVE, stock=10_000)
    before, stock_before = counts(stack), levels(stack)
    store_sale = Fulfilment(FulfilmentKind.CARRY_OUT)
    for quantity in (2, 10_000):
        with pytest.raises(InvalidValue, match="minor units"):
            stack.checkout(cart(("BEANS", quantity), channel="store-a", fulfilment=store_sale), key=f"big-{quantity}")
    assert counts(stack) == before
    assert levels(stack) == stock_before
    # The key was not spent: a sensible cart may use it.
    order = stack.checkout(cart(("TEA", 1), channel="store-a", fulfilment=store_sale), key="big-2")
    assert order.lines[0].sku == "TEA"
    stack.close()


BAD_TEXT = [("NUL", "a\x00b"), ("lone surrogate", "a\udc80b")]


@pytest.mark.parametrize(("why", "text"), BAD_TEXT)
def test_text_a_caller_sends_is_checked_before_any_database_sees_it(
    tmp_path: Path, database_url: str, why: str, text: str
) -> None:
    stack = make_stack(tmp_path, database_url, stock=5)
    before = counts(stack)
    good = cart(("TEA", 1), channel="store-a", fulfilment=Fulfilment(FulfilmentKind.CARRY_OUT))
    with pytest.raises(InvalidValue, match="key"):
        stack.checkout(good, key=text)
    order = stack.checkout(good, key="fine")
    after = counts(stack)
    attempts: list[tuple[str, Any]] = [
        ("order", lambda: stack.cancel(text)),
        ("reason", lambda: stack.cancel(order.id, reason=text)),
        ("key", lambda: stack.cancel(order.id, key=text)),
        ("order", lambda: stack.refund(text, key="r")),
        ("key", lambda: stack.refund(order.id, key=text)),
        ("reason", lambda: stack.refund(order.id, key="r", reason=text)),
        ("order", lambda: stack.order(text)),
    ]
    for what, attempt in attempts:
        with pytest.raises(InvalidValue, match=what):
            attempt()
    assert counts(stack) == after and after["orders"] == before["orders"] + 1
    stack.close()


def test_an_over_long_attribution_is_refused_alike_and_a_long_one_is_kept(tmp_path: Path, database_url: str) -> None:
    stack = make_stack(tmp_path, database_url, stock=5)
    lines = (CartLine("TEA", 1),)
    with pytest.raises(InvalidValue, match="attribution"):
        Cart("store-a", lines, payments=(card(),), attribution="x" * 501)
    order = stack.checkout(Cart("store-a", lines, payments=(card(),), attribution="x" * 500), key="long")
    assert stack.order(order.id).attribution == "x" * 500
    stack.close()


@pytest.mark.parametrize("quantity", [-1, 2**31, 2**63])
def test_refund_quantities_beyond_the_bounds_are_refused(tmp_path: Path, database_url: str, quantity: int) -> None:
    stack = make_stack(tmp_path, database_url, stock=5)
    order = stack.checkout(cart(("TEA", 1), channel="store-a", delivery=False), key="k")
    with pytest.raises(InvalidValue, match="quantity"):
        stack.refund(order.id, {0: quantity}, key="r")
    assert stack.order(order.id).status is order.status
    stack.close()
