"""A stateful property test of the points ledger on SQLite.

Random sequences of earning, redeeming (points as payment), reversing, expiring, adjusting and merging
(and unmerging) must keep every balance equal to the sum of its postings, never let a guarded account go negative, and
balance every journal.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from retailblocks_loyalty import InsufficientPoints, Loyalty, LoyaltyConfig

from retailblocks.clock import ManualClock
from retailblocks.errors import InvalidValue, PaymentDeclined
from retailblocks.model import Identity
from retailblocks.testing import BlockHarness

from .conftest import START, check_ledger, cny, order


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="loyalty-state-"))
        self.harness = BlockHarness(
            Loyalty(LoyaltyConfig(points_expire_after=timedelta(days=10))),
            f"sqlite:///{self.directory / 'ledger.db'}",
            clock=ManualClock(START),
        )
        self.members: list[str] = []
        self.orders: list[tuple[str, int]] = []  # (order id, total in fen)
        self.step = 0

    def key(self, what: str) -> str:
        self.step += 1
        return f"{what}-{self.step}"

    @initialize()
    def enroll(self) -> None:
        with self.harness.context() as ctx:
            for index in range(3):
                identity = Identity("phone", f"1380000000{index}")
                self.members.append(self.harness.block.membership_identify(ctx, [identity], True).id)
                self.harness.clock.advance(timedelta(seconds=1))

    @rule(who=st.integers(0, 2), yuan=st.integers(1, 300))
    def earn(self, who: int, yuan: int) -> None:
        order_id = self.key("order")
        with self.harness.context() as ctx:
            self.harness.block.membership_earn(
                ctx, self.members[who], order(order_id, ("SKU", 1, f"{yuan}.00")), self.key("earn")
            )
        self.orders.append((order_id, yuan * 100))

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), who=st.integers(0, 2), share=st.integers(1, 100))
    def reverse(self, data: st.DataObject, who: int, share: int) -> None:
        order_id, total = data.draw(st.sampled_from(self.orders))
        with self.harness.context() as ctx:
            self.harness.block.membership_reverse(
                ctx,
                self.members[who],
                order_id,
                cny(f"{total * share // 100 / 100:.2f}"),
                cny(f"{total / 100:.2f}"),
                self.key("reverse"),
            )

    @rule(who=st.integers(0, 2), points=st.integers(-200, 200).filter(bool))
    def adjust(self, who: int, points: int) -> None:
        try:
            with self.harness.context() as ctx:
                self.harness.block.membership_adjust(ctx, self.members[who], points, "test", self.key("adj"))
        except InsufficientPoints:
            pass

    @rule(who=st.integers(0, 2), fen=st.integers(1, 300), capture=st.booleans(), refund=st.booleans())
    def redeem(self, who: int, fen: int, capture: bool, refund: bool) -> None:
        block = self.harness.block
        try:
            with self.harness.context() as ctx:
                auth = block.payment_authorize(
                    ctx, "points", cny(f"{fen / 100:.2f}"), {}, self.members[who], self.key("pay")
                )
        except PaymentDeclined:
            return
        with self.harness.context() as ctx:
            if capture:
                block.payment_capture(ctx, auth, cny(f"{(fen + 1) // 2 / 100:.2f}"), self.key("cap"))
            block.payment_void(ctx, auth, self.key("void"))
            if capture and refund:
                block.payment_refund(ctx, auth, cny("0.01"), self.key("refund"))

    @rule(days=st.integers(1, 8))
    def expire(self, days: int) -> None:
        self.harness.clock.advance(timedelta(days=days))
        with self.harness.context() as ctx:
            self.harness.block.stack_maintain(ctx)

    @rule(a=st.integers(0, 2), b=st.integers(0, 2))
    def merge(self, a: int, b: int) -> None:
        identities = [Identity("phone", f"1380000000{a}"), Identity("phone", f"1380000000{b}")]
        with self.harness.context() as ctx:
            self.harness.block.membership_identify(ctx, identities, True)

    @rule(data=st.data())
    def unmerge(self, data: st.DataObject) -> None:
        merges = [e.payload["merge_id"] for e in self.harness.events("member.merged")]
        if not merges:
            return
        merge_id = data.draw(st.sampled_from(merges))
        try:
            with self.harness.context() as ctx:
                self.harness.block.unmerge(ctx, merge_id)
        except InvalidValue as refused:
            # The one refusal allowed: its survivor was merged again since, and that merge goes first.
            if "revert that later merge first" not in str(refused):
                raise

    @invariant()
    def ledger_holds(self) -> None:
        with self.harness.engine.connect() as connection:
            check_ledger(connection)
        with self.harness.context() as ctx:
            for member_id in self.members:
                member = self.harness.block.membership_member(ctx, member_id)
                assert member is not None
                assert member.points >= 0

    def teardown(self) -> None:
        self.harness.close()
        shutil.rmtree(self.directory, ignore_errors=True)


LedgerMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedger = LedgerMachine.TestCase
