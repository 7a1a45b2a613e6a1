"""Partner statements: what a partner and the merchant owe each other for a period, issued once and never
changed, then confirmed and paid.

A settlement (:mod:`retailblocks.fusion.settlement`) is recomputed from the ledgers on every call, so it
moves when an order is cancelled or refunded after the fact. A statement is the settlement a period was
billed with: ``draft`` shows what would be issued, ``issue`` writes it down, and from then on it only moves
along its lifecycle — issued → confirmed (the partner agrees) → paid (with the payment's reference).

What changed about a line after its statement was issued is not written into that statement: the next
statement carries a *correction* line (the difference, referring to the same order or journal entry). So
each funded discount, clawback, point exchange and marketplace sale is billed as an original line in
exactly one statement (a unique index holds that even for two issuers at once), and the lines for one
ledger item, summed over every statement, equal what the ledgers say today once the latest statement is
issued. A refund clawed back from a partner is its own item, dated when the refund completed: when the
order's discount was billed in a statement already issued, the clawback is a negative line in the
statement of the period the refund falls in.

Statements with one partner follow each other without gaps or overlaps: the first may start on any day,
each next one starts the day after the last one issued ends. A period is issued only once it is over
(by the stack's clock), so nothing dated inside it can arrive later; an item that does arrive late (an
order a marketplace reports days after it was placed) is billed in the next statement, never lost.
Amounts are signed from the merchant's side, as in a settlement: positive, the partner owes the merchant.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.context import AuditFinding
from retailblocks.errors import BusinessRejection, InvalidValue, UnknownObject
from retailblocks.fusion.settlement import SettlementLine, find_partner, period, settle
from retailblocks.fusion.tables import statement_lines, statements
from retailblocks.model import Money
from retailblocks.storage import UnitOfWork

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

CORRECTION = "correction"
CSV_COLUMNS = (
    "statement",
    "partner",
    "period_start",
    "period_end",
    "status",
    "line",
    "kind",
    "corrects",
    "reference",
    "member_id",
    "at",
    "amount_minor",
    "currency",
    "detail",
)


class StatementStatus(enum.StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    CONFIRMED = "confirmed"
    PAID = "paid"


#: Each status and the one it may move to.
_NEXT = {StatementStatus.ISSUED: StatementStatus.CONFIRMED, StatementStatus.CONFIRMED: StatementStatus.PAID}


class UnknownStatement(UnknownObject):
    """No statement has this id."""


class StatementOutOfOrder(BusinessRejection):
    """The statement is not at the step this action follows (confirming a paid one, paying an issued one)."""

    cause = "statement_out_of_order"


@attrs.frozen
class StatementLine:
    """One line: an original line says what one ledger item owes; a correction, how much that changed
    since the statement that billed it (``corrects`` names the original line's kind)."""

    kind: str
    reference: str
    member_id: str | None
    at: datetime
    amount: Money
    detail: str
    corrects: str = ""

    @property
    def item(self) -> tuple[str, str]:
        """The ledger item the line is about: the original kind and the reference."""
        return (self.corrects or self.kind, self.reference)


@attrs.frozen
class Statement:
    id: str | None  # None for a draft
    partner: str
    start: date
    end: date
    status: StatementStatus
    currency: str
    lines: tuple[StatementLine, ...]
    issued_at: datetime | None = None
    confirmed_at: datetime | None = None
    paid_at: datetime | None = None
    payment_reference: str | None = None

    @property
    def total(self) -> Money:
        return Money(sum(line.amount.amount for line in self.lines), self.currency)

    def to_data(self, money: Callable[[Money], object] = str) -> dict[str, Any]:
        """Plain data (the JSON export); ``money`` renders each amount."""

        def moment(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "partner": self.partner,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "status": self.status.value,
            "total": money(self.total),
            "issued_at": moment(self.issued_at),
            "confirmed_at": moment(self.confirmed_at),
            "paid_at": moment(self.paid_at),
            "payment_reference": self.payment_reference,
            "lines": [
                {
                    "kind": line.kind,
                    "corrects": line.corrects or None,
                    "reference": line.reference,
                    "member_id": line.member_id,
                    "at": line.at.isoformat(),
                    "amount": money(line.amount),
                    "detail": line.detail,
                }
                for line in self.lines
            ],
        }

    def to_csv(self) -> str:
        """One row per line, amounts in minor units with their currency (the CSV export)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for number, line in enumerate(self.lines, start=1):
            writer.writerow(
                [
                    self.id or "",
                    self.partner,
                    self.start.isoformat(),
                    self.end.isoformat(),
                    self.status.value,
                    number,
                    line.kind,
                    line.corrects,
                    line.reference,
                    line.member_id or "",
                    line.at.isoformat(),
                    line.amount.amount,
                    line.amount.currency,
                    _csv_text(line.detail),
                ]
            )
        return buffer.getvalue()


def draft_statement(stack: Runtime, partner_id: str, start: date, end: date) -> Statement:
    """What issuing the statement with ``partner_id`` for ``start`` … ``end`` would bill, writing nothing."""
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        draft = _draft(stack, connection, partner_id, start, end)
        connection.rollback()
    return draft


def issue_statement(stack: Runtime, partner_id: str, start: date, end: date) -> Statement:
    """Issue the statement for a period that is over. Issuing the same period again answers the statement
    already issued; a period that does not follow the last issued one is refused."""
    if end >= stack.clock.now().date():
        raise InvalidValue(
            f"the period {start} … {end} is not over yet (today is {stack.clock.now().date()}): "
            "a statement is issued once every day it covers has ended; `draft` shows it meanwhile"
        )
    with UnitOfWork(stack.engine) as uow:
        existing = _issued_for(uow.connection, partner_id, start)
        if existing is not None:
            return _same_period(existing, end)
        try:
            draft = _draft(stack, uow.connection, partner_id, start, end)
        except InvalidValue:
            # On PostgreSQL each statement reads what is committed when it starts: a concurrent issuer of
            # this very period may have committed between the look-up above and the draft's, which then
            # sees the period taken. That issuer's statement is the answer.
            existing = _issued_for(uow.connection, partner_id, start)
            if existing is None:
                raise
            return _same_period(existing, end)
        statement_id = stack.ids.new_id("stmt")
        now = stack.clock.now()
        # ON CONFLICT DO NOTHING on the one-statement-per-period key: a concurrent issuer of the same period
        # makes this insert a no-op instead of an error that would abort the transaction on PostgreSQL.
        inserted = _insert_statement(uow.connection, statement_id, draft, now)
        if inserted and draft.lines:
            uow.connection.execute(
                statement_lines.insert(),
                [
                    {
                        "statement_id": statement_id,
                        "line_no": number,
                        "partner": partner_id,
                        "kind": line.kind,
                        "corrects": line.corrects,
                        "reference": line.reference,
                        "member_id": line.member_id,
                        "at": line.at,
                        "amount": line.amount.amount,
                        "detail": line.detail,
                    }
                    for number, line in enumerate(draft.lines, start=1)
                ],
            )
    if not inserted:
        return _same_period(_issued_for_new_connection(stack, partner_id, start), end)
    return attrs.evolve(draft, id=statement_id, status=StatementStatus.ISSUED, issued_at=now)


def confirm_statement(stack: Runtime, statement_id: str, *, partner_id: str | None = None) -> Statement:
    """The partner agreed with the statement (issued → confirmed; again on a confirmed one: no change)."""
    get_statement(stack, statement_id, partner_id=partner_id)
    return _advance(stack, statement_id, StatementStatus.CONFIRMED, {"confirmed_at": stack.clock.now()})


def pay_statement(stack: Runtime, statement_id: str, reference: str, *, partner_id: str | None = None) -> Statement:
    """The statement was paid, by the payment ``reference`` (confirmed → paid; again with the same reference:
    no change)."""
    reference = reference.strip()
    if not reference or len(reference) > 200:
        raise InvalidValue("a payment reference is 1 to 200 characters (the bank transfer's or the voucher's)")
    current = get_statement(stack, statement_id, partner_id=partner_id)
    if current.status is StatementStatus.PAID and current.payment_reference != reference:
        raise StatementOutOfOrder(
            f"statement {statement_id} was already paid under another reference ({current.payment_reference})"
        )
    return _advance(
        stack, statement_id, StatementStatus.PAID, {"paid_at": stack.clock.now(), "payment_reference": reference}
    )


def get_statement(stack: Runtime, statement_id: str, *, partner_id: str | None = None) -> Statement:
    """One statement; with ``partner_id``, only if it is that partner's (another's is as good as unknown)."""
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        found = _load(connection, statements.c.id == statement_id)
        connection.rollback()
    if not found or (partner_id is not None and found[0].partner != partner_id):
        whose = f" with {partner_id}" if partner_id is not None else ""
        raise UnknownStatement(f"no statement {statement_id!r}{whose}")
    return found[0]


def list_statements(stack: Runtime, partner_id: str | None = None) -> list[Statement]:
    """Issued statements, oldest period first (of one partner, or of all)."""
    if partner_id is not None:
        find_partner(stack, partner_id)
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        found = _load(connection, statements.c.partner == partner_id if partner_id is not None else sa.true())
        connection.rollback()
    return found


def audit_statements(stack: Runtime) -> list[AuditFinding]:
    """Every statement's total is the sum of its lines; every ledger item dated in a billed period is billed
    in exactly one statement; and what the statements billed for each item equals the ledgers, except for
    the changes the next statement will correct (counted, not failed)."""
    totals_off: list[str] = []
    unbilled: list[str] = []
    twice: list[str] = []
    pending = 0
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        for partner in stack.manifest.partners:
            issued = _load(connection, statements.c.partner == partner.id)
            if not issued:
                continue
            for statement in issued:
                stored = connection.execute(
                    sa.select(statements.c.total).where(statements.c.id == statement.id)
                ).scalar_one()
                if int(stored) != statement.total.amount:
                    totals_off.append(f"{statement.id}: total {stored} ≠ lines {statement.total.amount}")
            originals: dict[tuple[str, str], int] = {}
            billed: dict[tuple[str, str], int] = {}
            for statement in issued:
                for line in statement.lines:
                    billed[line.item] = billed.get(line.item, 0) + line.amount.amount
                    if not line.corrects:
                        originals[line.item] = originals.get(line.item, 0) + 1
            twice += [f"{partner.id} {kind} {reference}" for (kind, reference), n in originals.items() if n > 1]
            ledgers = settle(stack, partner.id, issued[0].start, issued[-1].end, kept=False)
            for item in ledgers.lines:
                key = (item.kind, item.reference)
                if key not in originals and item.amount.amount:
                    unbilled.append(f"{partner.id} {item.kind} {item.reference}")
                elif billed.get(key, 0) != item.amount.amount:
                    pending += 1
            current = {(item.kind, item.reference) for item in ledgers.lines}
            pending += sum(1 for key, amount in billed.items() if key not in current and amount)
        connection.rollback()
    return [
        AuditFinding("statement totals equal their lines", not totals_off, "; ".join(totals_off[:5])),
        AuditFinding(
            "every funded adjustment, clawback, point exchange and marketplace sale billed in exactly one statement",
            not unbilled and not twice,
            "; ".join([*(f"unbilled: {u}" for u in unbilled[:5]), *(f"twice: {t}" for t in twice[:5])]),
        ),
        AuditFinding(
            "statements agree with the ledgers",
            True,
            f"{pending} change(s) since issued, corrected by the next statement" if pending else "",
        ),
    ]


# -- inside ------------------------------------------------------------------------------------------


def _draft(stack: Runtime, connection: sa.Connection, partner_id: str, start: date, end: date) -> Statement:
    partner = find_partner(stack, partner_id)
    period(start, end)
    issued = _load(connection, statements.c.partner == partner.id)
    if issued:
        follows = issued[-1].end + timedelta(days=1)
        if start != follows:
            raise InvalidValue(
                f"statements with {partner.id} follow each other: the next one starts on {follows} "
                f"(the last one issued, {issued[-1].id}, covers {issued[-1].start} … {issued[-1].end})"
            )
    first = issued[0].start if issued else start
    now = {(line.kind, line.reference): line for line in settle(stack, partner.id, first, end, kept=False).lines}
    billed: dict[tuple[str, str], int] = {}
    for statement in issued:
        for line in statement.lines:
            billed[line.item] = billed.get(line.item, 0) + line.amount.amount
    lines: list[StatementLine] = []
    for key, item in now.items():
        before = billed.get(key)
        if before is None:
            if item.amount.amount:
                lines.append(_original(item))
        elif item.amount.amount != before:
            lines.append(_correction(item, item.amount.amount - before, stack.currency))
    for (kind, reference), before in billed.items():
        if (kind, reference) not in now and before:
            lines.append(
                StatementLine(
                    kind=CORRECTION,
                    corrects=kind,
                    reference=reference,
                    member_id=None,
                    at=stack.clock.now(),
                    amount=Money(-before, stack.currency),
                    detail="no longer owed (the order was cancelled)",
                )
            )
    lines.sort(key=lambda line: (line.at, line.kind, line.reference))
    return Statement(None, partner.id, start, end, StatementStatus.DRAFT, stack.currency, tuple(lines))


def _original(line: SettlementLine) -> StatementLine:
    return StatementLine(line.kind, line.reference, line.member_id, line.at, line.amount, line.detail)


def _correction(line: SettlementLine, difference: int, currency: str) -> StatementLine:
    return StatementLine(
        kind=CORRECTION,
        corrects=line.kind,
        reference=line.reference,
        member_id=line.member_id,
        at=line.at,
        amount=Money(difference, currency),
        detail=f"changed since billed: now {line.amount} ({line.detail})",
    )


def _insert_statement(connection: sa.Connection, statement_id: str, draft: Statement, now: datetime) -> bool:
    from retailblocks.storage import insert_if_absent

    return insert_if_absent(
        connection,
        statements,
        {
            "id": statement_id,
            "partner": draft.partner,
            "period_start": draft.start,
            "period_end": draft.end,
            "currency": draft.currency,
            "status": StatementStatus.ISSUED.value,
            "total": draft.total.amount,
            "issued_at": now,
        },
    )


def _issued_for(connection: sa.Connection, partner_id: str, start: date) -> Statement | None:
    found = _load(connection, (statements.c.partner == partner_id) & (statements.c.period_start == start))
    return found[0] if found else None


def _issued_for_new_connection(stack: Runtime, partner_id: str, start: date) -> Statement:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        found = _issued_for(connection, partner_id, start)
        connection.rollback()
    if found is None:  # the row that collided was rolled back meanwhile: let the caller try again
        raise InvalidValue(f"another statement with {partner_id} from {start} was being issued; try again")
    return found


def _same_period(statement: Statement, end: date) -> Statement:
    if statement.end != end:
        raise InvalidValue(
            f"statement {statement.id} with {statement.partner} already covers {statement.start} … {statement.end}"
        )
    return statement


def _advance(stack: Runtime, statement_id: str, target: StatementStatus, values: dict[str, Any]) -> Statement:
    source = next(status for status, after in _NEXT.items() if after is target)
    with UnitOfWork(stack.engine) as uow:
        moved = uow.connection.execute(
            statements.update()
            .where(statements.c.id == statement_id, statements.c.status == source.value)
            .values(status=target.value, **values)
        ).rowcount
    current = get_statement(stack, statement_id)
    if not moved and current.status is not target:
        allowed = (
            "an issued statement can be confirmed"
            if target is StatementStatus.CONFIRMED
            else "a confirmed statement can be paid"
        )
        raise StatementOutOfOrder(f"statement {statement_id} is {current.status.value}: only {allowed}")
    return current


def _load(connection: sa.Connection, where: sa.ColumnElement[bool]) -> list[Statement]:
    heads = connection.execute(
        sa.select(statements).where(where).order_by(statements.c.partner, statements.c.period_start)
    ).all()
    if not heads:
        return []
    rows = connection.execute(
        sa.select(statement_lines)
        .where(statement_lines.c.statement_id.in_([head.id for head in heads]))
        .order_by(statement_lines.c.statement_id, statement_lines.c.line_no)
    ).all()
    lines: dict[str, list[StatementLine]] = {}
    for row in rows:
        lines.setdefault(row.statement_id, []).append(
            StatementLine(
                kind=row.kind,
                reference=row.reference,
                member_id=row.member_id,
                at=as_utc(row.at),
                amount=Money(int(row.amount), _currency_of(heads, row.statement_id)),
                detail=row.detail,
                corrects=row.corrects,
            )
        )
    return [
        Statement(
            id=head.id,
            partner=head.partner,
            start=head.period_start,
            end=head.period_end,
            status=StatementStatus(head.status),
            currency=head.currency,
            lines=tuple(lines.get(head.id, ())),
            issued_at=_moment(head.issued_at),
            confirmed_at=_moment(head.confirmed_at),
            paid_at=_moment(head.paid_at),
            payment_reference=head.payment_reference,
        )
        for head in heads
    ]


def _currency_of(heads: Sequence[Any], statement_id: str) -> str:
    return str(next(head.currency for head in heads if head.id == statement_id))


def _moment(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def _csv_text(text: str) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ would be run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


__all__ = [
    "Statement",
    "StatementLine",
    "StatementOutOfOrder",
    "StatementStatus",
    "UnknownStatement",
    "audit_statements",
    "confirm_statement",
    "draft_statement",
    "get_statement",
    "issue_statement",
    "list_statements",
    "pay_statement",
]
