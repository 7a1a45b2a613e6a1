"""The payment contract every payment block must meet, run against this one."""

from __future__ import annotations

from retailblocks_sandbox_card import SandboxCard
from retailblocks_sandbox_card.config import SandboxCardConfig

from retailblocks.testing.conformance import PaymentContract


class TestSandboxCardMeetsTheContract(PaymentContract):
    method = "card"

    def make_block(self) -> SandboxCard:
        return SandboxCard(SandboxCardConfig(secret_key="sk_test_conformance"))

    def details(self) -> dict[str, str]:
        return {"card_number": "4242424242424242"}
