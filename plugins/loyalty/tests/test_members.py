"""Members across channels: one shopper, one member, one points balance."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from retailblocks_loyalty.tables import members as members_table

from retailblocks.errors import InvalidValue
from retailblocks.model import Identity

from .conftest import MakeHarness, check_ledger, order

PHONE = Identity("phone", "+86 138-0000-0000")
OPENID = Identity("openid", "oMP-123")


def test_a_store_shopper_and_a_mini_program_shopper_are_one_member_with_one_balance(
    make_harness: MakeHarness,
) -> None:
    harness = make_harness()
    block = harness.block
    with harness.context("store-1") as ctx:
        store_member = block.membership_identify(ctx, [PHONE], True)
        block.membership_earn(ctx, store_member.id, order("o-store", ("TEA", 1, "120.00"), channel="store-1"), "k1")
    harness.clock.advance(timedelta(days=30))
    with harness.context("web") as ctx:
        online_member = block.membership_identify(ctx, [OPENID], True)
        block.membership_earn(ctx, online_member.id, order("o-web", ("CUP", 2, "40.00")), "k2")
    assert store_member.id != online_member.id

    with harness.context("web") as ctx:
        merged = block.membership_identify(ctx, [OPENID, Identity("phone", "+8613800000000")], True)
    assert merged.id == store_member.id  # the oldest member survives
    assert merged.points == 120 + 80
    assert set(merged.identities) == {Identity("phone", "+8613800000000"), OPENID}

    with harness.context("web") as ctx:
        # The absorbed id keeps resolving to the survivor.
        assert block.membership_member(ctx, online_member.id) == merged
        history = block.journal(ctx, merged.id)
        check_ledger(ctx.db)
    assert [entry.kind for entry in history] == ["earn", "transfer"]
    [event] = harness.events("member.merged")
    assert event.payload["survivor"] == store_member.id
    assert event.payload["absorbed"] == online_member.id
    assert event.payload["points_moved"] == 80


def test_unmerge_gives_back_identities_and_points_as_new_postings(make_harness: MakeHarness) -> None:
    harness = make_harness()
    block = harness.block
    with harness.context() as ctx:
        first = block.membership_identify(ctx, [PHONE], True)
        harness.clock.advance(timedelta(minutes=1))
        second = block.membership_identify(ctx, [OPENID], True)
        block.membership_adjust(ctx, second.id, 50, "welcome gift", "gift-2")
        block.membership_identify(ctx, [PHONE, OPENID], True)
    merge_id = harness.events("member.merged")[0].payload["merge_id"]
    with harness.context() as ctx:
        block.unmerge(ctx, merge_id, "two sisters sharing a phone")
        again = block.unmerge(ctx, merge_id)  # idempotent
        assert again["reverted_at"] is not None
    with harness.context() as ctx:
        restored = block.membership_member(ctx, second.id)
        survivor = block.membership_member(ctx, first.id)
        assert block.membership_identify(ctx, [OPENID], False) == restored
        kinds = [entry.kind for entry in block.journal(ctx, second.id)]
        check_ledger(ctx.db)
    assert restored is not None
    assert survivor is not None
    assert restored.id == second.id
    assert restored.points == 50
    assert restored.identities == (OPENID,)
    assert survivor.points == 0
    assert kinds == ["adjust", "transfer", "transfer"]  # out at the merge, back at the unmerge
    assert len(harness.events("member.unmerged")) == 1


def test_unknown_identities_link_to_the_known_member(make_harness: MakeHarness) -> None:
    harness = make_harness()
    with harness.context() as ctx:
        member = harness.block.membership_identify(ctx, [PHONE], True)
        linked = harness.block.membership_identify(ctx, [PHONE, Identity("email", "Ann@Example.COM")], True)
        by_email = harness.block.membership_identify(ctx, [Identity("email", "ann@example.com")], False)
    assert linked.id == member.id == by_email.id
    assert [e.payload["identity"] for e in harness.events("member.identity_linked")] == ["email:ann@example.com"]
    assert len(harness.events("member.enrolled")) == 1


def test_identify_without_enroll_finds_no_one(make_harness: MakeHarness) -> None:
    harness = make_harness()
    with harness.context() as ctx:
        assert harness.block.membership_identify(ctx, [PHONE], False) is None
        assert harness.block.membership_member(ctx, "mem_nobody") is None
        with pytest.raises(InvalidValue, match="phone"):
            harness.block.membership_identify(ctx, [Identity("phone", "call me")], True)


def test_three_members_merge_into_the_oldest(make_harness: MakeHarness) -> None:
    harness = make_harness()
    block = harness.block
    card = Identity("store_card", "C-9")
    with harness.context() as ctx:
        ids = []
        for identity in (PHONE, OPENID, card):
            ids.append(block.membership_identify(ctx, [identity], True).id)
            harness.clock.advance(timedelta(minutes=1))
        for index, member_id in enumerate(ids):
            block.membership_adjust(ctx, member_id, 10 * (index + 1), "seed", f"seed-{index}")
        merged = block.membership_identify(ctx, [card, OPENID, PHONE], True)
        check_ledger(ctx.db)
    assert merged.id == ids[0]
    assert merged.points == 60
    assert len(harness.events("member.merged")) == 2


def test_concurrent_identify_of_one_new_phone_enrolls_one_member(make_harness: MakeHarness) -> None:
    harness = make_harness()
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def identify() -> None:
        try:
            barrier.wait()
            with harness.context("store-1") as ctx:
                member = harness.block.membership_identify(ctx, [Identity("phone", "13900000000")], True)
                results.append(member.id)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=identify) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1
    with harness.engine.connect() as connection:
        assert connection.execute(members_table.select()).all().__len__() == 1
    assert len(harness.events("member.enrolled")) == 1
