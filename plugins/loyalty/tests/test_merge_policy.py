"""Merge policies per identity kind: a family's shared phone merges nobody, a verified one may, and a
mini-program platform's union id ties a brand's apps' openids to one member."""

from __future__ import annotations

from datetime import timedelta

import pytest
from retailblocks_loyalty import LoyaltyConfig
from retailblocks_loyalty.config import MergePolicy

from retailblocks.errors import InvalidValue
from retailblocks.model import Identity

from .conftest import MakeHarness, check_ledger

FAMILY_PHONE = Identity("phone", "+8613800000077")
MOTHER = Identity("openid", "o-mother")
SON = Identity("openid", "o-son")
SON_MAIL = Identity("email", "son@example.cn")


def policy(**kinds: MergePolicy) -> LoyaltyConfig:
    return LoyaltyConfig(merge_policy=dict(kinds))


def test_a_shared_phone_alone_merges_nobody_and_the_withheld_merge_is_recorded(make_harness: MakeHarness) -> None:
    harness = make_harness(policy(phone=MergePolicy.NEVER_ALONE))
    block = harness.block
    with harness.context("web") as ctx:
        mother = block.membership_identify(ctx, [MOTHER, FAMILY_PHONE], True)
        harness.clock.advance(timedelta(minutes=1))
        son = block.membership_identify(ctx, [SON, FAMILY_PHONE], True)
        assert son.id != mother.id
        assert son.identities == (SON,)  # the phone stays the mother's
        # The phone alone still signs in the member who holds it.
        assert block.membership_identify(ctx, [FAMILY_PHONE], True).id == mother.id
        check_ledger(ctx.db)
    assert harness.events("member.merged") == []
    [withheld] = harness.events("member.merge_withheld")
    assert withheld.payload["withheld"] == [mother.id] and withheld.payload["kinds"] == ["phone"]
    assert "+86" not in str(withheld.payload)


def test_two_identifiers_in_common_merge_even_under_never_alone(make_harness: MakeHarness) -> None:
    harness = make_harness(policy(phone=MergePolicy.NEVER_ALONE))
    block = harness.block
    with harness.context("web") as ctx:
        first = block.membership_identify(ctx, [FAMILY_PHONE, SON_MAIL], True)
        harness.clock.advance(timedelta(minutes=1))
        second = block.membership_identify(ctx, [SON], True)
        merged = block.membership_identify(ctx, [SON, FAMILY_PHONE, SON_MAIL], True)
    assert merged.id == first.id != second.id
    assert len(harness.events("member.merged")) == 1


def test_a_verified_kind_merges_only_on_a_verified_identity(make_harness: MakeHarness) -> None:
    harness = make_harness(policy(phone=MergePolicy.VERIFIED))
    block = harness.block
    with harness.context("web") as ctx:
        mother = block.membership_identify(ctx, [MOTHER, FAMILY_PHONE], True)
        harness.clock.advance(timedelta(minutes=1))
        son = block.membership_identify(ctx, [SON], True)
        unverified = block.membership_identify(ctx, [SON, FAMILY_PHONE], True)
        assert unverified.id == son.id and FAMILY_PHONE not in unverified.identities
        checked = Identity("phone", FAMILY_PHONE.value, verified=True)
        merged = block.membership_identify(ctx, [SON, checked], True)
    assert merged.id == mother.id
    assert set(merged.identities) == {MOTHER, SON, FAMILY_PHONE}


def test_the_default_policy_merges_on_any_shared_identity_as_before(make_harness: MakeHarness) -> None:
    harness = make_harness()
    block = harness.block
    with harness.context("web") as ctx:
        mother = block.membership_identify(ctx, [MOTHER, FAMILY_PHONE], True)
        assert block.membership_identify(ctx, [SON, FAMILY_PHONE], True).id == mother.id


def test_a_union_id_ties_a_brands_mini_program_openids_to_one_member(make_harness: MakeHarness) -> None:
    harness = make_harness(policy(phone=MergePolicy.NEVER_ALONE))
    block = harness.block
    union = Identity("union_id", "wechat:oU-2f9a")
    with harness.context("web") as ctx:
        coffee_app = block.membership_identify(ctx, [Identity("openid", "wx-coffee:o-1"), union], True)
        tea_app = block.membership_identify(ctx, [Identity("openid", "wx-tea:o-9"), union], True)
    assert tea_app.id == coffee_app.id
    assert {str(i) for i in tea_app.identities} == {"openid:wx-coffee:o-1", "openid:wx-tea:o-9", str(union)}


def test_a_policy_for_an_unknown_kind_is_refused_with_a_suggestion() -> None:
    with pytest.raises(InvalidValue, match=r"unknown identity kind 'phon'; did you mean 'phone'"):
        LoyaltyConfig(merge_policy={"phon": MergePolicy.AUTO})
