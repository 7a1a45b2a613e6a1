"""Checks of the ledger's invariants, for operators and tests: every problem found, as a sentence.

A healthy ledger has: the entries of every transaction summing to zero; every account's balance
equal to the sum of its entries; no card or wallet below zero; per authorization, captured plus
released at most the amount and refunded at most captured; and the merchant's holds and settled
accounts equal to what the authorizations say is held and kept.
"""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks_stored_value.ledger import AccountKind, SystemRole, system_account_id
from retailblocks_stored_value.tables import accounts, authorizations, entries, transactions


def audit_ledger(connection: sa.Connection) -> list[str]:
    """Every violated invariant, described; an empty list for a consistent ledger."""
    problems: list[str] = []
    unbalanced = connection.execute(
        sa.select(transactions.c.id, sa.func.coalesce(sa.func.sum(entries.c.amount), 0))
        .join(entries, entries.c.transaction_id == transactions.c.id, isouter=True)
        .group_by(transactions.c.id)
        .having(sa.func.coalesce(sa.func.sum(entries.c.amount), 0) != 0)
    ).all()
    problems += [f"transaction {row[0]}'s entries sum to {row[1]}, not 0" for row in unbalanced]

    sums = (
        sa.select(entries.c.account_id, sa.func.sum(entries.c.amount).label("total"))
        .group_by(entries.c.account_id)
        .subquery()
    )
    drifted = connection.execute(
        sa.select(accounts.c.id, accounts.c.balance, sa.func.coalesce(sums.c.total, 0))
        .join(sums, sums.c.account_id == accounts.c.id, isouter=True)
        .where(accounts.c.balance != sa.func.coalesce(sums.c.total, 0))
    ).all()
    problems += [f"account {row[0]} has balance {row[1]} but its entries sum to {row[2]}" for row in drifted]

    negative = connection.execute(
        sa.select(accounts.c.id, accounts.c.balance).where(
            accounts.c.kind != AccountKind.SYSTEM.value, accounts.c.balance < 0
        )
    ).all()
    problems += [f"account {row[0]} is negative: {row[1]}" for row in negative]

    overdrawn = (
        connection.execute(
            sa.select(authorizations).where(
                sa.or_(
                    authorizations.c.captured + authorizations.c.released > authorizations.c.amount,
                    authorizations.c.refunded > authorizations.c.captured,
                    authorizations.c.captured < 0,
                    authorizations.c.released < 0,
                    authorizations.c.refunded < 0,
                )
            )
        )
        .mappings()
        .all()
    )
    problems += [
        f"authorization {row['id']} of {row['amount']} has captured {row['captured']}, "
        f"released {row['released']} and refunded {row['refunded']}"
        for row in overdrawn
    ]

    per_currency = connection.execute(
        sa.select(
            authorizations.c.currency,
            sa.func.sum(authorizations.c.amount - authorizations.c.captured - authorizations.c.released),
            sa.func.sum(authorizations.c.captured - authorizations.c.refunded),
        ).group_by(authorizations.c.currency)
    ).all()
    for currency, held, kept in per_currency:
        for role, expected in ((SystemRole.HOLDS, held), (SystemRole.SETTLED, kept)):
            actual = connection.execute(
                sa.select(accounts.c.balance).where(accounts.c.id == system_account_id(role, currency))
            ).scalar()
            if int(actual or 0) != int(expected or 0):
                problems.append(
                    f"the {role.value} account in {currency} holds {actual or 0}, "
                    f"but the authorizations say {expected or 0}"
                )
    return problems
