"""Invalid input leaves no record; only a real rejection (a decline, no stock) is kept (issue 11, item 16).

A checkout whose payment could never be authorized as written (no card number, a number that cannot be
one, a gift card without its code) is refused with InvalidValue before anything is written, exactly as an
unknown SKU is, and its key stays unspent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.errors import InvalidValue, OutOfStock, PaymentDeclined, UnknownSku
from retailblocks.model import PaymentRequest
from retailblocks.stack import Stack
from tests.helpers import CARD_DECLINED, card, cart, levels, make_stack

TABLES = ("orders", "order_lines", "sagas", "saga_log", "idempotency_keys", "outbox")


def counts(stack: Stack) -> dict[str, int]:
    with stack.engine.connect() as connection:
        return {table: int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()) for table in TABLES}


@pytest.mark.parametrize(
    ("payment", "message"),
    [
        (PaymentRequest("card", None, {}), "card_number"),
        (PaymentRequest("card", None, {"card_number": ""}), "card_number"),
        (card("4242 4242 4242 4241"), "not a card number"),
        (card("not-a-card"), "not a card number"),
        (PaymentRequest("gift_card", None, {}), "details\\['code'\\]"),
        (PaymentRequest("wallet", None, {"member_id": ""}), "member id"),
        (PaymentRequest("wallet", None, {}), "wallet payment needs its member"),
        (PaymentRequest("bitcoin", None, {}), "no payment block accepts method 'bitcoin'"),
    ],
    ids=[
        "no details",
        "empty number",
        "fails luhn",
        "letters",
        "gift card without code",
        "empty member",
        "wallet of nobody",
        "method",
    ],
)
def test_a_payment_that_could_never_be_authorized_records_nothing(
    tmp_path: Path, database_url: str, payment: PaymentRequest, message: str
) -> None:
    stack = make_stack(tmp_path, database_url)
    before, stock_before = counts(stack), levels(stack)
    with pytest.raises(InvalidValue, match=message):
        stack.checkout(cart(("MUG", 1), pay=(payment,)), key="k-invalid")
    assert counts(stack) == before
    assert levels(stack) == stock_before
    # The key was not spent: the corrected request goes through under it.
    assert stack.checkout(cart(("MUG", 1)), key="k-invalid").status.value != "failed"
    stack.close()


def test_an_unknown_sku_records_nothing_either(tmp_path: Path, database_url: str) -> None:
    stack = make_stack(tmp_path, database_url)
    before = counts(stack)
    with pytest.raises(UnknownSku):
        stack.checkout(cart(("NOPE", 1)), key="k-sku")
    assert counts(stack) == before
    stack.close()


def test_real_rejections_are_kept_so_their_key_replays_them(tmp_path: Path, database_url: str) -> None:
    stack = make_stack(tmp_path, database_url, stock=1)
    with pytest.raises(PaymentDeclined):
        stack.checkout(cart(("MUG", 1), pay=(card(CARD_DECLINED),)), key="k-declined")
    with pytest.raises(OutOfStock):
        stack.checkout(cart(("MUG", 5)), key="k-oos")
    assert sorted(order.status.value for order in stack.orders()) == ["failed", "failed"]
    with pytest.raises(PaymentDeclined):
        stack.checkout(cart(("MUG", 1), pay=(card(CARD_DECLINED),)), key="k-declined")
    stack.close()
