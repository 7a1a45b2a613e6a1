"""sandbox-card: a payment block for cards, backed by a sandbox gateway with test cards.

``SandboxCard`` is the block; ``CardGateway`` the protocol its gateway speaks;
``SandboxGateway`` the persisted sandbox; :mod:`retailblocks_sandbox_card.testing` ships
``FakeCardGateway`` for tests.
"""

# The names are loaded when first asked for, not when the package is imported: `blocks --help` imports this
# package's command module, which must not pull in the block and its database layer.
from __future__ import annotations

from typing import TYPE_CHECKING

from retailblocks.lazy import lazy_exports

if TYPE_CHECKING:
    from retailblocks_sandbox_card.block import SandboxCard
    from retailblocks_sandbox_card.cards import TEST_CARDS, TEST_TOKENS, CardOutcome, luhn_valid
    from retailblocks_sandbox_card.config import SandboxCardConfig
    from retailblocks_sandbox_card.errors import IdempotencyKeyReused
    from retailblocks_sandbox_card.gateway import (
        CardGateway,
        GatewayCharge,
        GatewayDeclined,
        GatewayError,
        GatewayOperation,
        GatewayRejected,
        GatewayTimeout,
        GatewayUnavailable,
    )
    from retailblocks_sandbox_card.sandbox import SandboxGateway

_GATEWAY = "retailblocks_sandbox_card.gateway"
_CARDS = "retailblocks_sandbox_card.cards"
_EXPORTS = {
    "TEST_CARDS": _CARDS,
    "TEST_TOKENS": _CARDS,
    "CardOutcome": _CARDS,
    "luhn_valid": _CARDS,
    "CardGateway": _GATEWAY,
    "GatewayCharge": _GATEWAY,
    "GatewayDeclined": _GATEWAY,
    "GatewayError": _GATEWAY,
    "GatewayOperation": _GATEWAY,
    "GatewayRejected": _GATEWAY,
    "GatewayTimeout": _GATEWAY,
    "GatewayUnavailable": _GATEWAY,
    "IdempotencyKeyReused": "retailblocks_sandbox_card.errors",
    "SandboxCard": "retailblocks_sandbox_card.block",
    "SandboxCardConfig": "retailblocks_sandbox_card.config",
    "SandboxGateway": "retailblocks_sandbox_card.sandbox",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "TEST_CARDS",
    "TEST_TOKENS",
    "CardGateway",
    "CardOutcome",
    "GatewayCharge",
    "GatewayDeclined",
    "GatewayError",
    "GatewayOperation",
    "GatewayRejected",
    "GatewayTimeout",
    "GatewayUnavailable",
    "IdempotencyKeyReused",
    "SandboxCard",
    "SandboxCardConfig",
    "SandboxGateway",
    "luhn_valid",
]
