"""The order flows of a stack: checkout, cancel, refund, reading orders, and recovery after a crash."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import (
    BusinessRejection,
    IdempotencyConflict,
    InvalidValue,
    NotDeliverable,
    NotRefundable,
    OutOfStock,
    PaymentDeclined,
    PaymentOutcomeUnknown,
    PromotionRejected,
    RetailBlocksError,
)
from retailblocks.flows.aftercare import AftercareSteps
from retailblocks.flows.checkout import CHECKOUT_SETTLED, CheckoutSteps, cart_fingerprint_data
from retailblocks.flows.orders import load_order, order_from_rows
from retailblocks.flows.saga import FaultInjector, SagaRun, SagaRunner, load_run
from retailblocks.model import Cart, Order
from retailblocks.storage import UnitOfWork
from retailblocks.storage.json_text import json_encoder
from retailblocks.storage.tables import idempotency_keys, order_lines, orders, sagas

if TYPE_CHECKING:
    from retailblocks.assembly.stack import Stack

#: How long a request waits for a concurrent request with the same key to finish.
REPLAY_WAIT_SECONDS = 60.0

_REJECTIONS: dict[str, type[BusinessRejection]] = {
    cls.cause: cls for cls in (OutOfStock, PaymentDeclined, NotDeliverable, NotRefundable, PromotionRejected)
}


@attrs.frozen
class RecoveryReport:
    resumed: tuple[str, ...] = ()
    compensated: tuple[str, ...] = ()
    stuck: tuple[str, ...] = ()


_CANONICAL = json_encoder(default=str, sort_keys=True)


def request_hash(data: Any) -> str:
    return hashlib.sha256(_CANONICAL(data).encode()).hexdigest()


def rejection_from(failure: str) -> BusinessRejection:
    cause, _, message = failure.partition(": ")
    kind = _REJECTIONS.get(cause, BusinessRejection)
    if kind is OutOfStock:
        return OutOfStock(message)
    if kind is PaymentDeclined:
        return PaymentDeclined(message)
    error = kind(message or failure)
    return error


class OrderFlows:
    def __init__(self, stack: Stack):
        self.stack = stack
        self.faults = FaultInjector()
        self._checkout = CheckoutSteps(self)
        self._aftercare = AftercareSteps(self)
        self._runners: dict[str, SagaRunner] = {}

    @contextmanager
    def outside_call(self, run: SagaRun, ctx: FlowContext) -> Iterator[FlowContext]:
        """A context of its own for one call to the outside world and what the block records about it.

        Each payment share gets its own unit of work: a block records its side of one call without holding
        the database while the next provider is called (on SQLite a held write lock would stall everyone).
        """
        uow = UnitOfWork(self.stack.engine)
        try:
            yield self.stack.new_context(uow, run.channel, flow=ctx.flow, flow_id=run.order_id, key=run.key)
        except BusinessRejection:
            # What the provider answered (a decline) is a fact the block recorded on purpose: keep it.
            uow.commit()
            raise
        except BaseException:
            uow.rollback()
            raise
        uow.commit()

    def _runner(self, flow: str) -> SagaRunner:
        # A runner keeps no state of its own between runs: one per flow serves every run, on any thread.
        runner = self._runners.get(flow)
        if runner is None:
            steps = {
                "checkout": self._checkout.steps,
                "cancel": self._aftercare.cancel_steps,
                "refund": self._aftercare.refund_steps,
            }[flow]()
            if flow == "checkout":
                runner = SagaRunner(self.stack, flow, steps, self.faults, settled=CHECKOUT_SETTLED)
            else:
                runner = SagaRunner(self.stack, flow, steps, self.faults, forward_only=True)
            self._runners[flow] = runner
        return runner

    # -- checkout ---------------------------------------------------------------------------------

    def checkout(self, cart: Cart, *, key: str) -> Order:
        """Place ``cart`` as an order, once per ``key``.

        The same key returns the same order without repeating any side effect (also while the first
        request is still running); the same key with a different cart raises IdempotencyConflict. A
        rejection (out of stock, declined) raises the matching BusinessRejection, and so does its replay.
        """
        if not isinstance(cart, Cart):
            raise InvalidValue(f"checkout expects a Cart (got {type(cart).__name__})")
        if not key or len(key) > 150:
            raise InvalidValue("an idempotency key of 1 to 150 characters is required")
        self.stack.channel(cart.channel)
        fingerprint = request_hash(cart_fingerprint_data(cart))
        # No look-up of the key first: the first step inserts it before anything else, so a key already
        # used (a replay, or a concurrent request) fails there with an IntegrityError, nothing done, and
        # is replayed below. Every new checkout saves a read transaction.
        order_id = self.stack.ids.new_id("ord")
        run = SagaRun(
            id=order_id,
            flow="checkout",
            order_id=order_id,
            channel=cart.channel,
            key=key,
            state={"request_hash": fingerprint, "channel": cart.channel, "key": key},
            transient={"cart": cart, "payment_details": [dict(p.details) for p in cart.payments]},
        )
        try:
            self._runner("checkout").run(run)
        except sa.exc.IntegrityError:
            found = self._find_key(key)
            if found is None:
                raise
            return self._replay(key, found, fingerprint)
        except BusinessRejection as rejection:
            if "reserve" not in run.done and not self._order_exists(order_id):
                self._record_rejection(run, cart, rejection)
            raise
        result = run.transient.get("result")  # read by the last step, in its transaction
        return result if isinstance(result, Order) else self.order(order_id)

    def _order_exists(self, order_id: str) -> bool:
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            found = connection.execute(sa.select(orders.c.id).where(orders.c.id == order_id)).first()
            connection.rollback()
        return found is not None

    def _find_key(self, key: str) -> Mapping[str, Any] | None:
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            row = (
                connection.execute(sa.select(idempotency_keys).where(idempotency_keys.c.key == key)).mappings().first()
            )
            connection.rollback()
        return dict(row) if row else None

    def _replay(self, key: str, row: Mapping[str, Any], fingerprint: str) -> Order:
        if row["request_hash"] != fingerprint:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was used for a different request (order {row['result_id']}); "
                "use a new key for a new checkout"
            )
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        while True:
            order = self.order(row["result_id"])
            if order.status.value != "pending":
                break
            if time.monotonic() > deadline:
                return order
            time.sleep(0.02)
        if order.status.value == "failed":
            raise rejection_from(order.failure or "rejected: checkout failed")
        return order

    def _record_rejection(self, run: SagaRun, cart: Cart, rejection: BusinessRejection) -> None:
        """Keep a rejected checkout (nothing reserved, nothing charged) so its key replays the rejection."""
        now = self.stack.clock.now()
        failure = f"{rejection.cause}: {rejection}"
        try:
            with UnitOfWork(self.stack.engine) as uow:
                uow.connection.execute(
                    idempotency_keys.insert().values(
                        key=run.key,
                        flow="checkout",
                        request_hash=run.state["request_hash"],
                        result_id=run.order_id,
                        created_at=now,
                    )
                )
                zero = 0
                uow.connection.execute(
                    orders.insert().values(
                        id=run.order_id,
                        channel=cart.channel,
                        status="failed",
                        currency=self.stack.currency,
                        member_id=None,
                        subtotal=zero,
                        discount=zero,
                        shipping=zero,
                        total=zero,
                        refunded=zero,
                        idempotency_key=run.key,
                        attribution=cart.attribution,
                        failure=failure,
                        details={"authorizations": {}, "shipments": [], "adjustments": []},
                        created_at=now,
                        updated_at=now,
                    )
                )
                uow.connection.execute(
                    order_lines.insert(),
                    [
                        {
                            "order_id": run.order_id,
                            "line_index": i,
                            "sku": line.sku,
                            "quantity": line.quantity,
                            "unit_price": 0,
                            "discount": 0,
                        }
                        for i, line in enumerate(cart.lines)
                    ],
                )
                ctx = self.stack.new_context(uow, cart.channel, flow="checkout", flow_id=run.order_id, key=run.key)
                ctx.record("order.rejected", {"cause": rejection.cause, "reason": str(rejection)})
        except sa.exc.IntegrityError:
            pass  # a concurrent request with the same key recorded its own outcome

    # -- cancel and refund ------------------------------------------------------------------------

    def cancel(self, order_id: str, *, key: str | None = None, reason: str = "") -> Order:
        run = SagaRun(
            id=f"{order_id}~cancel",
            flow="cancel",
            order_id=order_id,
            channel=self._channel_of(order_id),
            key=key or f"{order_id}:cancel",
            state={"reason": reason, "key": key or f"{order_id}:cancel"},
        )
        run.state["channel"] = run.channel
        return self._run_aftercare(run)

    def refund(
        self,
        order_id: str,
        lines: Mapping[int, int] | None = None,
        *,
        key: str,
        reason: str = "",
        restock: bool = True,
    ) -> Order:
        if not key:
            raise InvalidValue("a refund needs an idempotency key")
        saga_id = "rfd_" + hashlib.sha256(f"{order_id}|{key}".encode()).hexdigest()[:24]
        data = None if lines is None else {str(int(k)): int(v) for k, v in lines.items()}
        run = SagaRun(
            id=saga_id,
            flow="refund",
            order_id=order_id,
            channel=self._channel_of(order_id),
            key=key,
            state={"lines": data, "reason": reason, "restock": restock, "key": key},
        )
        run.state["channel"] = run.channel
        return self._run_aftercare(run)

    def _channel_of(self, order_id: str) -> str:
        return self.order(order_id).channel

    def _run_aftercare(self, run: SagaRun) -> Order:
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            existing = connection.execute(sa.select(sagas.c.status, sagas.c.state).where(sagas.c.id == run.id)).first()
            connection.rollback()
        if existing is not None:
            previous = dict(existing.state)
            if run.flow == "refund" and previous.get("lines") != run.state.get("lines"):
                raise IdempotencyConflict(f"refund key {run.key!r} was used for a different refund of {run.order_id}")
            return self._wait_for(run.id, run.order_id)
        try:
            self._runner(run.flow).run(run)
        except sa.exc.IntegrityError:
            return self._wait_for(run.id, run.order_id)
        return self.order(run.order_id)

    def _wait_for(self, saga_id: str, order_id: str) -> Order:
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        while time.monotonic() < deadline:
            with self.stack.engine.connect() as connection:
                connection.info["read_only"] = True
                status = connection.execute(sa.select(sagas.c.status).where(sagas.c.id == saga_id)).scalar()
                connection.rollback()
            if status != "running":
                break
            time.sleep(0.02)
        return self.order(order_id)

    # -- reading ----------------------------------------------------------------------------------

    def order(self, order_id: str) -> Order:
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            order = load_order(connection, order_id)
            connection.rollback()
        return order

    def orders(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        member_id: str | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        query = sa.select(orders).order_by(orders.c.created_at, orders.c.id)
        if status is not None:
            query = query.where(orders.c.status == status)
        if channel is not None:
            query = query.where(orders.c.channel == channel)
        if member_id is not None:
            query = query.where(orders.c.member_id == member_id)
        if limit is not None:
            query = query.limit(limit)
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            rows = connection.execute(query).mappings().all()
            ids = [row["id"] for row in rows]
            lines: dict[str, list[Any]] = {order_id: [] for order_id in ids}
            for chunk_start in range(0, len(ids), 500):
                chunk = ids[chunk_start : chunk_start + 500]
                for line in connection.execute(
                    sa.select(order_lines)
                    .where(order_lines.c.order_id.in_(chunk))
                    .order_by(order_lines.c.order_id, order_lines.c.line_index)
                ).mappings():
                    lines[line["order_id"]].append(line)
            connection.rollback()
        return [order_from_rows(row, lines[row["id"]]) for row in rows]

    # -- recovery ---------------------------------------------------------------------------------

    def recover(self, *, ignore_leases: bool = False) -> RecoveryReport:
        """Finish or undo every saga a crash left half-way, then run the blocks' housekeeping.

        Only sagas whose lease has run out are taken (a live process renews its lease at every step), unless
        ``ignore_leases`` — for a single process that knows it is the only one (start-up after a crash).
        """
        now = self.stack.clock.now()
        query = sa.select(sagas.c.id).where(sagas.c.status == "running")
        if not ignore_leases:
            query = query.where(sagas.c.lease_until < now)
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            candidates = [row.id for row in connection.execute(query.order_by(sagas.c.created_at))]
            connection.rollback()
        resumed: list[str] = []
        compensated: list[str] = []
        stuck: list[str] = []
        for saga_id in candidates:
            run = self._claim(saga_id, ignore_leases=ignore_leases)
            if run is None:
                continue
            try:
                outcome = self._recover_run(run)
            except RetailBlocksError:
                stuck.append(saga_id)
                continue
            (resumed if outcome == "resumed" else compensated).append(saga_id)
        with self.stack.context(flow="maintenance") as ctx:
            self.stack.hooks.stack_maintain(ctx)
        return RecoveryReport(tuple(resumed), tuple(compensated), tuple(stuck))

    def _claim(self, saga_id: str, *, ignore_leases: bool) -> SagaRun | None:
        from retailblocks.flows.saga import LEASE

        now = self.stack.clock.now()
        with UnitOfWork(self.stack.engine) as uow:
            condition = [sagas.c.id == saga_id, sagas.c.status == "running"]
            if not ignore_leases:
                condition.append(sagas.c.lease_until < now)
            claimed = uow.connection.execute(
                sagas.update().where(*condition).values(lease_until=now + LEASE, attempts=sagas.c.attempts + 1)
            ).rowcount
            if claimed != 1:
                return None
            return load_run(uow.connection, saga_id)

    def _recover_run(self, run: SagaRun) -> str:
        runner = self._runner(run.flow)
        names = [step.name for step in runner.steps]
        next_index = max((names.index(n) + 1 for n in run.done if n in names), default=0)
        in_flight = names[next_index] if next_index < len(names) else None
        if run.flow == "checkout" and (run.state.get("compensating") or "place" not in run.done):
            if not runner.compensate(run, None, failed_step=in_flight):
                raise PaymentOutcomeUnknown(f"saga {run.id} could not be fully undone yet")
            return "compensated"
        try:
            runner.run(run, start=next_index)
        except BusinessRejection:
            return "compensated"
        return "resumed"


__all__ = ["OrderFlows", "RecoveryReport"]
