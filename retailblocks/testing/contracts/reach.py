"""The reach contract: what every reach block does, checked through the hooks.

* a message by a medium the block serves is answered with a delivery made by the block, by that medium; a
  medium it does not serve is answered None (the core asks the next block);
* one key sends once: the same key again — replayed or raced from many threads — answers the first
  delivery, and at most one message is recorded as sent;
* a member who opted out of a medium is sent nothing by it (``opted_out``); opting out twice is harmless;
* a member with no identity the medium can reach is not sent anything (the delivery says why);
* the member's addresses (phone, e-mail, openid) never appear in events.

A block author's test::

    class TestMySms(ReachContract, LifecycleContract):
        block_class = MySms
        config = {"api_key": "${SMS_KEY}"}
        environ = {"SMS_KEY": "a-key-of-at-least-sixteen-characters"}
"""

from __future__ import annotations

import pytest

from retailblocks.context import Event
from retailblocks.hookspecs import reach
from retailblocks.hookspecs.reach import MEDIUMS, DeliveryStatus, ReachDelivery, ReachMessage
from retailblocks.model import Identity, Member
from retailblocks.testing.contracts._capability import RACERS, CapabilityContract, call, race
from retailblocks.testing.harness import BlockHarness

__all__ = ["ReachContract"]

#: A member every medium can reach: a phone, an e-mail address and a mini-program openid.
ADDRESSES = (
    Identity("phone", "+8613912345678"),
    Identity("email", "kit.shopper@example.cn"),
    Identity("openid", "o-kit-shopper-openid-0001"),
)


class ReachContract(CapabilityContract):
    """Inherit to check a reach block; see the module's documentation for what is checked."""

    # -- what the tests are made of -----------------------------------------------------------------

    def member(self, number: int = 1, *, identities: tuple[Identity, ...] = ADDRESSES) -> Member:
        return Member(id=f"kit-member-{number}", identities=identities)

    def medium(self, harness: BlockHarness) -> str:
        """A medium the block serves (its first)."""
        served = harness.block.reach_mediums
        assert served, "a reach block lists the mediums it sends in `reach_mediums`"
        return served[0]

    def send(self, harness: BlockHarness, message: ReachMessage, key: str) -> ReachDelivery | None:
        return call(harness, reach.reach_send, message, key)

    def message(self, harness: BlockHarness, member: Member, medium: str | None = None) -> ReachMessage:
        return ReachMessage(
            member=member, medium=medium or self.medium(harness), channel="web", text="Kit says hello", campaign="kit"
        )

    def sent_events(self, harness: BlockHarness, member: Member) -> list[Event]:
        return [e for e in harness.events() if e.member_id == member.id and e.type.startswith("reach.")]

    # -- for the lifecycle contract -----------------------------------------------------------------

    def exercise(self, harness: BlockHarness) -> None:
        """Every state change of the contract once."""
        member = self.member(90)
        self.send(harness, self.message(harness, member), "kit-exercise-send")
        call(harness, reach.reach_opt_out, member.id, self.medium(harness), "kit exercise")

    # -- sending ------------------------------------------------------------------------------------

    def test_a_message_is_answered_by_the_block_by_its_medium(self, one_harness: BlockHarness) -> None:
        for medium in one_harness.block.reach_mediums:
            delivery = self.send(one_harness, self.message(one_harness, self.member(), medium), f"kit-{medium}")
            assert delivery is not None, f"the block lists {medium} but answered None"
            assert delivery.block == one_harness.block_id and delivery.medium == medium
            assert delivery.status in set(DeliveryStatus)
            if delivery.status is not DeliveryStatus.SENT:
                assert delivery.reason, f"a {delivery.status} delivery says why"

    def test_a_medium_the_block_does_not_serve_is_answered_none(self, one_harness: BlockHarness) -> None:
        others = [medium for medium in MEDIUMS if medium not in one_harness.block.reach_mediums]
        if not others:
            pytest.skip("the block serves every medium")
        before = len(one_harness.events())
        assert self.send(one_harness, self.message(one_harness, self.member(), others[0]), "kit-other") is None
        assert len(one_harness.events()) == before, "a message the block does not serve recorded events"

    def test_one_key_sends_once(self, one_harness: BlockHarness) -> None:
        member = self.member(2)
        first = self.send(one_harness, self.message(one_harness, member), "kit-once")
        again = self.send(one_harness, self.message(one_harness, member), "kit-once")
        assert again == first, "the same key answered another delivery"
        assert len(self.sent_events(one_harness, member)) == 1, "the same key recorded two deliveries"

    def test_concurrent_sends_on_one_key_send_once(self, one_harness: BlockHarness) -> None:
        member = self.member(3)
        results, errors = race(
            RACERS, lambda _n: self.send(one_harness, self.message(one_harness, member), "kit-raced")
        )
        assert not errors, f"a replayed send failed: {errors[0]!r}"
        assert len(set(results)) == 1, f"one key answered {len(set(results))} different deliveries"
        assert len(self.sent_events(one_harness, member)) == 1, "one key raced from many threads sent twice"

    # -- opt-outs and addresses ---------------------------------------------------------------------

    def test_an_opted_out_member_is_sent_nothing(self, one_harness: BlockHarness) -> None:
        member, medium = self.member(4), self.medium(one_harness)
        assert call(one_harness, reach.reach_opt_out, member.id, medium, "replied STOP") is True
        assert call(one_harness, reach.reach_opt_out, member.id, medium, "replied STOP") is True
        delivery = self.send(one_harness, self.message(one_harness, member), "kit-opted-out")
        assert delivery is not None and delivery.status is DeliveryStatus.OPTED_OUT
        assert not [e for e in self.sent_events(one_harness, member) if e.type == "reach.sent"]

    def test_a_member_the_medium_cannot_reach_is_sent_nothing(self, one_harness: BlockHarness) -> None:
        member = self.member(5, identities=(Identity("store_card", "kit-card-5"),))
        delivery = self.send(one_harness, self.message(one_harness, member), "kit-no-address")
        assert delivery is not None and delivery.status is not DeliveryStatus.SENT
        assert delivery.reason, "the delivery says why nothing was sent"

    def test_addresses_never_show_in_events(self, one_harness: BlockHarness) -> None:
        member = self.member(6)
        for medium in one_harness.block.reach_mediums:
            self.send(one_harness, self.message(one_harness, member, medium), f"kit-address-{medium}")
        shown = [
            identity.value
            for event in one_harness.events()
            for identity in ADDRESSES
            if identity.value in str(event.payload)
        ]
        assert not shown, f"an address showed in an event: {shown[0]}"
