"""Contract tests a block author inherits; kept here for compatibility, they live in
:mod:`retailblocks.testing.contracts`. See docs/testing-blocks.md::

    from retailblocks.testing.conformance import LifecycleContract, PaymentContract

    class TestQrWallet(PaymentContract, LifecycleContract):
        block_class = QrWallet
        config = {"merchant_key": "${QR_KEY}"}
        environ = {"QR_KEY": "sk_test_0123456789abcdef01234567"}
        method = "qr"

        def declined_details(self, harness, amount):
            return {"qr_token": "declined"}
"""

from retailblocks.testing.contracts import (
    REFUSED,
    Contract,
    InventoryContract,
    LifecycleContract,
    LogisticsContract,
    MarketingContract,
    MembershipContract,
    PaymentContract,
    ReachContract,
    at_once,
    secret_leaks,
)

__all__ = [
    "REFUSED",
    "Contract",
    "InventoryContract",
    "LifecycleContract",
    "LogisticsContract",
    "MarketingContract",
    "MembershipContract",
    "PaymentContract",
    "ReachContract",
    "at_once",
    "secret_leaks",
]
