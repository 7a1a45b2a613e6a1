"""Amounts and text that enter stored value stay within model.limits, alike on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from retailblocks.errors import InvalidValue
from retailblocks.model import Money
from retailblocks.model.limits import MAX_AMOUNT


def test_a_wallet_cannot_be_topped_up_past_max_amount(till: Any) -> None:
    top = Money(MAX_AMOUNT, "CNY")
    wallet = till.issue("wallet", top, "t1", member_id="m1")
    with pytest.raises(InvalidValue, match=str(MAX_AMOUNT)):
        till.issue("wallet", Money(1, "CNY"), "t2", member_id="m1")
    assert till.balance(wallet) == top
    assert till.audit() == []


BAD_TEXT = [("NUL", "x\x00y"), ("lone surrogate", "x\ud800y")]


@pytest.mark.parametrize(("why", "text"), BAD_TEXT)
def test_bad_text_is_refused_the_same_on_both_databases(till: Any, why: str, text: str) -> None:
    ten = Money(1000, "CNY")
    code = till.issue("gift_card", ten, "g1")
    with pytest.raises(InvalidValue, match="key"):
        till.issue("gift_card", ten, text)
    with pytest.raises(InvalidValue, match="member"):
        till.issue("wallet", ten, "w1", member_id=text)
    with pytest.raises(InvalidValue, match="code"):
        till.pay_card(text, ten, "p1")
    with pytest.raises(InvalidValue, match="member"):
        till.authorize("wallet", ten, "p2", {"member_id": text})
    with pytest.raises(InvalidValue, match="gift card or wallet"):
        till.balance(text)
    with pytest.raises(InvalidValue, match="key"):
        till.status(text)
    assert till.balance(code) == ten
    assert till.audit() == []
