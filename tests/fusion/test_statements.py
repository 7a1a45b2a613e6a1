"""Partner statements: a period billed once and never changed, corrections in the next one, a lifecycle,
exports whose totals are the sums of their lines, and an audit that every ledger item is billed once."""

from __future__ import annotations

import csv
import io
import json
import random
import threading
from datetime import date, timedelta

import pytest
from click.testing import CliRunner

from retailblocks.assembly.lockfile import write_lock
from retailblocks.cli import cli
from retailblocks.errors import InvalidValue
from retailblocks.fusion import settle
from retailblocks.fusion.statements import (
    StatementOutOfOrder,
    StatementStatus,
    UnknownStatement,
    audit_statements,
    confirm_statement,
    draft_statement,
    get_statement,
    issue_statement,
    list_statements,
    pay_statement,
)
from retailblocks.model import Identity
from retailblocks.stack import Stack
from tests.helpers import cart

DAY = date(2026, 3, 2)
PHONE = Identity("phone", "+8613800000002")


def next_day(stack: Stack, days: int = 1) -> None:
    stack.clock.advance(timedelta(days=days))  # type: ignore[attr-defined]


def test_a_statement_is_issued_once_then_confirmed_and_paid(stack: Stack) -> None:
    order = stack.checkout(cart(("BEANS", 2), identities=(PHONE,), coupons=("MALL8",)), key="s-1")
    draft = draft_statement(stack, "metro", DAY, DAY)
    assert draft.id is None and draft.status is StatementStatus.DRAFT
    with pytest.raises(InvalidValue, match="not over yet"):
        issue_statement(stack, "metro", DAY, DAY)

    next_day(stack)
    issued = issue_statement(stack, "metro", DAY, DAY)
    [line] = issued.lines
    assert (line.kind, line.reference, line.amount.amount) == ("discount", order.id, 800)
    assert issued.status is StatementStatus.ISSUED and issued.total.amount == 800
    assert issue_statement(stack, "metro", DAY, DAY) == issued  # the same period again: the same statement
    assert get_statement(stack, issued.id or "") == issued
    assert [s.id for s in list_statements(stack, "metro")] == [issued.id]

    with pytest.raises(StatementOutOfOrder, match="is issued: only a confirmed statement can be paid"):
        pay_statement(stack, issued.id or "", "TRX-1")
    confirmed = confirm_statement(stack, issued.id or "")
    assert confirmed.status is StatementStatus.CONFIRMED and confirm_statement(stack, issued.id or "") == confirmed
    paid = pay_statement(stack, issued.id or "", "TRX-1")
    assert paid.status is StatementStatus.PAID and paid.payment_reference == "TRX-1"
    assert pay_statement(stack, issued.id or "", "TRX-1") == paid  # a replayed payment changes nothing
    with pytest.raises(StatementOutOfOrder, match="another reference"):
        pay_statement(stack, issued.id or "", "TRX-2")
    with pytest.raises(StatementOutOfOrder, match="is paid"):
        confirm_statement(stack, issued.id or "")
    assert paid.lines == issued.lines and paid.total == issued.total
    with pytest.raises(UnknownStatement):
        get_statement(stack, "stmt_nope")


def test_a_change_after_issue_is_corrected_in_the_next_statement_never_in_the_issued_one(stack: Stack) -> None:
    kept = stack.checkout(cart(("BEANS", 2), identities=(PHONE,), coupons=("MALL8",)), key="k-1")
    cancelled_later = stack.checkout(cart(("TEA", 1), identities=(PHONE,), coupons=("MALL8",)), key="k-2")
    next_day(stack)
    first = issue_statement(stack, "metro", DAY, DAY)
    assert {line.reference for line in first.lines} == {kept.id, cancelled_later.id}

    stack.cancel(cancelled_later.id)
    late = stack.checkout(cart(("MUG", 1), identities=(PHONE,), coupons=("MALL8",)), key="k-3")
    next_day(stack)
    second = issue_statement(stack, "metro", DAY + timedelta(days=1), DAY + timedelta(days=1))
    corrections = [line for line in second.lines if line.kind == "correction"]
    assert [(c.corrects, c.reference, c.amount.amount) for c in corrections] == [("discount", cancelled_later.id, -800)]
    assert [line.reference for line in second.lines if line.kind == "discount"] == [late.id]
    assert get_statement(stack, first.id or "") == first  # the issued statement did not move

    findings = {finding.name: finding for finding in audit_statements(stack)}
    assert all(finding.ok for finding in findings.values()), findings
    assert findings["statements agree with the ledgers"].detail == ""


def test_statements_follow_each_other_without_gaps_or_overlaps(stack: Stack) -> None:
    next_day(stack, 10)
    issue_statement(stack, "metro", DAY, DAY + timedelta(days=2))
    with pytest.raises(InvalidValue, match="already covers"):
        issue_statement(stack, "metro", DAY, DAY + timedelta(days=1))
    with pytest.raises(InvalidValue, match=r"next one starts on 2026-03-05"):
        issue_statement(stack, "metro", DAY + timedelta(days=4), DAY + timedelta(days=5))
    with pytest.raises(InvalidValue, match=r"next one starts on 2026-03-05"):
        draft_statement(stack, "metro", DAY + timedelta(days=1), DAY + timedelta(days=5))
    with pytest.raises(InvalidValue, match="did you mean 'metro'"):
        issue_statement(stack, "metr0", DAY, DAY)
    with pytest.raises(InvalidValue, match="ends"):
        draft_statement(stack, "metro", DAY + timedelta(days=3), DAY + timedelta(days=2))


def test_two_issuers_of_one_period_at_once_write_one_statement(stack: Stack) -> None:
    stack.checkout(cart(("BEANS", 2), identities=(PHONE,), coupons=("MALL8",)), key="r-1")
    next_day(stack)
    barrier = threading.Barrier(4)
    answers: list[str | None] = []
    failures: list[BaseException] = []

    def issue() -> None:
        barrier.wait()
        try:
            answers.append(issue_statement(stack, "metro", DAY, DAY).id)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=issue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(set(answers)) == 1
    [statement] = list_statements(stack, "metro")
    assert len(statement.lines) == 1 and statement.total.amount == 800


def test_the_exports_total_equals_the_sum_of_their_lines(stack: Stack) -> None:
    stack.checkout(cart(("BEANS", 2), identities=(PHONE,), coupons=("MALL8",)), key="e-1")
    stack.checkout(cart(("TEA", 3), identities=(PHONE,), coupons=("MALL8",)), key="e-2")
    next_day(stack)
    statement = issue_statement(stack, "metro", DAY, DAY)
    rows = list(csv.DictReader(io.StringIO(statement.to_csv())))
    assert len(rows) == len(statement.lines) == 2
    assert sum(int(row["amount_minor"]) for row in rows) == statement.total.amount == 1600
    assert {row["currency"] for row in rows} == {"CNY"} and {row["statement"] for row in rows} == {statement.id}
    data = statement.to_data()
    assert data["total"] == "16.00 CNY" and len(data["lines"]) == 2


@pytest.mark.parametrize("seed", [1, 2])
def test_over_random_days_the_statements_bill_exactly_what_the_ledgers_hold(stack: Stack, seed: int) -> None:
    """Orders with and without the partner's coupon, some cancelled days later, a statement issued every
    day or two: Σ of every statement's lines per ledger item equals the ledgers, to the minor unit."""
    rng = random.Random(seed)
    placed: list[str] = []
    start = DAY
    for day in range(6):
        for n in range(rng.randint(1, 3)):
            coupons = ("MALL8",) if rng.random() < 0.7 else ()
            sku = rng.choice(["BEANS", "TEA", "MUG"])
            order = stack.checkout(
                cart((sku, rng.randint(1, 2)), identities=(PHONE,), coupons=coupons), key=f"{day}-{n}"
            )
            placed.append(order.id)
        if placed and rng.random() < 0.4:
            victim = placed.pop(rng.randrange(len(placed)))
            stack.cancel(victim)
        next_day(stack)
        today = DAY + timedelta(days=day)
        if rng.random() < 0.6 or day == 5:
            statement = issue_statement(stack, "metro", start, today)
            assert statement.total.amount == sum(line.amount.amount for line in statement.lines)
            start = today + timedelta(days=1)
    if start <= DAY + timedelta(days=5):
        issue_statement(stack, "metro", start, DAY + timedelta(days=5))
    billed: dict[tuple[str, str], int] = {}
    for statement in list_statements(stack, "metro"):
        for line in statement.lines:
            billed[line.item] = billed.get(line.item, 0) + line.amount.amount
    ledgers = {(line.kind, line.reference): line.amount.amount for line in settle(stack, "metro", DAY, start).lines}
    assert {key: amount for key, amount in billed.items() if amount} == ledgers
    assert all(finding.ok for finding in audit_statements(stack))


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_commands_issue_export_and_move_a_statement(stack: Stack) -> None:
    write_lock(stack.plan)  # operator commands open only an assembled stack
    stack.checkout(cart(("BEANS", 2), identities=(PHONE,), coupons=("MALL8",)), key="c-1")
    manifest = str(stack.manifest.path)
    period = ("--partner", "metro", "--from", "2026-03-02", "--to", "2026-03-02")
    # The commands run on the wall clock, long after the stack's day: the period is over.
    status, out, _ = run("statements", "issue", "-m", manifest, *period, "--json")
    assert status == 0, out
    statement = json.loads(out)
    assert statement["total"] == {"amount": 800, "currency": "CNY"} and statement["status"] == "issued"
    status, out, _ = run("statements", "show", "-m", manifest, statement["id"], "--csv")
    assert status == 0 and out.splitlines()[0].startswith("statement,partner,period_start")
    assert sum(int(row["amount_minor"]) for row in csv.DictReader(io.StringIO(out))) == 800
    assert run("statements", "pay", "-m", manifest, statement["id"], "--reference", "T1")[0] == 3
    assert run("statements", "confirm", "-m", manifest, statement["id"])[0] == 0
    assert run("statements", "pay", "-m", manifest, statement["id"], "--reference", "T1")[0] == 0
    status, out, _ = run("statements", "list", "-m", manifest, "--json")
    assert [(s["id"], s["status"]) for s in json.loads(out)] == [(statement["id"], "paid")]
    status, _, err = run("statements", "show", "-m", manifest, "stmt_nope")
    assert status == 2 and "no statement 'stmt_nope'" in err and "Traceback" not in err
    status, _, err = run("statements", "draft", "-m", manifest, "--partner", "metro", "--from", "2026-3-2", "--to", "x")
    assert status == 2 and "--from expects a date" in err
    status, out, _ = run("audit", "-m", manifest, "--json")
    assert status == 0 and any(row["block"] == "fusion" and row["ok"] for row in json.loads(out))
