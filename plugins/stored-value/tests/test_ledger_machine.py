"""A state machine over issue, authorize, capture, void and refund (and replays of them), checking
after every step that the books balance and agree with a simple model of who holds what."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import attrs
import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from retailblocks_stored_value import StoredValue
from retailblocks_stored_value.tables import accounts, authorizations, entries, transactions

from retailblocks.errors import InvalidValue, NotRefundable, PaymentDeclined
from retailblocks.model import Money, PaymentAuthorization
from retailblocks.storage.tables import outbox
from retailblocks.testing import BlockHarness

# Round amounts often, so that captures and refunds meet their limits exactly and go past them.
amounts = st.sampled_from([100, 500, 1_000, 2_000]) | st.integers(min_value=1, max_value=3_000)
MEMBERS = ("alice", "bob")
# How much of what is open to capture or refund: the edges of the limit, or any amount.
shares = st.sampled_from(["half", "all", "one more"]) | st.integers(min_value=1, max_value=3_000)


def _amount(limit: int, share: str | int) -> int:
    if isinstance(share, int):
        return share
    return {"half": max(limit // 2, 1), "all": max(limit, 1), "one more": limit + 1}[share]


_DIRECTORY = tempfile.TemporaryDirectory()  # removed when the interpreter exits
_HARNESS: list[BlockHarness] = []


def _empty_books() -> BlockHarness:
    """One migrated database for every example (shrinking runs thousands), emptied for each."""
    if not _HARNESS:
        url = f"sqlite:///{Path(_DIRECTORY.name) / 'ledger.db'}"
        _HARNESS.append(BlockHarness(StoredValue(), url))
    harness = _HARNESS[0]
    with harness.engine.begin() as connection:
        for table in (entries, authorizations, transactions, accounts, outbox):
            connection.execute(table.delete())
    return harness


@attrs.define
class HeldModel:
    """What the model expects of one authorization."""

    auth: PaymentAuthorization
    payer: str  # the card code or member id the money came from
    amount: int
    captured: int = 0
    released: int = 0
    refunded: int = 0

    @property
    def open(self) -> int:
        return self.amount - self.captured - self.released


class StoredValueLedger(RuleBasedStateMachine):
    cards = Bundle("cards")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.harness = _empty_books()
        self.block = self.harness.block
        assert isinstance(self.block, StoredValue)
        self.keys = (f"key-{n}" for n in itertools.count())
        self.balances: dict[str, int] = dict.fromkeys(MEMBERS, 0)
        self.wallets: set[str] = set()
        self.issued = 0
        self.held: list[HeldModel] = []
        # The last successful call and its result, to replay under the same key.
        self.last: tuple[str, tuple[object, ...], object] | None = None

    def call(self, hook: str, *args: object) -> object:
        with self.harness.context("web") as ctx:
            return getattr(self.block, hook)(ctx, *args)

    @initialize(target=cards)
    def open_the_books(self) -> str:
        # Start with value in every kind of account so that holds, captures and refunds come early.
        for member in MEMBERS:
            self.top_up_wallet(member, 5_000)
        return self.issue_gift_card(10_000)

    @rule(target=cards, amount=amounts)
    def issue_gift_card(self, amount: int) -> str:
        key = next(self.keys)
        code = self.call("payment_issue", "gift_card", Money(amount, "CNY"), None, key)
        assert isinstance(code, str)
        self.balances[code] = amount
        self.issued += amount
        self.last = ("payment_issue", ("gift_card", Money(amount, "CNY"), None, key), code)
        return code

    @rule(member=st.sampled_from(MEMBERS), amount=amounts)
    def top_up_wallet(self, member: str, amount: int) -> None:
        key = next(self.keys)
        self.call("payment_issue", "wallet", Money(amount, "CNY"), member, key)
        self.balances[member] += amount
        self.wallets.add(member)
        self.issued += amount

    @rule(target=holds, payer=st.one_of(cards, st.sampled_from(MEMBERS)), amount=amounts)
    def authorize(self, payer: str, amount: int) -> object:
        key = next(self.keys)
        is_card = payer not in MEMBERS
        method, details = ("gift_card", {"code": payer}) if is_card else ("wallet", {})
        member = None if is_card else payer
        args = (method, Money(amount, "CNY"), details, member, key)
        try:
            auth = self.call("payment_authorize", *args)
        except PaymentDeclined as declined:
            reason = declined.reason
        else:
            reason = None
        if reason is not None:
            assert self.balances[payer] < amount
            opened = is_card or payer in self.wallets
            assert reason == ("insufficient_funds" if opened else "unknown_wallet")
            return multiple()
        assert self.balances[payer] >= amount
        assert isinstance(auth, PaymentAuthorization)
        self.balances[payer] -= amount
        model = HeldModel(auth, payer, amount)
        self.held.append(model)
        self.last = ("payment_authorize", args, auth.id)
        return model

    @rule(hold=holds, share=shares)
    def capture(self, hold: HeldModel, share: str | int) -> None:
        amount = _amount(hold.open, share)
        try:
            self.call("payment_capture", hold.auth, Money(amount, "CNY"), next(self.keys))
        except InvalidValue:
            assert amount > hold.open
            return
        assert amount <= hold.open
        hold.captured += amount

    @rule(hold=holds)
    def void(self, hold: HeldModel) -> None:
        self.call("payment_void", hold.auth, next(self.keys))
        self.balances[hold.payer] += hold.open
        hold.released += hold.open

    @rule(hold=holds, share=shares)
    def refund(self, hold: HeldModel, share: str | int) -> None:
        refundable = hold.captured - hold.refunded
        amount = _amount(refundable, share)
        try:
            self.call("payment_refund", hold.auth, Money(amount, "CNY"), next(self.keys))
        except NotRefundable:
            assert amount > refundable
            return
        assert amount <= refundable
        hold.refunded += amount
        self.balances[hold.payer] += amount

    @precondition(lambda self: self.last is not None)
    @rule()
    def replay_last(self) -> None:
        assert self.last is not None
        hook, args, result = self.last
        replayed = self.call(hook, *args)
        assert getattr(replayed, "id", replayed) == result

    @invariant()
    def books_balance(self) -> None:
        with self.harness.context("web") as ctx:
            assert self.block.audit(ctx) == []

    @invariant()
    def balances_match_the_model(self) -> None:
        with self.harness.context("web") as ctx:
            for payer, expected in self.balances.items():
                assert self.block.balance(ctx, payer) == Money(expected, "CNY"), payer
            assert self.block.balance(ctx, "issuance") == Money(-self.issued, "CNY")
            rows = {row["id"]: row for row in ctx.db.execute(authorizations.select()).mappings()}
        for hold in self.held:
            row = rows[hold.auth.id]
            assert (row["captured"], row["released"], row["refunded"]) == (
                hold.captured,
                hold.released,
                hold.refunded,
            )
            assert row["refunded"] <= row["captured"] <= row["amount"]


StoredValueLedger.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_stored_value_ledger = StoredValueLedger.TestCase
