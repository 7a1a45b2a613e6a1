"""Data-subject requests: an export holds everything about a member; an erasure leaves no personal
identifier of theirs in any table or stored event, and every ledger and audit exactly as balanced as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retailblocks.errors import InvalidValue, UnknownMember
from retailblocks.flows.audit import audit_flows
from retailblocks.flows.capabilities import block_findings
from retailblocks.fusion import catch_up, privacy
from retailblocks.fusion.statements import audit_statements
from retailblocks.model import Address, Fulfilment, FulfilmentKind, Identity
from retailblocks.stack import Stack
from tests.fusion.test_campaign_messages import WELCOME, make
from tests.helpers import cart

ERASED_PHONE = Identity("phone", "+8613912345678")
ERASED_MAIL = Identity("email", "li.na@example.cn")
ERASED_OPENID = Identity("openid", "oWX-li-na-openid-7731")
KEPT_PHONE = Identity("phone", "+8613987654321")
# The delivery address the erased member gave: its name, phone and street must go too.
NAME, ADDRESS_PHONE, STREET = "Li Na", "+86 139 1111 2222", "88 Yuyuan Road, flat 1203"
PERSONAL = (ERASED_PHONE.value, ERASED_MAIL.value, ERASED_OPENID.value, NAME, ADDRESS_PHONE, STREET)


@pytest.fixture
def brand(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    stack = make(tmp_path, database_url, WELCOME)
    yield stack
    stack.close()


def every_text(stack: Stack) -> list[tuple[str, str]]:
    """Every value of every column of every table in the database, as text, with its table."""
    found: list[tuple[str, str]] = []
    with stack.engine.connect() as connection:
        metadata = sa.MetaData()
        metadata.reflect(connection)
        for table in metadata.sorted_tables:
            for row in connection.execute(sa.select(table)).all():
                found.extend((table.name, json.dumps(value, default=str)) for value in row)
                found.extend((table.name, str(value)) for value in row)
    return found


def audit(stack: Stack) -> list[tuple[str, str, bool, str]]:
    """What ``blocks audit`` reports: the core's flows, the fusion's statements and every block's findings."""
    findings = [("core", finding) for finding in audit_flows(stack)]
    findings += [("fusion", finding) for finding in audit_statements(stack)]
    with stack.context(flow="audit", read_only=True) as ctx:
        findings += block_findings(stack.hooks, ctx)
    return sorted((block, f.name, f.ok, f.detail) for block, f in findings)


def ledgers(stack: Stack) -> dict[str, Any]:
    """The figures an erasure must not move: audit findings, loyalty balances, orders' money."""
    with stack.engine.connect() as connection:
        balances = connection.execute(sa.text("SELECT id, balance FROM loyalty_accounts ORDER BY id")).all()
        postings = connection.execute(sa.text("SELECT count(*), sum(points) FROM loyalty_postings")).one()
        money = connection.execute(sa.text("SELECT id, total, refunded, member_id FROM orders ORDER BY id")).all()
    return {
        "audit": audit(stack),
        "balances": [tuple(row) for row in balances],
        "postings": tuple(postings),
        "orders": [tuple(row) for row in money],
    }


def home_of_kept() -> Address:
    return Address(country="CN", region="Shanghai", city="Shanghai", line1="1 Nanjing Road", name="Wang Wei")


def populate(stack: Stack) -> tuple[str, str]:
    """Two members with orders, a refund, a cancellation, points, coupons, messages and signals."""
    erased = stack.sign_in("web", [ERASED_OPENID, ERASED_PHONE]).id
    stack.link_identity("web", erased, ERASED_MAIL)
    kept = stack.sign_in("web", [KEPT_PHONE]).id
    signals = "\n".join(
        json.dumps({"identity": str(identity), "type": "social.like", "at": "2026-03-01T10:00:00Z"})
        for identity in (ERASED_PHONE, ERASED_MAIL, KEPT_PHONE)
    )
    stack.ingest_signals(signals, "jsonl")
    for identities, tag in (((ERASED_PHONE,), "a"), ((KEPT_PHONE,), "b")):
        first = stack.checkout(cart(("TEA", 2), channel="store-a", identities=identities), key=f"{tag}-1")
        home = Address(country="CN", region="Shanghai", city="Shanghai", line1=STREET, name=NAME, phone=ADDRESS_PHONE)
        delivery = Fulfilment(FulfilmentKind.DELIVERY, home if tag == "a" else home_of_kept())
        stack.checkout(cart(("BEANS", 1), identities=identities, fulfilment=delivery), key=f"{tag}-2")
        stack.refund(first.id, {0: 1}, key=f"{tag}-refund")
        third = stack.checkout(cart(("BEANS", 1), identities=identities), key=f"{tag}-3")
        stack.cancel(third.id)
    stack.run_campaign("welcome")
    stack.run_campaign("comeback")
    stack.dispatch_events()
    catch_up(stack)
    return erased, kept


def test_erasure_leaves_no_identifier_anywhere_and_every_ledger_as_it_was(brand: Stack) -> None:
    erased, kept = populate(brand)
    everything = every_text(brand)
    for personal in PERSONAL:
        assert any(personal in text for _, text in everything), f"{personal} was never stored"
    before = ledgers(brand)
    assert before["audit"] and all(ok for _, _, ok, _ in before["audit"])

    erasure = brand.erase_member(erased, source="admin:dpo")
    assert (erasure.member_id, erasure.identifiers) == (erased, len(PERSONAL))

    left = [
        (table, personal)
        for table, text in every_text(brand)
        for personal in PERSONAL
        if personal in text or json.dumps(personal)[1:-1] in text
    ]
    assert left == []
    payloads = [json.dumps(event.payload) for event in brand.events(limit=100_000)]
    assert not any(personal in payload for personal in PERSONAL for payload in payloads)
    # The other member's address is theirs still.
    assert any("Wang Wei" in text for _, text in every_text(brand))
    assert ledgers(brand) == before
    # The other member is untouched, and the erased one is still a member with their points and orders.
    assert KEPT_PHONE in brand.member(kept).identities
    assert brand.member(erased).points == brand.export_member(erased)["member"]["points"]
    assert all(identity.value.startswith("erased_") for identity in brand.member(erased).identities)
    # The shopper coming back with the erased phone is a stranger: a new member.
    assert brand.sign_in("web", [ERASED_PHONE]).id not in (erased, kept)

    again = brand.erase_member(erased, source="admin:dpo")
    assert again.identifiers == 0 and again.core_rows == 0
    assert [e.type for e in brand.events(limit=100_000) if e.type == "member.erased"] == ["member.erased"]


def test_an_export_holds_the_member_their_identities_orders_coupons_events_and_timeline(brand: Stack) -> None:
    erased, _ = populate(brand)
    document = brand.export_member(erased)
    json.dumps(document)  # one JSON document
    assert document["member"]["id"] == erased
    assert {(i["kind"], i["value"]) for i in document["identities"]} == {
        (i.kind.value, i.value) for i in (ERASED_PHONE, ERASED_MAIL, ERASED_OPENID)
    }
    assert len(document["orders"]) == 3 and all(order["lines"] for order in document["orders"])
    assert {event["type"] for event in document["events"]} >= {"member.enrolled", "order.placed"}
    assert document["timeline"]
    assert document["fusion"]["fusion_order_facts"]


def test_an_unknown_member_or_a_bad_id_is_refused_and_nothing_is_written(brand: Stack) -> None:
    count = len(brand.events(limit=100_000))
    with pytest.raises(UnknownMember, match="no member 'mem_nobody'"):
        brand.erase_member("mem_nobody", source="admin:dpo")
    with pytest.raises(UnknownMember):
        brand.export_member("mem_nobody")
    with pytest.raises(InvalidValue, match="member id"):
        brand.erase_member("", source="admin:dpo")
    assert len(brand.events(limit=100_000)) == count


def test_an_erasure_that_dies_half_way_changes_nothing_and_a_rerun_finishes_it(
    brand: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    erased, _ = populate(brand)
    before = every_text(brand)

    def dies(*_args: object, **_kwargs: object) -> int:
        raise RuntimeError("the process died after the blocks erased, before the core did")

    with monkeypatch.context() as patch:
        patch.setattr(privacy, "pseudonymise", dies)
        with pytest.raises(RuntimeError):
            brand.erase_member(erased, source="admin:dpo")
    assert every_text(brand) == before  # the blocks' replacements were rolled back with the rest
    assert brand.erase_member(erased, source="admin:dpo").identifiers == len(PERSONAL)
    assert not any(ERASED_PHONE.value in text for _, text in every_text(brand))
