"""The membership contract: what every membership block does, checked through the hooks.

* identifying is idempotent: the same identities find the same member, a new identity is linked to it,
  enrolling happens once even when several channels ask at the same moment, and nothing is enrolled
  without ``enroll``;
* an order earns once per key (replayed or raced), and its points show in the member's balance;
* a balance never falls below zero: an adjustment that would overdraw is refused, also when several
  redemptions race for the same points, and replaying an adjustment changes nothing;
* a refund takes back its share of what the order earned, once per key, never more than the order
  earned and never below zero, in the currency of the order (a refund in another currency is refused);
* unknown members are refused cleanly, in both currencies.

A block author's test::

    class TestMyClub(MembershipContract):
        block_class = MyClub

        def config_for(self, currency):
            return {"points_value": f"1.00 {currency}"}

The contract's orders earn points under the block's default earning rules; override :meth:`order` if the
block's configuration needs particular SKUs or channels to earn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

from retailblocks.hookspecs import membership
from retailblocks.model import (
    Identity,
    IdentityKind,
    Member,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    PointsMovement,
)
from retailblocks.testing.contracts._capability import (
    RACERS,
    REFUSALS,
    START,
    CapabilityContract,
    call,
    only_refusals,
    provides,
    race,
)
from retailblocks.testing.harness import BlockHarness

__all__ = ["MembershipContract"]


class MembershipContract(CapabilityContract):
    """Inherit to check a membership block; see the module's documentation for what is checked."""

    #: The channel the contract's orders are placed on (one of the harness's channels).
    channel = "web"

    # -- what the tests are made of -----------------------------------------------------------------

    def order(self, order_id: str, currency: str, *, units: int = 2, unit_price: int = 10_000) -> Order:
        """An order the block's configuration earns points on: ``units`` × ``unit_price`` (minor units)."""
        line = OrderLine(0, "KIT-SKU", units, Money(unit_price, currency), Money.zero(currency))
        total = line.total
        return Order(
            id=order_id,
            channel=self.channel,
            status=OrderStatus.PAID,
            currency=currency,
            lines=(line,),
            subtotal=line.subtotal,
            discount=Money.zero(currency),
            shipping=Money.zero(currency),
            total=total,
            created_at=START,
        )

    def enroll(self, harness: BlockHarness, phone: str = "+8613800000001") -> Member:
        member = call(
            harness, membership.membership_identify, [Identity(IdentityKind.PHONE, phone)], True, channel=self.channel
        )
        assert member is not None, "identify with enroll=True must return a member"
        return member

    def balance(self, harness: BlockHarness, member_id: str) -> int:
        member = call(harness, membership.membership_member, member_id)
        assert member is not None, f"membership_member lost member {member_id!r}"
        assert member.points >= 0, f"member {member_id!r} has a negative points balance ({member.points})"
        return member.points

    def earn(self, harness: BlockHarness, member_id: str, order: Order, key: str) -> PointsMovement | None:
        return call(harness, membership.membership_earn, member_id, order, key, channel=self.channel)

    def earned(self, harness: BlockHarness, member_id: str, order: Order, key: str) -> PointsMovement:
        movement = self.earn(harness, member_id, order, key)
        assert movement is not None and movement.points > 0, (
            f"order {order.id} of {order.total} earned nothing; override `order` (or the configuration) so the "
            "contract's orders earn points"
        )
        return movement

    def adjust(self, harness: BlockHarness, member_id: str, points: int, key: str) -> PointsMovement:
        return call(harness, membership.membership_adjust, member_id, points, "conformance kit", key)

    def reverse(
        self, harness: BlockHarness, member_id: str, order: Order, refunded: Money, key: str
    ) -> PointsMovement | None:
        return call(harness, membership.membership_reverse, member_id, order.id, refunded, order.total, key)

    def needs_adjust(self, harness: BlockHarness) -> None:
        if not provides(harness, membership.membership_adjust):
            pytest.skip("the block does not implement membership_adjust")

    # -- for the lifecycle contract -----------------------------------------------------------------

    def exercise(self, harness: BlockHarness) -> None:
        """Every state change of the contract once, and a call the block must refuse."""
        currency = harness.merchant.currency
        member = self.enroll(harness, "+8613800000099")
        email = Identity(IdentityKind.EMAIL, "kit-exercise@example.com")
        call(harness, membership.membership_identify, [Identity(IdentityKind.PHONE, "+8613800000099"), email], True)
        order = self.order("kit-exercise-order", currency)
        self.earned(harness, member.id, order, "kit-exercise-earn")
        self.reverse(harness, member.id, order, Money(order.total.amount // 2, currency), "kit-exercise-reverse")
        if provides(harness, membership.membership_adjust):
            self.adjust(harness, member.id, 40, "kit-exercise-credit")
            with pytest.raises(REFUSALS):
                self.adjust(harness, member.id, -1_000_000, "kit-exercise-overdraw")

    # -- identities ---------------------------------------------------------------------------------

    def test_identify_enrolls_once_and_finds_the_member_again(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        phone = [Identity(IdentityKind.PHONE, "+8613800000002")]
        assert call(harness, membership.membership_identify, phone, False) is None, "enrolled without enroll=True"
        first = call(harness, membership.membership_identify, phone, True)
        again = call(harness, membership.membership_identify, phone, True)
        found = call(harness, membership.membership_identify, phone, False)
        assert first is not None and again is not None and found is not None
        assert first.id == again.id == found.id, "the same identity resolved to different members"
        member = call(harness, membership.membership_member, first.id)
        assert member is not None and member.id == first.id and member.points == 0
        assert call(harness, membership.membership_member, "kit-no-such-member") is None

    def test_a_new_identity_is_linked_to_the_member(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        phone = Identity(IdentityKind.PHONE, "+8613800000003")
        email = Identity(IdentityKind.EMAIL, "kit-member@example.com")
        member = call(harness, membership.membership_identify, [phone], True)
        linked = call(harness, membership.membership_identify, [phone, email], True)
        by_email = call(harness, membership.membership_identify, [email], False)
        assert member is not None and linked is not None and by_email is not None
        assert member.id == linked.id == by_email.id, "a new identity was not linked to the member it came with"
        again = call(harness, membership.membership_identify, [phone, email], True)
        assert again is not None and again.id == member.id

    def test_concurrent_enrolments_of_one_shopper_make_one_member(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        phone = [Identity(IdentityKind.PHONE, "+8613800000004")]
        members, errors = race(RACERS, lambda _n: call(harness, membership.membership_identify, phone, True))
        if errors:
            raise errors[0]
        assert len({member.id for member in members if member is not None}) == 1
        assert all(member is not None for member in members)

    # -- earning ------------------------------------------------------------------------------------

    def test_an_order_earns_once_per_key(self, harness: BlockHarness, currency: str) -> None:
        member = self.enroll(harness)
        order = self.order("kit-order-1", currency)
        first = self.earned(harness, member.id, order, "kit-earn-1")
        again = self.earn(harness, member.id, order, "kit-earn-1")
        assert again is not None and again.id == first.id and again.points == first.points, "a replay earned again"
        assert first.member_id == member.id and first.order_id in (None, order.id)
        assert self.balance(harness, member.id) == first.points == first.balance

    def test_concurrent_earning_on_one_key_earns_once(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        member = self.enroll(harness)
        order = self.order("kit-order-2", harness.merchant.currency)
        movements, errors = race(RACERS, lambda _n: self.earn(harness, member.id, order, "kit-earn-race"))
        if errors:
            raise errors[0]
        earned = {movement.points for movement in movements if movement is not None}
        assert len(earned) == 1 and len({m.id for m in movements if m is not None}) == 1, "one key earned twice"
        assert self.balance(harness, member.id) == earned.pop()

    def test_an_unknown_member_is_refused_cleanly(self, harness: BlockHarness, currency: str) -> None:
        with pytest.raises(REFUSALS):
            self.earn(harness, "kit-no-such-member", self.order("kit-order-3", currency), "kit-earn-unknown")

    # -- the balance never goes negative --------------------------------------------------------------

    def test_redeeming_more_than_the_balance_is_refused(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        self.needs_adjust(harness)
        member = self.enroll(harness)
        credited = self.adjust(harness, member.id, 100, "kit-credit")
        assert credited.points == 100 and credited.balance == 100
        with pytest.raises(REFUSALS):
            self.adjust(harness, member.id, -150, "kit-overdraw")
        assert self.balance(harness, member.id) == 100, "a refused redemption changed the balance"
        spent = self.adjust(harness, member.id, -100, "kit-spend-all")
        assert spent.balance == 0 and self.balance(harness, member.id) == 0
        with pytest.raises(REFUSALS):
            self.adjust(harness, member.id, -1, "kit-overdraw-by-one")
        assert self.balance(harness, member.id) == 0

    def test_an_adjustment_is_idempotent_per_key(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        self.needs_adjust(harness)
        member = self.enroll(harness)
        first = self.adjust(harness, member.id, 50, "kit-adjust-1")
        again = self.adjust(harness, member.id, 50, "kit-adjust-1")
        assert again.id == first.id and self.balance(harness, member.id) == 50, "a replayed credit credited again"
        taken = self.adjust(harness, member.id, -20, "kit-adjust-2")
        retaken = self.adjust(harness, member.id, -20, "kit-adjust-2")
        assert retaken.id == taken.id and self.balance(harness, member.id) == 30, "a replayed debit debited again"

    def test_concurrent_redemptions_never_overdraw(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        self.needs_adjust(harness)
        member = self.enroll(harness)
        self.adjust(harness, member.id, 100, "kit-credit-race")
        spent, errors = race(RACERS, lambda n: self.adjust(harness, member.id, -30, f"kit-spend-race-{n}"))
        only_refusals(errors)
        assert len(spent) == 3, f"{len(spent)} redemptions of 30 points succeeded on a balance of 100"
        assert self.balance(harness, member.id) == 10

    # -- reversal on refund -------------------------------------------------------------------------

    def test_a_refund_takes_back_its_share_once(self, harness: BlockHarness, currency: str) -> None:
        member = self.enroll(harness)
        order = self.order("kit-order-4", currency)
        earned = self.earned(harness, member.id, order, "kit-earn-4")
        half = Money(order.total.amount // 2, currency)
        taken = self.reverse(harness, member.id, order, half, "kit-reverse-half")
        assert taken is not None and taken.points < 0, "a refund of half the order took nothing back"
        assert -taken.points <= earned.points
        left = self.balance(harness, member.id)
        assert left == earned.points + taken.points
        again = self.reverse(harness, member.id, order, half, "kit-reverse-half")
        assert again is not None and again.id == taken.id and self.balance(harness, member.id) == left, (
            "a replayed reversal took points back again"
        )
        rest = order.total - half
        self.reverse(harness, member.id, order, rest, "kit-reverse-rest")
        assert self.balance(harness, member.id) == 0, "a full refund left points of the order behind"

    def test_reversals_never_take_more_than_the_order_earned(self, harness: BlockHarness, currency: str) -> None:
        member = self.enroll(harness)
        other = self.order("kit-order-5a", currency, units=3)
        kept = self.earned(harness, member.id, other, "kit-earn-5a")
        order = self.order("kit-order-5b", currency)
        self.earned(harness, member.id, order, "kit-earn-5b")
        self.reverse(harness, member.id, order, order.total, "kit-reverse-5-first")
        assert self.balance(harness, member.id) == kept.points
        # A second full refund of the same order (another key): nothing more is left to take back.
        self.reverse(harness, member.id, order, order.total, "kit-reverse-5-second")
        assert self.balance(harness, member.id) == kept.points, "points of another order were taken back"

    def test_a_reversal_after_the_points_were_spent_stops_at_zero(self, harness: BlockHarness, currency: str) -> None:
        self.needs_adjust(harness)
        member = self.enroll(harness)
        order = self.order("kit-order-6", currency)
        earned = self.earned(harness, member.id, order, "kit-earn-6")
        self.adjust(harness, member.id, -earned.points, "kit-spend-6")
        with contextlib.suppress(*REFUSALS):  # refusing is allowed; going below zero is not
            self.reverse(harness, member.id, order, order.total, "kit-reverse-6")
        assert self.balance(harness, member.id) == 0

    def test_a_refund_in_another_currency_is_refused(self, harness: BlockHarness, currency: str) -> None:
        member = self.enroll(harness)
        order = self.order("kit-order-7", currency)
        earned = self.earned(harness, member.id, order, "kit-earn-7")
        other = next(code for code in self.currencies if code != currency)
        with pytest.raises(REFUSALS):
            self.reverse(harness, member.id, order, Money(order.total.amount, other), "kit-reverse-7")
        assert self.balance(harness, member.id) == earned.points

    # -- the order's points, when the block reports them ---------------------------------------------

    def test_a_cancelled_order_keeps_no_points(self, one_harness: BlockHarness) -> None:
        harness = one_harness
        if not provides(harness, membership.membership_order_points):
            pytest.skip("the block does not implement membership_order_points")
        member = self.enroll(harness)
        order = self.order("kit-order-8", harness.merchant.currency)
        earned = self.earned(harness, member.id, order, "kit-earn-8")
        points: Callable[[], int] = lambda: call(harness, membership.membership_order_points, order.id)  # noqa: E731
        assert points() == earned.points
        self.reverse(harness, member.id, order, order.total, "kit-reverse-8")
        assert points() == 0
