"""The core's own tables: orders and their lines, the saga log, idempotency keys, and the event outbox."""

from __future__ import annotations

import sqlalchemy as sa

from retailblocks.model.limits import MAX_TEXT_LENGTH
from retailblocks.storage.migrations import Migration, create_tables
from retailblocks.storage.secrets import SECRETS_MIGRATION

metadata = sa.MetaData()

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("member_id", sa.String(64), index=True),
    sa.Column("subtotal", sa.BigInteger, nullable=False),
    sa.Column("discount", sa.BigInteger, nullable=False),
    sa.Column("shipping", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("attribution", sa.String(MAX_TEXT_LENGTH)),
    sa.Column("failure", sa.Text),
    # Everything the flows need to finish or undo the order: fulfilment, adjustments, payments,
    # reservation, chosen quote and shipments, as JSON written by the checkout saga.
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("order_id", sa.String(64), sa.ForeignKey("orders.id"), primary_key=True),
    sa.Column("line_index", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String(100), nullable=False, index=True),
    # Quantities and amounts are 64-bit everywhere: PostgreSQL's INTEGER ends at 2**31 - 1, far below
    # MAX_QUANTITY's sums, and the bounds in model.limits only hold if every column can store them.
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", sa.BigInteger, nullable=False),
    sa.Column("discount", sa.BigInteger, nullable=False),
    sa.Column("refunded_quantity", sa.BigInteger, nullable=False, server_default="0"),
)

sagas = sa.Table(
    "sagas",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("flow", sa.String(32), nullable=False),
    sa.Column("order_id", sa.String(64), nullable=False, index=True),
    # running → completed | compensated | rejected | stuck (see flows.saga.SagaStatus).
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    # A process owns a running saga until its lease ends; recovery takes over only expired leases.
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    # The owner's epoch: raised by every takeover, and matched by every write of the owner (fencing).
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

saga_log = sa.Table(
    "saga_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.String(64), nullable=False, index=True),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # done | compensated | failed
    sa.Column("detail", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("flow", sa.String(32), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("result_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(64)),
    sa.Column("order_id", sa.String(64), index=True),
    sa.Column("member_id", sa.String(64), index=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    # The transaction that wrote the event: readers walk the outbox in (tx, id) order (events/positions.py).
    # PostgreSQL fills it in (migration 6 sets the default); SQLite commits one writer at a time and keeps 0.
    sa.Column("tx", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("outbox_delivery_order", "tx", "id"),
)

# One row per subscriber: the last event it was handed (delivered, or parked as failed below).
event_cursors = sa.Table(
    "event_cursors",
    metadata,
    sa.Column("subscriber", sa.String(64), primary_key=True),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("last_tx", sa.BigInteger, nullable=False, server_default="0"),
)

# Deliveries that failed: retried with backoff, dead letters after too many attempts.
event_failures = sa.Table(
    "event_failures",
    metadata,
    sa.Column("event_id", sa.Integer, sa.ForeignKey("outbox.id"), primary_key=True),
    sa.Column("subscriber", sa.String(64), primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("dead", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
)

# What the HTTP API answered to a request sent with an Idempotency-Key, per API key: replayed to a retry
# with the same body, refused for another body, and "still running" while ``state`` is running and the
# lease has not run out (a server that died mid-request leaves its row to be taken over).
http_requests = sa.Table(
    "http_requests",
    metadata,
    sa.Column("api_key", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # running | done
    sa.Column("status", sa.Integer),
    sa.Column("body", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Carts a channel builds step by step on the server (flows.carts). The row is the cart: ``contents`` holds
# its lines, fulfilment, coupons and payment methods (never payment details), rewritten whole by a
# conditional update on ``version``, so two concurrent edits never lose one another. ``status`` goes
# open → checking_out → checked_out (or back to open when the checkout is refused); ``checkout_attempt``
# numbers the checkouts tried, each under its own derived key, and ``order_id`` is the order it became.
carts = sa.Table(
    "carts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("member_id", sa.String(64), index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("contents", sa.JSON, nullable=False),
    sa.Column("checkout_attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("order_id", sa.String(64)),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


# Who delivers a subscriber's events outside the stack (a webhook) right now: one process at a time, so
# its events go out in order; a process that dies leaves its lease to run out and be taken over.
event_leases = sa.Table(
    "event_leases",
    metadata,
    sa.Column("subscriber", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
)


def _order_outbox_by_transaction(connection: sa.Connection) -> None:
    """Add the writer's transaction to the outbox and the cursors (a database made before version 6 lacks
    them; a new one has them from version 1), and have PostgreSQL record it on every insert."""
    inspector = sa.inspect(connection)
    if "tx" not in {column["name"] for column in inspector.get_columns("outbox")}:
        connection.exec_driver_sql("ALTER TABLE outbox ADD COLUMN tx BIGINT NOT NULL DEFAULT 0")
    if "last_tx" not in {column["name"] for column in inspector.get_columns("event_cursors")}:
        connection.exec_driver_sql("ALTER TABLE event_cursors ADD COLUMN last_tx BIGINT NOT NULL DEFAULT 0")
    connection.exec_driver_sql("CREATE INDEX IF NOT EXISTS outbox_delivery_order ON outbox (tx, id)")
    if connection.dialect.name == "postgresql":
        # The top-level transaction's id, also inside a savepoint; 64 bits with its epoch, so it never wraps.
        connection.exec_driver_sql(
            "ALTER TABLE outbox ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint)"
        )


CORE_MIGRATIONS: list[Migration] = [
    create_tables(
        1,
        "orders, saga log, idempotency keys, outbox",
        orders,
        order_lines,
        sagas,
        saga_log,
        idempotency_keys,
        outbox,
        event_cursors,
        event_failures,
    ),
    SECRETS_MIGRATION,
    create_tables(3, "what the HTTP API answered, per idempotency key", http_requests),
    create_tables(4, "leases of the processes delivering webhooks", event_leases),
    create_tables(5, "server-side carts", carts),
    Migration(6, "outbox events ordered by the transaction that wrote them", _order_outbox_by_transaction),
]
