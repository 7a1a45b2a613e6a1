"""The payment and lifecycle contracts every payment block must meet, run against this one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from retailblocks_sandbox_card import SandboxCard

from retailblocks.model import Money
from retailblocks.testing import BlockHarness
from retailblocks.testing.conformance import LifecycleContract, PaymentContract


class TestSandboxCardMeetsTheContract(PaymentContract, LifecycleContract):
    block_class = SandboxCard
    config = {"secret_key": "${SANDBOX_CARD_KEY}", "timeout_resolution": "30s"}
    environ = {"SANDBOX_CARD_KEY": "sk_test_conformance_4eC39HqLyjWD"}
    method = "card"
    outcome_known_after = timedelta(seconds=30)

    def details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        return {"card_number": "4242424242424242"}

    def declined_details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        return {"card_number": "4000000000000002"}

    def unknown_outcome_details(self, harness: BlockHarness, amount: Money) -> Mapping[str, str]:
        return {"card_number": "4000000000000119"}  # the gateway authorizes; the answer is lost
