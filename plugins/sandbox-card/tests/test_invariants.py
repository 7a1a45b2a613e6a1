"""Property: whatever sequence of captures, refunds, voids and replays, refunded <= captured <= authorized,
and the block's view always equals the gateway's and the sum of its operations."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from retailblocks_sandbox_card import SandboxCard, SandboxCardConfig
from retailblocks_sandbox_card.tables import gateway_charges, operations, payments

from retailblocks.clock import ManualClock
from retailblocks.errors import InvalidValue, NotRefundable
from retailblocks.model import Money, PaymentAuthorization
from retailblocks.testing import BlockHarness

AUTHORIZED = 10_000
_runs = itertools.count()


class PaymentMachine(RuleBasedStateMachine):
    harness: BlockHarness

    def __init__(self) -> None:
        super().__init__()
        self.run = next(_runs)
        self.keys: list[tuple[str, str, int]] = []  # (kind, key, amount) of accepted operations
        self.captured = 0
        self.refunded = 0
        self.voided = False

    @property
    def block(self) -> SandboxCard:
        assert isinstance(self.harness.block, SandboxCard)
        return self.harness.block

    @initialize()
    def authorize(self) -> None:
        with self.harness.context("web", flow_id=f"ord_{self.run}") as ctx:
            self.auth: PaymentAuthorization = self.block.payment_authorize(
                ctx, "card", Money(AUTHORIZED, "CNY"), {"token": "tok_visa"}, None, f"auth-{self.run}"
            )

    def _key(self, kind: str) -> str:
        return f"{kind}-{self.run}-{len(self.keys)}-{self.captured}-{self.refunded}"

    @rule(amount=st.integers(1, AUTHORIZED))
    def capture(self, amount: int) -> None:
        key = self._key("capture")
        ok = not self.voided and self.captured + amount <= AUTHORIZED
        try:
            with self.harness.context("web") as ctx:
                self.block.payment_capture(ctx, self.auth, Money(amount, "CNY"), key)
        except InvalidValue:
            assert not ok
            return
        assert ok
        self.captured += amount
        self.keys.append(("capture", key, amount))

    @rule(amount=st.integers(1, AUTHORIZED))
    def refund(self, amount: int) -> None:
        key = self._key("refund")
        ok = self.refunded + amount <= self.captured
        try:
            with self.harness.context("web") as ctx:
                self.block.payment_refund(ctx, self.auth, Money(amount, "CNY"), key)
        except NotRefundable:
            assert not ok
            return
        assert ok
        self.refunded += amount
        self.keys.append(("refund", key, amount))

    @rule()
    def void(self) -> None:
        with self.harness.context("web") as ctx:
            self.block.payment_void(ctx, self.auth, self._key("void"))
        self.voided = True

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        if not self.keys:
            return
        kind, key, amount = data.draw(st.sampled_from(self.keys))
        with self.harness.context("web") as ctx:
            if kind == "capture":
                self.block.payment_capture(ctx, self.auth, Money(amount, "CNY"), key)
            else:
                self.block.payment_refund(ctx, self.auth, Money(amount, "CNY"), key)

    @invariant()
    def totals_agree(self) -> None:
        if not hasattr(self, "auth"):
            return
        with self.harness.engine.connect() as connection:
            ours = connection.execute(sa.select(payments).where(payments.c.id == self.auth.id)).mappings().one()
            theirs = (
                connection.execute(sa.select(gateway_charges).where(gateway_charges.c.id == self.auth.id))
                .mappings()
                .one()
            )
            sums = dict(
                connection.execute(
                    sa.select(operations.c.kind, sa.func.sum(operations.c.amount))
                    .where(operations.c.payment_id == self.auth.id, operations.c.kind != "void")
                    .group_by(operations.c.kind)
                ).all()
            )
        assert 0 <= ours["refunded"] <= ours["captured"] <= ours["amount"] == AUTHORIZED
        assert (ours["captured"], ours["refunded"]) == (self.captured, self.refunded)
        assert (theirs["captured"], theirs["refunded"]) == (self.captured, self.refunded)
        assert int(sums.get("capture", 0)) == self.captured
        assert int(sums.get("refund", 0)) == self.refunded


@pytest.mark.parametrize("max_examples", [25])
def test_refunded_never_exceeds_captured_never_exceeds_authorized(database_url: str, max_examples: int) -> None:
    block = SandboxCard(SandboxCardConfig(secret_key="sk_test_props"), block_id="card")
    harness = BlockHarness(block, database_url, clock=ManualClock())
    PaymentMachine.harness = harness
    try:
        run_state_machine_as_test(
            PaymentMachine,
            settings=settings(
                max_examples=max_examples,
                stateful_step_count=12,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        harness.close()
