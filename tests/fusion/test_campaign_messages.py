"""Campaigns that send: a message through a reach block to each treated member, within the campaign's dates,
send window and frequency cap, a holdout kept from all of it, and a report that measures uplift over it."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retailblocks.clock import ManualClock
from retailblocks.errors import CampaignNotRunning, InvalidValue
from retailblocks.fusion.campaigns import HOLDOUT, TREATED, in_holdout
from retailblocks.fusion.tables import campaign_members, campaign_sends
from retailblocks.model import Identity
from retailblocks.stack import Stack
from tests.fusion.conftest import BRAND
from tests.helpers import cart, make_stack

REACH_BLOCK = """  - use: reach-sandbox
    config: {api_key: reach-sandbox-test-key-0001, mediums: MEDIUMS, failure_percent: FAILURES}
  - use: promotions
"""

EVERYONE = "  - {id: everyone, description: every known member}\ncampaigns:\n"


def brand(campaigns: str, *, mediums: str = "[sms, mini_program]", failures: int = 0) -> str:
    """The brand of the fusion stories, with the reach sandbox and these campaigns (YAML list items)."""
    text = BRAND.replace("campaigns:\n", EVERYONE, 1).replace(
        "  - {id: comeback, segment: store-regulars, promotion: comeback-12, channel: web}\n",
        "  - {id: comeback, segment: store-regulars, promotion: comeback-12, channel: web}\n" + campaigns,
    )
    block = REACH_BLOCK.replace("MEDIUMS", mediums).replace("FAILURES", str(failures))
    return text.replace("  - use: promotions\n", block, 1)


def make(tmp_path: Path, database_url: str, campaigns: str, **options: Any) -> Stack:
    return make_stack(tmp_path, database_url, text=brand(campaigns, **options), stock=5000)


def clock_of(stack: Stack) -> ManualClock:
    assert isinstance(stack.clock, ManualClock)
    return stack.clock


def phone(n: int) -> Identity:
    return Identity("phone", f"+8613900{n:06d}")


def sign_in_shoppers(stack: Stack, count: int, *, start: int = 0) -> list[str]:
    """Members who signed in and liked a post: known to the fused profile, so in the segment ``everyone``."""
    members = [stack.sign_in("web", [phone(n)]).id for n in range(start, start + count)]
    likes = [
        json.dumps({"identity": str(phone(n)), "type": "social.like", "at": "2026-03-01T10:00:00Z"})
        for n in range(start, start + count)
    ]
    assert stack.ingest_signals("\n".join(likes), "jsonl").added == count
    return members


def sandbox_rows(stack: Stack) -> list[dict[str, Any]]:
    with stack.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM reach_sandbox_deliveries ORDER BY key")).mappings().all()
        return [dict(row) for row in rows]


def arms(stack: Stack, campaign: str) -> dict[str, str]:
    with stack.engine.connect() as connection:
        query = sa.select(campaign_members.c.member_id, campaign_members.c.arm).where(
            campaign_members.c.campaign == campaign
        )
        return dict(connection.execute(query).all())


def sends(stack: Stack, campaign: str) -> dict[str, tuple[str, int]]:
    with stack.engine.connect() as connection:
        query = sa.select(campaign_sends.c.member_id, campaign_sends.c.status, campaign_sends.c.attempts).where(
            campaign_sends.c.campaign == campaign
        )
        return {member: (status, attempts) for member, status, attempts in connection.execute(query).all()}


WELCOME = """  - id: welcome
    segment: everyone
    promotion: comeback-12
    channel: web
    message: {medium: sms, text: "12 off your next order with {coupon}"}
    holdout: 30%
    seed: spring
"""


@pytest.fixture
def welcome(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    stack = make(tmp_path, database_url, WELCOME)
    yield stack
    stack.close()


def test_treated_members_get_a_coupon_and_one_message_the_holdout_neither(welcome: Stack) -> None:
    members = sign_in_shoppers(welcome, 20)
    run = welcome.run_campaign("welcome")

    drawn = arms(welcome, "welcome")
    assert set(drawn) == set(members)
    # The draw is the seeded hash: reproducible from the seed and the member alone.
    assert drawn == {m: HOLDOUT if in_holdout("spring", m, 3_000) else TREATED for m in members}
    treated = sorted(m for m, arm in drawn.items() if arm == TREATED)
    assert 0 < run.held_out == len(members) - len(treated)
    assert run.reach == len(treated) and run.messages == {"sent": len(treated)}

    delivered = sandbox_rows(welcome)
    assert sorted(row["member_id"] for row in delivered) == treated
    codes = {coupon.code for m in treated for coupon in welcome.member_coupons(m)}
    assert all(row["text"].removeprefix("12 off your next order with ") in codes for row in delivered)
    assert all(welcome.member_coupons(m) == [] for m, arm in drawn.items() if arm == HOLDOUT)
    # The address is never stored in clear by the sandbox, nor put in events.
    assert not any("+8613900" in str(row) for row in delivered)
    assert not any("+8613900" in str(event.payload) for event in welcome.events() if event.type.startswith("reach."))

    again = welcome.run_campaign("welcome")
    assert again.issued == 0 and again.messages == {}
    assert len(sandbox_rows(welcome)) == len(treated)

    # A member who joins the segment later is drawn and reached by the next run, the others are not again.
    (late,) = sign_in_shoppers(welcome, 1, start=100)
    later = welcome.run_campaign("welcome")
    if arms(welcome, "welcome")[late] == TREATED:
        assert later.messages == {"sent": 1}
    else:
        assert later.messages == {} and later.held_out == run.held_out + 1


def test_an_opted_out_member_is_sent_nothing(welcome: Stack) -> None:
    members = sign_in_shoppers(welcome, 12)
    treated = [m for m in members if not in_holdout("spring", m, 3_000)]
    assert welcome.opt_out(treated[0], "sms", source="replied STOP") == ["reach-sandbox"]
    run = welcome.run_campaign("welcome")
    assert run.messages == {"opted_out": 1, "sent": len(treated) - 1}
    assert sends(welcome, "welcome")[treated[0]] == ("opted_out", 1)
    assert not any(row["member_id"] == treated[0] and row["status"] == "sent" for row in sandbox_rows(welcome))
    report = welcome.campaign_report("welcome")
    assert report.messages == {"opted_out": 1, "sent": len(treated) - 1}
    with pytest.raises(InvalidValue, match="unknown medium 'sns'; did you mean 'sms'"):
        welcome.opt_out(treated[1], "sns", source="form")


def test_a_medium_no_block_sends_is_refused_before_anything_is_written(tmp_path: Path, database_url: str) -> None:
    stack = make(tmp_path, database_url, WELCOME.replace("medium: sms", "medium: push"))
    try:
        sign_in_shoppers(stack, 3)
        with pytest.raises(InvalidValue, match="sends push messages, but no reach block of this stack does"):
            stack.run_campaign("welcome")
        assert arms(stack, "welcome") == {} and sandbox_rows(stack) == []
    finally:
        stack.close()


def test_members_without_an_address_for_the_medium_are_reported(tmp_path: Path, database_url: str) -> None:
    stack = make(tmp_path, database_url, WELCOME.replace("medium: sms", "medium: mini_program"))
    try:
        members = sign_in_shoppers(stack, 6)
        run = stack.run_campaign("welcome")
        treated = [m for m in members if not in_holdout("spring", m, 3_000)]
        assert run.messages == {"no_address": len(treated)}
    finally:
        stack.close()


def test_failed_messages_are_tried_again_by_later_runs_up_to_three_times(tmp_path: Path, database_url: str) -> None:
    stack = make(tmp_path, database_url, WELCOME, failures=100)
    try:
        members = sign_in_shoppers(stack, 5)
        treated = [m for m in members if not in_holdout("spring", m, 3_000)]
        for attempt in (1, 2, 3):
            assert stack.run_campaign("welcome").messages == {"failed": len(treated)}
            assert set(sends(stack, "welcome").values()) == {("failed", attempt)}
        assert stack.run_campaign("welcome").messages == {}
        # Each attempt had its own key at the provider: three requests per member, none replayed.
        assert len(sandbox_rows(stack)) == 3 * len(treated)
    finally:
        stack.close()


WINDOWED = """  - id: windowed
    segment: everyone
    promotion: comeback-12
    channel: web
    message: {medium: sms, text: "Come back: {coupon}"}
    starts: 2026-03-02
    ends: 2026-03-08
    send_window: {from: "10:00", to: "20:00"}
"""


def test_messages_wait_for_the_send_window_and_the_campaign_keeps_to_its_dates(
    tmp_path: Path, database_url: str
) -> None:
    stack = make(tmp_path, database_url, WINDOWED)
    try:
        members = sign_in_shoppers(stack, 4)
        clock = clock_of(stack)
        assert clock.now().hour == 9  # before the window opens
        early = stack.run_campaign("windowed")
        assert early.issued == 4 and early.messages == {"waiting": 4}
        assert sandbox_rows(stack) == []
        clock.advance(timedelta(hours=1))
        assert stack.run_campaign("windowed").messages == {"sent": 4}
        clock.set(datetime(2026, 3, 9, 12, 0, tzinfo=UTC))
        with pytest.raises(CampaignNotRunning, match="ended on 2026-03-08"):
            stack.run_campaign("windowed")
        clock.set(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
        with pytest.raises(CampaignNotRunning, match="starts on 2026-03-02"):
            stack.run_campaign("windowed")
        assert len(members) == len(sandbox_rows(stack))
    finally:
        stack.close()


CAPPED = """  - id: first
    segment: everyone
    promotion: comeback-12
    channel: web
    message: {medium: sms, text: "First: {coupon}"}
    frequency_cap: {messages: 1, days: 7}
  - id: second
    segment: everyone
    promotion: save5
    channel: web
    message: {medium: sms, text: "Second: {coupon}"}
    frequency_cap: {messages: 1, days: 7}
"""


def test_the_frequency_cap_counts_every_campaigns_messages(tmp_path: Path, database_url: str) -> None:
    stack = make(tmp_path, database_url, CAPPED)
    try:
        sign_in_shoppers(stack, 3)
        assert stack.run_campaign("first").messages == {"sent": 3}
        # The cap is one message a week across campaigns: the second campaign reaches the same three members
        # and every one of them is held back until the week is over.
        held = stack.run_campaign("second")
        assert held.reach == 3
        assert held.messages == {"capped": 3}
        clock_of(stack).advance(timedelta(days=7, minutes=1))
        assert stack.run_campaign("second").messages.get("sent", 0) == held.reach
    finally:
        stack.close()


# --- uplift --------------------------------------------------------------------------------------------------------

UPLIFT = """  - id: uplift
    segment: everyone
    promotion: comeback-12
    channel: web
    message: {medium: sms, text: "We miss you: {coupon}"}
    holdout: 50%
    seed: uplift-trial
"""


def simulate_campaign(stack: Stack, members: int, base: float, effect: float, seed: int) -> None:
    """Run the campaign, then let each member buy once with probability ``base``, times ``1 + effect`` for the
    treated: a known effect for the report to find."""
    shoppers = sign_in_shoppers(stack, members)
    stack.run_campaign("uplift")
    drawn = arms(stack, "uplift")
    clock_of(stack).advance(timedelta(hours=1))
    rng = random.Random(seed)
    for n, member_id in enumerate(shoppers):
        chance = base * (1 + effect) if drawn[member_id] == TREATED else base
        if rng.random() < chance:
            stack.checkout(cart(("TEA", 1), identities=(phone(n),)), key=f"order-{n}")


@pytest.mark.parametrize("effect", [1.0, 0.0], ids=["doubled", "none"])
def test_the_report_recovers_a_known_effect_within_its_interval(
    tmp_path: Path, database_url: str, effect: float
) -> None:
    stack = make(tmp_path, database_url, UPLIFT)
    try:
        base = 0.25
        simulate_campaign(stack, 240, base, effect, seed=7)
        report = stack.campaign_report("uplift")
        uplift = report.uplift
        assert uplift is not None and uplift.conversion_interval is not None
        assert uplift.treated + uplift.holdout == 240 and report.held_out == uplift.holdout
        true_difference = base * effect
        assert uplift.conversion_interval.contains(true_difference)
        if effect:
            assert not uplift.conversion_interval.contains(0.0)  # the effect is told from chance
        assert uplift.treated_revenue.amount + uplift.holdout_revenue.amount == sum(
            o.total.amount for o in stack.orders()
        )
        data = report.to_data()
        assert data["uplift"]["conversion_interval"][0] < data["uplift"]["conversion_interval"][1]  # type: ignore[index]
    finally:
        stack.close()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("RETAILBLOCKS_STRESS") != "1", reason="set RETAILBLOCKS_STRESS=1 for the long version"
)
def test_a_twenty_percent_effect_is_recovered_on_two_thousand_members(tmp_path: Path, database_url: str) -> None:
    stack = make(tmp_path, database_url, UPLIFT)
    try:
        simulate_campaign(stack, 2000, 0.3, 0.2, seed=11)
        uplift = stack.campaign_report("uplift").uplift
        assert uplift is not None and uplift.conversion_interval is not None
        assert uplift.conversion_interval.contains(0.3 * 0.2)
    finally:
        stack.close()
