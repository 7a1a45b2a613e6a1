"""Simulation for third parties: the day's date and each method's payment details come from the profile, and
the block that takes a method may simulate its details (``simulation_payment_details``), reproducibly."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
from retailblocks_sandbox_card.cards import TEST_TOKENS, simulated_card

from retailblocks import Block, Capability, hookimpl
from retailblocks.assembly.discovery import BlockInfo, discover
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.manifest import ManifestError
from retailblocks.model import Money, PaymentAuthorization, PaymentCapture, PaymentRefund
from retailblocks.simulation import Profile, RetailDay, load_profile
from retailblocks.simulation.profile import PaymentChoice, StockLine
from retailblocks.stack import Stack, assemble

MANIFEST = """
version: 1
merchant: {id: qr-shop, name: QR Shop, currency: CNY}
database: "sqlite:///DIRECTORY/shop.db"
channels:
  - {id: web, type: online}
catalog:
  - {sku: TEA, title: Tea, price: "20.00 CNY"}
blocks:
  - use: sql-inventory
    config:
      locations: [{id: dc, kind: warehouse}]
      channels: {web: {locations: [dc]}}
  - use: qr-wallet
"""


class QrWallet(Block):
    """A third party's payment method, as a publisher would write it: shoppers pay with a QR token that
    only the block knows how to make up for a simulated day."""

    name = "qr-wallet"
    capabilities = frozenset({Capability.PAYMENT})
    core_api = "1.3"
    payment_methods = ("qr",)
    reads_core_tables: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: object, *, block_id: str | None = None):
        super().__init__(config, block_id=block_id)
        self.tokens: list[str] = []

    @hookimpl
    def simulation_payment_details(
        self, method: str, details: Mapping[str, str], rng: random.Random
    ) -> Mapping[str, str] | None:
        return {**details, "qr_token": f"qr-{rng.randrange(10**9):09d}"}

    @hookimpl
    def payment_authorize(
        self, method: str, amount: Money, details: Mapping[str, str], idempotency_key: str
    ) -> PaymentAuthorization:
        self.tokens.append(details["qr_token"])
        return PaymentAuthorization(f"qr-auth-{idempotency_key}", self.id, method, amount)

    @hookimpl
    def payment_status(self) -> None:
        return None

    @hookimpl
    def payment_capture(
        self, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentCapture:
        return PaymentCapture(f"qr-cap-{idempotency_key}", authorization.id, amount)

    @hookimpl
    def payment_void(self) -> None: ...

    @hookimpl
    def payment_refund(self, authorization: PaymentAuthorization, amount: Money, idempotency_key: str) -> PaymentRefund:
        return PaymentRefund(f"qr-ref-{idempotency_key}", authorization.id, amount)


PROFILE = Profile(
    date="2025-11-11",
    stock=[StockLine("TEA", "dc", 500)],
    payments=[PaymentChoice(weight=1, method="qr")],
    refund_percent=0,
    cancel_percent=0,
)


def qr_stack(directory: Path, profile: Profile) -> tuple[Stack, ManualClock]:
    directory.mkdir()
    manifest = directory / "blocks.yaml"
    manifest.write_text(textwrap.dedent(MANIFEST).replace("DIRECTORY", str(directory)), encoding="utf-8")
    installed = {
        **discover(),
        "qr-wallet": BlockInfo("qr-wallet", "acme-qr", "1.0", "tests:QrWallet", block_class=QrWallet),
    }
    clock = ManualClock(profile.opening())
    return assemble(manifest, clock=clock, ids=RandomIds(3), installed=installed), clock


def day_of(directory: Path, seed: int, profile: Profile = PROFILE) -> tuple[list[str], set[str]]:
    """The QR tokens the block was paid with in a day of 20 shoppers, and the dates its orders carry."""
    stack, clock = qr_stack(directory, profile)
    try:
        day = RetailDay(stack, profile, seed=seed, clock=clock, run="r1")
        day.open_store()
        result = day.run(20)
        assert result.placed > 0 and result.ok, result.invariants
        block = stack.block("qr-wallet")
        assert isinstance(block, QrWallet)
        return block.tokens, {order.created_at.date().isoformat() for order in day.own_order_list()}
    finally:
        stack.close()


def test_a_third_party_block_simulates_its_own_method_reproducibly(tmp_path: Path) -> None:
    tokens, _dates = day_of(tmp_path / "first", seed=5)
    again, _ = day_of(tmp_path / "again", seed=5)
    other, _ = day_of(tmp_path / "other", seed=6)

    assert tokens and all(token.startswith("qr-") for token in tokens)  # the profile gave no details
    assert tokens == again  # reproducible from the seed
    assert tokens != other


def test_the_profile_says_which_day_is_simulated(tmp_path: Path) -> None:
    _tokens, dates = day_of(tmp_path / "singles", seed=5)
    _tokens, default_dates = day_of(tmp_path / "default", seed=5, profile=attrs.evolve(PROFILE, date=Profile().date))
    assert dates == {"2025-11-11"}
    assert default_dates == {"2026-06-18"}  # the day the demo has always run


def test_a_profile_names_its_date_and_the_details_of_a_method(tmp_path: Path) -> None:
    path = tmp_path / "simulation.yaml"
    path.write_text('date: "2025-11-11"\npayments:\n  - {weight: 1, method: qr, details: {app: acme}}\n', "utf-8")

    profile = load_profile(path, tmp_path / "blocks.yaml")

    assert profile.opening().isoformat() == "2025-11-11T09:00:00+00:00"
    assert profile.payments[0].payment_details() == {"app": "acme"}
    assert PaymentChoice(weight=1).payment_details() == {"card_number": "4242424242424242"}
    assert PaymentChoice(weight=1, card_number="").payment_details() == {}


def test_a_bad_date_is_reported_where_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "simulation.yaml"
    path.write_text("members: 3\ndate: 11/11/2025\n", "utf-8")

    with pytest.raises(ManifestError, match=r"simulation.yaml:2:\d+.*YYYY-MM-DD"):
        load_profile(path, tmp_path / "blocks.yaml")


def test_the_sandbox_card_draws_a_test_card_when_the_profile_names_none() -> None:
    drawn = [simulated_card({}, random.Random(f"7:{n}:payment:0")) for n in range(200)]

    assert all(d is not None and d["token"] in TEST_TOKENS for d in drawn)
    assert len({d["token"] for d in drawn if d}) > 3  # approvals and refusals alike
    assert simulated_card({"card_number": "4242424242424242"}, random.Random(1)) is None  # the profile's
    assert simulated_card({"token": "tok_visa"}, random.Random(1)) is None
