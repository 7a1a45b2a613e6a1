"""The stack's own secret: a random key made once per database, for keyed hashes of what must not be stored.

A checkout's idempotency fingerprint covers the payment details (a different card under one key is a
different request), but a card number must never be stored, and a plain hash of one is no protection (a
card number has too few unknown digits). The fingerprint is an HMAC under this key instead, which never
leaves the database and is never printed.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from retailblocks.storage.engine import reading
from retailblocks.storage.migrations import Migration

metadata = sa.MetaData()

stack_secrets = sa.Table(
    "stack_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
)

FINGERPRINT = "fingerprint_key"


def _create(connection: sa.Connection) -> None:
    stack_secrets.create(connection, checkfirst=True)
    connection.execute(stack_secrets.insert().values(name=FINGERPRINT, value=secrets.token_hex(32)))


SECRETS_MIGRATION = Migration(2, "the stack's secret key for fingerprints", _create, (stack_secrets.name,))


def fingerprint_key(engine: sa.Engine) -> bytes:
    with reading(engine) as connection:
        value = connection.execute(
            sa.select(stack_secrets.c.value).where(stack_secrets.c.name == FINGERPRINT)
        ).scalar_one()
    return bytes.fromhex(value)
