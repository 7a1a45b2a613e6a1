"""Data fused: one member, one points balance and one timeline across the store, the mini-program and
signals from outside."""

from __future__ import annotations

import json
from pathlib import Path

from retailblocks.fusion import catch_up, ingest, member_view
from retailblocks.fusion.ingest import parse
from retailblocks.hookspecs import membership
from retailblocks.model import Identity
from retailblocks.stack import Stack
from tests.helpers import cart

PHONE = Identity("phone", "+8613800000001")
OPENID = Identity("openid", "o-lin-0001")


def view(stack: Stack, **who: str):  # type: ignore[no-untyped-def]
    catch_up(stack)
    with stack.context(flow="test", read_only=True) as ctx:
        return member_view(stack, ctx, **who)


def test_a_store_shopper_and_a_mini_program_shopper_are_one_member(stack: Stack) -> None:
    # Ms Lin buys tea in the store, giving her phone number at the till.
    in_store = stack.checkout(cart(("TEA", 1), channel="store-a", identities=(PHONE,)), key="lin-1")
    # Later she orders beans on the mini-program, which knows her openid and (once authorised) her phone.
    online = stack.checkout(cart(("BEANS", 1), channel="web", identities=(OPENID, PHONE)), key="lin-2")
    # Next time the mini-program only sends her openid.
    again = stack.checkout(cart(("MUG", 1), channel="web", identities=(OPENID,)), key="lin-3")
    assert in_store.member_id == online.member_id == again.member_id

    profile, timeline = view(stack, identity="openid:o-lin-0001")
    with stack.context(flow="test", read_only=True) as ctx:
        member = stack.hooks.maybe(membership.membership_member, ctx, profile.member_id)
    assert member is not None
    assert profile.points == member.points > 0
    assert profile.orders == 3
    assert profile.channel_mix == {"store-a": 1, "web": 2}
    assert profile.monetary.amount == sum(o.total.amount for o in (in_store, online, again))
    placed = [e for e in timeline if e.kind == "order.placed"]
    assert [e.order_id for e in placed] == [in_store.id, online.id, again.id]
    assert {e.kind for e in timeline} >= {"order.placed", "points.earned", "store.visit"}
    assert view(stack, identity="phone:+8613800000001")[0] == profile


def test_two_members_merged_by_a_shared_identity_share_one_profile(stack: Stack) -> None:
    market = stack.checkout(
        cart(("BEANS", 1), channel="market", identities=(Identity("marketplace", "tm-lin"),)), key="m-1"
    )
    store = stack.checkout(cart(("TEA", 1), channel="store-a", identities=(PHONE,)), key="m-2")
    assert market.member_id != store.member_id
    # At the till she shows her marketplace account too: the two members become one.
    stack.checkout(
        cart(("TEA", 1), channel="store-a", identities=(PHONE, Identity("marketplace", "tm-lin"))), key="m-3"
    )
    profile, timeline = view(stack, member_id=market.member_id)
    assert profile.orders == 3
    assert set(profile.member_ids) >= {market.member_id, store.member_id}
    assert {e.order_id for e in timeline if e.kind == "order.placed"} >= {market.id, store.id}


def test_a_refund_and_a_cancellation_show_on_the_timeline_and_in_the_spend(stack: Stack) -> None:
    kept = stack.checkout(cart(("BEANS", 2), channel="store-a", identities=(PHONE,)), key="r-1")
    stack.refund(kept.id, {0: 1}, key="r-1-refund")
    dropped = stack.checkout(cart(("MUG", 1), channel="web", identities=(PHONE,)), key="r-2")
    stack.cancel(dropped.id)
    profile, timeline = view(stack, identity="phone:+8613800000001")
    refunded = stack.order(kept.id).refunded
    assert profile.orders == 1
    assert profile.monetary == kept.total - refunded
    kinds = [e.kind for e in timeline]
    assert "order.refunded" in kinds
    assert "order.cancelled" in kinds


SIGNALS = [
    {"identity": "phone:+8613800000001", "type": "social.like", "at": "2026-03-01T10:00:00+08:00", "channel": "web"},
    "this is not json",
    {"identity": "phone:+8613800000001", "type": "store.visit", "at": "2026-03-01T12:00:00"},
    {"identity": "fax:123", "type": "social.share", "at": "2026-03-01T12:00:00Z"},
    {
        "identity": "marketplace:tm-zhao",
        "type": "marketplace.view",
        "at": "2026-03-01T13:00:00Z",
        "id": "tm-77",
        "payload": {"sku": "BEANS"},
    },
    {"identity": "phone:+8613800000001", "type": "order.placed", "at": "2026-03-01T13:00:00Z"},
    {"identity": "phone:+8613800000001", "type": "social.share", "at": "2026-03-01T14:00:00Z", "chanel": "web"},
]


def write_signals(path: Path) -> Path:
    path.write_text(
        "\n".join(item if isinstance(item, str) else json.dumps(item) for item in SIGNALS) + "\n", encoding="utf-8"
    )
    return path


def test_ingesting_reports_each_bad_line_keeps_the_good_ones_and_changes_nothing_twice(
    stack: Stack, tmp_path: Path
) -> None:
    stack.checkout(cart(("TEA", 1), channel="store-a", identities=(PHONE,)), key="s-1")
    text = write_signals(tmp_path / "signals.jsonl").read_text(encoding="utf-8")
    signals, bad = parse(text, "jsonl", list(stack.channels))
    assert [(b.line, b.reason.split(" ")[0]) for b in bad] == [
        (2, "not"),
        (3, "at"),
        (4, "unknown"),
        (6, "type"),
        (7, "unknown"),
    ]
    assert "did you mean 'channel'" in bad[-1].reason
    first = ingest(stack, signals, bad)
    assert (first.added, first.duplicates, first.resolved, len(first.bad)) == (2, 0, 1, 5)
    second = ingest(stack, *parse(text, "jsonl", list(stack.channels)))
    assert (second.added, second.duplicates) == (0, 2)

    profile, timeline = view(stack, identity="phone:+8613800000001")
    assert profile.signals == 1
    assert [e.kind for e in timeline if e.source == "signal"] == ["social.like"]
    # The marketplace viewer was a stranger; when she buys, the signal joins her timeline.
    stack.checkout(cart(("BEANS", 1), channel="market", identities=(Identity("marketplace", "tm-zhao"),)), key="z")
    zhao, zhao_timeline = view(stack, identity="marketplace:tm-zhao")
    assert zhao.signals == 1
    assert zhao_timeline[0].kind == "marketplace.view"


def test_csv_signals_carry_extra_columns_as_payload(stack: Stack) -> None:
    text = (
        "identity,type,at,channel,campaign\n"
        "phone:+8613800000009,social.share,2026-03-01T10:00:00Z,web,spring\n"
        "phone:+8613800000009,social.share,yesterday,web,spring\n"
    )
    signals, bad = parse(text, "csv", list(stack.channels))
    assert [b.line for b in bad] == [3]
    assert signals[0].payload == {"campaign": "spring"}
