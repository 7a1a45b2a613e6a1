"""Double-entry postings on stored-value accounts, safe under concurrency on SQLite and PostgreSQL.

Every posting is one row in ``transactions``, claimed first under its idempotency key (so a replay
or a concurrent duplicate changes nothing), then balanced legs in ``entries`` whose amounts sum to
zero, each applied to its account's balance by one conditional UPDATE: a customer account is only
ever debited by ``UPDATE … WHERE balance >= :amount`` with a rowcount check.

Locks are taken in one order in every posting (the authorization row, then the customer account,
then the system accounts issuance → holds → settled), so two postings never wait in a cycle.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa

from retailblocks.storage import InsertIfAbsent, Prepared
from retailblocks_stored_value.tables import accounts, entries, transactions


class AccountKind(enum.StrEnum):
    GIFT_CARD = "gift_card"
    WALLET = "wallet"
    SYSTEM = "system"


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"


class SystemRole(enum.StrEnum):
    """The merchant's side of the ledger, one account per role and currency."""

    #: Funds every issued value; its balance is minus the value issued and not yet expired.
    ISSUANCE = "issuance"
    #: Value promised to an authorization and not yet captured or released.
    HOLDS = "holds"
    #: Value captured: the merchant's revenue, which refunds come out of.
    SETTLED = "settled"


#: The order in which system accounts are locked within one posting.
_SYSTEM_ORDER = {SystemRole.ISSUANCE: 0, SystemRole.HOLDS: 1, SystemRole.SETTLED: 2}


class TransactionKind(enum.StrEnum):
    ISSUE = "issue"
    TOP_UP = "top_up"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    REFUND = "refund"
    EXPIRE = "expire"


ACCOUNT_COLUMNS = ("id", "kind", "code", "member_id", "currency", "balance", "status", "expires_at", "created_at")
insert_account = InsertIfAbsent(accounts, ACCOUNT_COLUMNS)
_claim = InsertIfAbsent(
    transactions,
    ("id", "kind", "idempotency_key", "amount", "currency", "account_id", "authorization_id", "flow_id", "at"),
)
_BY_KEY = sa.select(transactions).where(transactions.c.idempotency_key == sa.bindparam("key"))
_ENTRY = Prepared.insert(entries, "transaction_id", "account_id", "amount", "at")
_delta = sa.bindparam("delta", type_=sa.BigInteger)
_ADJUST_SYSTEM = Prepared(
    accounts.update().where(accounts.c.id == sa.bindparam("account_id")).values(balance=accounts.c.balance + _delta)
)


def _adjust_customer_statement(debit: bool, ceiling: bool, usable: bool) -> Prepared:
    statement = (
        accounts.update()
        .where(
            accounts.c.id == sa.bindparam("account_id"),
            accounts.c.kind != sa.literal_column(f"'{AccountKind.SYSTEM.value}'"),
        )
        .values(balance=accounts.c.balance + _delta)
    )
    if debit:
        statement = statement.where(accounts.c.balance >= -_delta)
    if ceiling:
        statement = statement.where(accounts.c.balance + _delta <= sa.bindparam("ceiling", type_=sa.BigInteger))
    if usable:
        statement = statement.where(
            accounts.c.status == sa.literal_column(f"'{AccountStatus.ACTIVE.value}'"),
            sa.or_(
                accounts.c.expires_at.is_(None),
                accounts.c.expires_at > sa.bindparam("usable_at", type_=accounts.c.expires_at.type),
            ),
        )
    return Prepared(statement)


# Which conditions a customer leg carries varies; each combination is one statement built at import.
_ADJUST_CUSTOMER = {flags: _adjust_customer_statement(*flags) for flags in itertools.product((False, True), repeat=3)}


def system_code(role: SystemRole, currency: str) -> str:
    return f"{role.value}:{currency}"


def system_account_id(role: SystemRole, currency: str) -> str:
    # Deterministic, so a posting needs no look-up to find the merchant's side.
    return f"sys_{role.value}_{currency.lower()}"


@attrs.frozen
class Leg:
    """One side of a posting.

    A customer leg that lowers the balance never takes it below zero. ``usable_at`` further requires
    the account to be active and unexpired at that moment; ``ceiling`` caps the balance a credit may
    reach. Each condition is part of the UPDATE, never a read beforehand.
    """

    account_id: str
    amount: int  # signed: positive raises the balance
    system: SystemRole | None = None
    usable_at: datetime | None = None
    ceiling: int | None = None


def customer_leg(account_id: str, amount: int, *, usable_at: datetime | None = None, ceiling: int | None = None) -> Leg:
    return Leg(account_id, amount, usable_at=usable_at, ceiling=ceiling)


def system_leg(role: SystemRole, currency: str, amount: int) -> Leg:
    return Leg(system_account_id(role, currency), amount, system=role)


def claim_transaction(
    connection: sa.Connection,
    *,
    transaction_id: str,
    kind: TransactionKind,
    key: str,
    amount: int,
    currency: str,
    account_id: str,
    authorization_id: str | None,
    flow_id: str | None,
    at: datetime,
) -> bool:
    """Insert the transaction row; False when ``key`` was already used (the caller replays)."""
    return _claim(
        connection,
        {
            "id": transaction_id,
            "kind": kind.value,
            "idempotency_key": key,
            "amount": amount,
            "currency": currency,
            "account_id": account_id,
            "authorization_id": authorization_id,
            "flow_id": flow_id,
            "at": at,
        },
    )


def transaction_by_key(connection: sa.Connection, key: str) -> sa.RowMapping | None:
    return connection.execute(_BY_KEY, {"key": key}).mappings().first()


def post(
    connection: sa.Connection,
    transaction_id: str,
    legs: Sequence[Leg],
    *,
    currency: str,
    at: datetime,
) -> bool:
    """Apply balanced ``legs`` to the balances and write them as entries.

    Returns False when a customer leg's condition failed (too little balance, a frozen or expired
    account, a ceiling); the caller must then roll back its savepoint. Customer legs go first and
    system legs after them in a fixed order, the lock order every posting shares.
    """
    if sum(leg.amount for leg in legs) != 0:
        raise AssertionError(f"unbalanced posting {transaction_id}: {legs}")
    ordered = sorted(legs, key=lambda leg: -1 if leg.system is None else _SYSTEM_ORDER[leg.system])
    for leg in ordered:
        if leg.system is not None:
            _adjust_system(connection, leg, currency=currency, at=at)
        elif not _adjust_customer(connection, leg):
            return False
    _ENTRY.execute_many(
        connection,
        [
            {"transaction_id": transaction_id, "account_id": leg.account_id, "amount": leg.amount, "at": at}
            for leg in legs
        ],
    )
    return True


def _adjust_customer(connection: sa.Connection, leg: Leg) -> bool:
    statement = _ADJUST_CUSTOMER[leg.amount < 0, leg.ceiling is not None, leg.usable_at is not None]
    parameters: dict[str, Any] = {"account_id": leg.account_id, "delta": leg.amount}
    if leg.ceiling is not None:
        parameters["ceiling"] = leg.ceiling
    if leg.usable_at is not None:
        parameters["usable_at"] = leg.usable_at
    return statement.execute(connection, parameters) == 1


def _adjust_system(connection: sa.Connection, leg: Leg, *, currency: str, at: datetime) -> None:
    if _ADJUST_SYSTEM.execute(connection, account_id=leg.account_id, delta=leg.amount) == 1:
        return
    # First posting in this currency: open the merchant's account, then apply.
    assert leg.system is not None
    insert_account(
        connection,
        {
            "id": leg.account_id,
            "kind": AccountKind.SYSTEM.value,
            "code": system_code(leg.system, currency),
            "member_id": None,
            "currency": currency,
            "balance": 0,
            "status": AccountStatus.ACTIVE.value,
            "expires_at": None,
            "created_at": at,
        },
    )
    _ADJUST_SYSTEM.execute(connection, account_id=leg.account_id, delta=leg.amount)
