"""The loyalty block's tables: members and their identities, merges, and the double-entry points ledger.

Every table is prefixed ``loyalty_``. The ledger is append-only: postings and journals are only ever
inserted; the ``balance`` column of an account is a running total kept by conditional updates, so that
"never negative" holds under concurrency, and always equals the sum of the account's postings.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa

from retailblocks.storage import Migration, create_tables

metadata = sa.MetaData()

_ID = 64
_KEY = 200

members = sa.Table(
    "loyalty_members",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # active | merged
    sa.Column("merged_into", sa.String(_ID), nullable=True, index=True),
    sa.Column("tier", sa.String(64), nullable=False),
    # Minor units of the merchant's currency: spend that counts towards tiers.
    sa.Column("lifetime_spend", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("enrolled_channel", sa.String(64), nullable=True),
)

identities = sa.Table(
    "loyalty_identities",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(256), primary_key=True),
    sa.Column("member_id", sa.String(_ID), nullable=False, index=True),
    sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
)

merges = sa.Table(
    "loyalty_merges",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("survivor", sa.String(_ID), nullable=False, index=True),
    sa.Column("absorbed", sa.String(_ID), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    # [[kind, value], ...] moved from the absorbed member to the survivor.
    sa.Column("identities", sa.JSON, nullable=False),
    sa.Column("points_moved", sa.BigInteger, nullable=False),
    sa.Column("spend_moved", sa.BigInteger, nullable=False),
    sa.Column("reverted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revert_reason", sa.Text, nullable=True),
)

accounts = sa.Table(
    "loyalty_accounts",
    metadata,
    sa.Column("id", sa.String(_ID + 16), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # member | system | partner
    sa.Column("owner", sa.String(_ID), nullable=True),  # the member or partner id
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    # Member accounts and the held/redeemed/expired accounts never go below zero; ``issued`` and the
    # partner clearing accounts are contra accounts whose sign carries meaning.
    sa.Column("may_go_negative", sa.Boolean, nullable=False),
)

journals = sa.Table(
    "loyalty_journals",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    # earn | redeem | reverse | expire | adjust | transfer | hold | release | refund | exchange
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("member_id", sa.String(_ID), nullable=True, index=True),
    sa.Column("order_id", sa.String(_ID), nullable=True, index=True),
    sa.Column("idempotency_key", sa.String(_KEY), nullable=False, unique=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    # The member's side of the journal, for answering a replay exactly as the first time.
    sa.Column("points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("balance_after", sa.BigInteger, nullable=False, server_default="0"),
    # What the journal was asked to move; more than ``points`` when a reversal fell short.
    sa.Column("requested", sa.BigInteger, nullable=False, server_default="0"),
    # Money the journal is about (order spend, refunded amount, captured amount) in minor units.
    sa.Column("amount", sa.BigInteger, nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    # What else the journal belongs to: a payment hold, a merge, a partner, a lot.
    sa.Column("reference", sa.String(_ID), nullable=True, index=True),
)

postings = sa.Table(
    "loyalty_postings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "journal_id",
        sa.String(_ID),
        sa.ForeignKey("loyalty_journals.id"),
        nullable=False,
        index=True,
    ),
    sa.Column(
        "account_id",
        sa.String(_ID + 16),
        sa.ForeignKey("loyalty_accounts.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

lots = sa.Table(
    "loyalty_lots",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("member_id", sa.String(_ID), nullable=False, index=True),
    sa.Column("journal_id", sa.String(_ID), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("remaining", sa.BigInteger, nullable=False),
    sa.Column("expired", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.CheckConstraint("remaining >= 0", name="loyalty_lots_remaining_non_negative"),
)

# Which lots a journal drew on, so points given back (a voided hold) keep their original expiry.
lot_uses = sa.Table(
    "loyalty_lot_uses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("journal_id", sa.String(_ID), nullable=False, index=True),
    sa.Column("lot_id", sa.String(_ID), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
)

# Points held as payment: one row per authorization.
holds = sa.Table(
    "loyalty_holds",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("idempotency_key", sa.String(_KEY), nullable=False, unique=True),
    sa.Column("member_id", sa.String(_ID), nullable=False, index=True),
    sa.Column("journal_id", sa.String(_ID), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("captured_amount", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("captured_points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded_amount", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded_points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("voided", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

SYSTEM_ACCOUNTS: dict[str, bool] = {
    # name -> may go negative
    "issued": True,
    "redeemed": False,
    "expired": False,
    "held": False,
}


def system_account(name: str) -> str:
    return f"system:{name}"


#: Points issued are posted to one of several accounts, ``system:issued:0`` to ``:7``, chosen by the journal
#: (before migration 2, to ``system:issued``, which keeps what it holds). Every earning order posts there:
#: one row updated by every checkout would hold each checkout's transaction behind the one before it until
#: that one commits (measured on PostgreSQL under load: 1.6 ms of waiting per earning order).
ISSUED_STRIPES = 8


def issued_account(journal_id: str) -> str:
    """The account that issues the points of journal ``journal_id``."""
    return system_account(f"issued:{zlib.crc32(journal_id.encode()) % ISSUED_STRIPES}")


def member_account(member_id: str) -> str:
    return f"member:{member_id}"


def partner_account(partner: str) -> str:
    return f"partner:{partner}"


def _seed_system_accounts(connection: sa.Connection) -> None:
    for name, may_go_negative in SYSTEM_ACCOUNTS.items():
        exists = connection.execute(sa.select(accounts.c.id).where(accounts.c.id == system_account(name))).first()
        if exists is None:
            connection.execute(
                accounts.insert().values(
                    id=system_account(name),
                    kind="system",
                    owner=None,
                    balance=0,
                    may_go_negative=may_go_negative,
                )
            )


def _version_1() -> Migration:
    create = create_tables(
        1,
        "members, identities, merges, points ledger, lots, holds",
        members,
        identities,
        merges,
        accounts,
        journals,
        postings,
        lots,
        lot_uses,
        holds,
    )

    def upgrade(connection: sa.Connection) -> None:
        create.upgrade(connection)
        _seed_system_accounts(connection)

    return Migration(1, create.description, upgrade)


def _seed_issued_stripes(connection: sa.Connection) -> None:
    for stripe in range(ISSUED_STRIPES):
        account = system_account(f"issued:{stripe}")
        if connection.execute(sa.select(accounts.c.id).where(accounts.c.id == account)).first() is None:
            connection.execute(
                accounts.insert().values(id=account, kind="system", owner=None, balance=0, may_go_negative=True)
            )


MIGRATIONS: list[Migration] = [
    _version_1(),
    Migration(2, "points issued through eight accounts: earning orders wait on no one row", _seed_issued_stripes),
]
