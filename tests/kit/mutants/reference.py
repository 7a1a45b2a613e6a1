"""The contracts configured for the reference blocks, for mutants to subclass with a broken block.

Each mutant module (``mutant_<area>.py``) defines ``Mutant<What>`` classes: one of these configured on a
subclass of a reference block with one deliberate bug; ``tests/kit/test_mutants.py`` runs each and
passes when the kit fails it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from retailblocks_sandbox_card import SandboxCard
from retailblocks_sql_inventory import SqlInventory
from retailblocks_stored_value import StoredValue

from retailblocks.hookspecs import payment
from retailblocks.model import Money
from retailblocks.testing import BlockHarness
from retailblocks.testing.conformance import InventoryContract, LifecycleContract, PaymentContract

SECRET = "sk_test_mutant_9f8e7d6c5b4a3f2e1d0c"


class SandboxCardContract(PaymentContract, LifecycleContract):
    block_class = SandboxCard
    config = {"secret_key": "${CARD_KEY}", "timeout_resolution": "30s"}
    environ = {"CARD_KEY": SECRET}
    method = "card"
    outcome_known_after = timedelta(seconds=30)

    def details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        return {"card_number": "4242424242424242"}

    def declined_details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        return {"card_number": "4000000000000002"}

    def unknown_outcome_details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        return {"card_number": "4000000000000119"}


class StoredValueContract(PaymentContract, LifecycleContract):
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
        return {"code": self.gift_card(harness, Money(amount.amount // 2, amount.currency))}


class SqlInventoryContract(InventoryContract, LifecycleContract):
    block_class = SqlInventory
    config = {"locations": [{"id": "store-1", "kind": "store"}]}
