"""sandbox-card: a payment block for cards, backed by a sandbox gateway with test cards.

``SandboxCard`` is the block; ``CardGateway`` the protocol its gateway speaks;
``SandboxGateway`` the persisted sandbox; :mod:`retailblocks_sandbox_card.testing` ships
``FakeCardGateway`` for tests.
"""

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
