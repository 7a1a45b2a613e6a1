"""The stored-value block's tables: accounts, a double-entry ledger of transactions and entries,
and the authorizations that track how much of each hold was captured, released and refunded."""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks.storage import Migration, create_tables

PREFIX = "stored_value"

metadata = sa.MetaData()

#: Gift cards, member wallets and the system accounts (issuance, holds, settled) per currency.
accounts = sa.Table(
    f"{PREFIX}_accounts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # gift_card | wallet | system
    # The gift card number, or "<role>:<currency>" for a system account; NULL for wallets.
    sa.Column("code", sa.String(64), unique=True),
    sa.Column("member_id", sa.String(64)),
    sa.Column("currency", sa.String(3), nullable=False),
    # The locked, fast balance; always equal to the sum of the account's entries.
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),  # active | frozen
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # One wallet per member and currency (NULLs of gift cards and system accounts never collide).
    sa.UniqueConstraint("member_id", "currency", name=f"uq_{PREFIX}_accounts_member_currency"),
    # The last line of defence behind the conditional updates: a customer never owes the merchant.
    sa.CheckConstraint("kind = 'system' OR balance >= 0", name=f"ck_{PREFIX}_accounts_not_negative"),
)

#: One row per posting; its key makes every posting idempotent.
transactions = sa.Table(
    f"{PREFIX}_transactions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # issue | top_up | hold | capture | release | refund | expire
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # The customer account (card or wallet) the posting concerns.
    sa.Column("account_id", sa.String(64), sa.ForeignKey(f"{PREFIX}_accounts.id"), nullable=False),
    sa.Column("authorization_id", sa.String(64), index=True),
    sa.Column("flow_id", sa.String(64), index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

#: The legs of each transaction; the amounts of one transaction sum to zero.
entries = sa.Table(
    f"{PREFIX}_entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "transaction_id",
        sa.String(64),
        sa.ForeignKey(f"{PREFIX}_transactions.id"),
        nullable=False,
        index=True,
    ),
    sa.Column(
        "account_id",
        sa.String(64),
        sa.ForeignKey(f"{PREFIX}_accounts.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("amount", sa.BigInteger, nullable=False),  # signed: positive raises the balance
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

#: One row per hold, updated conditionally so that captured + released <= amount and
#: refunded <= captured hold under any concurrency.
authorizations = sa.Table(
    f"{PREFIX}_authorizations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(64), sa.ForeignKey(f"{PREFIX}_accounts.id"), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("captured", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("released", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("flow_id", sa.String(64), index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("captured + released <= amount", name=f"ck_{PREFIX}_authorizations_held"),
    sa.CheckConstraint("refunded <= captured", name=f"ck_{PREFIX}_authorizations_refunded"),
)

MIGRATIONS: list[Migration] = [
    create_tables(
        1,
        "stored-value accounts, ledger transactions and entries, authorizations",
        accounts,
        transactions,
        entries,
        authorizations,
    ),
]
