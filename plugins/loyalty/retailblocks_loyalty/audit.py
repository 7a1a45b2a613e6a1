"""The points ledger's invariants, checked from its tables for ``blocks audit`` and simulations."""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks import AuditFinding
from retailblocks_loyalty.tables import accounts, journals, lots, postings


def ledger_problems(connection: sa.Connection) -> list[str]:
    """Every broken rule of the ledger, as a sentence: balances are sums of postings, guarded accounts never
    go negative, every journal balances, and a member's lots hold exactly the member's balance."""
    problems: list[str] = []
    sums = {
        account: int(total)
        for account, total in connection.execute(
            sa.select(postings.c.account_id, sa.func.sum(postings.c.points)).group_by(postings.c.account_id)
        )
    }
    for account_id, balance, may_go_negative in connection.execute(
        sa.select(accounts.c.id, accounts.c.balance, accounts.c.may_go_negative)
    ):
        if balance != sums.get(account_id, 0):
            problems.append(f"account {account_id} holds {balance} but its postings sum to {sums.get(account_id, 0)}")
        if not may_go_negative and balance < 0:
            problems.append(f"account {account_id} is negative ({balance})")
    for (journal_id,) in connection.execute(
        sa.select(postings.c.journal_id).group_by(postings.c.journal_id).having(sa.func.sum(postings.c.points) != 0)
    ):
        problems.append(f"journal {journal_id} does not balance")
    lot_sums = {
        owner: int(total)
        for owner, total in connection.execute(
            sa.select(lots.c.member_id, sa.func.sum(lots.c.remaining)).group_by(lots.c.member_id)
        )
    }
    for owner, balance in connection.execute(
        sa.select(accounts.c.owner, accounts.c.balance).where(accounts.c.kind == "member")
    ):
        if balance != lot_sums.get(owner, 0):
            problems.append(f"member {owner} holds {balance} points but lots hold {lot_sums.get(owner, 0)}")
    return problems


def order_points(connection: sa.Connection, order_id: str) -> int:
    """Points an order earned, net of what was taken back for it."""
    total = connection.execute(
        sa.select(sa.func.coalesce(sa.func.sum(journals.c.points), 0)).where(
            journals.c.order_id == order_id, journals.c.kind.in_(["earn", "reverse"])
        )
    ).scalar()
    return int(total or 0)


def audit(connection: sa.Connection) -> list[AuditFinding]:
    problems = ledger_problems(connection)
    return [
        AuditFinding(
            "points ledger balanced: journals sum to zero, balances equal postings and lots, none negative",
            not problems,
            "; ".join(problems[:5]),
        )
    ]
