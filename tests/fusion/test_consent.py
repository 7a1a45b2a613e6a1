"""Consent per purpose and medium: recorded with time and source, its history kept, and honoured by
segments (profiling) and by campaigns' messages (marketing, per medium)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retailblocks.errors import InvalidValue, UnknownMember
from retailblocks.fusion.campaigns import in_holdout
from retailblocks.stack import Stack
from tests.fusion.test_campaign_messages import WELCOME, make, sandbox_rows, sign_in_shoppers


@pytest.fixture
def welcome(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    stack = make(tmp_path, database_url, WELCOME)
    yield stack
    stack.close()


def treated(members: list[str]) -> list[str]:
    return [m for m in members if not in_holdout("spring", m, 3_000)]


def test_a_member_without_marketing_consent_for_the_medium_is_sent_nothing(welcome: Stack) -> None:
    members = treated(sign_in_shoppers(welcome, 12))
    refuses, push_only, returns = members[:3]
    welcome.record_consent(refuses, "marketing", granted=False, source="form 2026-03-01")
    welcome.record_consent(push_only, "marketing", granted=False, source="app settings", medium="sms")
    welcome.record_consent(returns, "marketing", granted=False, source="call")
    welcome.record_consent(returns, "marketing", granted=True, source="call again", medium="sms")

    run = welcome.run_campaign("welcome")
    assert run.messages["no_consent"] == 2
    sent_to = {row["member_id"] for row in sandbox_rows(welcome)}
    assert refuses not in sent_to and push_only not in sent_to and returns in sent_to

    history = welcome.consents(returns)
    assert [(c.medium, c.granted, c.source) for c in history] == [("any", False, "call"), ("sms", True, "call again")]
    assert history[0].at == welcome.clock.now()  # the stack's clock, which the test holds still
    assert welcome.export_member(returns)["consents"][1]["source"] == "call again"
    kinds = [e.type for e in welcome.events(limit=10_000) if e.type.startswith("member.consent")]
    assert kinds == ["member.consent_withdrawn"] * 3 + ["member.consent_granted"]


def test_a_member_who_withdrew_profiling_is_in_no_segment(welcome: Stack) -> None:
    members = sign_in_shoppers(welcome, 3)
    assert welcome.segment_members("everyone")["everyone"] == sorted(members)
    welcome.record_consent(members[0], "profiling", granted=False, source="privacy centre")
    assert welcome.segment_members("everyone")["everyone"] == sorted(members[1:])
    welcome.record_consent(members[0], "profiling", granted=True, source="privacy centre")
    assert welcome.segment_members("everyone")["everyone"] == sorted(members)


def test_bad_consent_requests_are_refused_and_nothing_is_recorded(welcome: Stack) -> None:
    (member,) = sign_in_shoppers(welcome, 1)
    with pytest.raises(InvalidValue, match="unknown consent purpose 'marketting'; did you mean 'marketing'"):
        welcome.record_consent(member, "marketting", granted=False, source="x")
    with pytest.raises(InvalidValue, match="unknown medium 'fax'"):
        welcome.record_consent(member, "marketing", granted=False, source="x", medium="fax")
    with pytest.raises(InvalidValue, match="source"):
        welcome.record_consent(member, "marketing", granted=False, source=" ")
    with pytest.raises(UnknownMember):
        welcome.record_consent("mem_nobody", "marketing", granted=False, source="x")
    assert welcome.consents(member) == []
