"""The payment and lifecycle contracts every payment block must meet, run against this one, paying by
gift card (the contract issues one with enough value through the block's own payment_issue)."""

from __future__ import annotations

from collections.abc import Mapping

from retailblocks_stored_value import StoredValue

from retailblocks.hookspecs import payment
from retailblocks.model import Money
from retailblocks.testing import BlockHarness
from retailblocks.testing.conformance import LifecycleContract, PaymentContract


class TestStoredValueMeetsTheContract(PaymentContract, LifecycleContract):
    block_class = StoredValue
    method = "gift_card"

    def gift_card(self, harness: BlockHarness, value: Money) -> str:
        key = harness.ids.new_id("issue")
        return harness.call(
            payment.payment_issue, method=self.method, amount=value, member_id=None, idempotency_key=key
        )

    def details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        return {"code": self.gift_card(harness, amount)}

    def declined_details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        # A card holding less than the amount: declined for insufficient funds.
        return {"code": self.gift_card(harness, Money(amount.amount // 2, amount.currency))}
