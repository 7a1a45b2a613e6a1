"""The order flows of a stack: checkout, cancel, refund, reading orders, and recovery after a crash."""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.context import FlowContext
from retailblocks.errors import (
    BusinessRejection,
    FlowStillRunning,
    FlowStuck,
    FlowTakenOver,
    IdempotencyConflict,
    InvalidValue,
    MemberLimitReached,
    NotDeliverable,
    NotRefundable,
    OutOfStock,
    PaymentDeclined,
    PaymentOutcomeUnknown,
    PromotionRejected,
    RetailBlocksError,
)
from retailblocks.flows.aftercare import AftercareSteps
from retailblocks.flows.capabilities import maintain
from retailblocks.flows.checkout import CHECKOUT_SETTLED, CheckoutSteps, cart_fingerprint_data
from retailblocks.flows.orders import list_orders, load_order
from retailblocks.flows.saga import (
    TRANSIENT_FAILURES,
    FaultInjector,
    SagaRun,
    SagaRunner,
    SagaStatus,
    Transient,
    hold,
    load_run,
)
from retailblocks.flows.state import CancelState, CheckoutState, CheckoutStep, FlowKind, RefundState, load_state
from retailblocks.hookspecs import payment
from retailblocks.model import Cart, Order, OrderStatus
from retailblocks.model.limits import MAX_ID_LENGTH, check_key, check_quantity, check_text
from retailblocks.storage import UnitOfWork
from retailblocks.storage.json_text import json_encoder
from retailblocks.storage.tables import idempotency_keys, order_lines, orders, sagas

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

#: How long a request waits for a concurrent request with the same key to finish.
REPLAY_WAIT_SECONDS = 60.0

_REJECTIONS: dict[str, type[BusinessRejection]] = {
    cls.cause: cls
    for cls in (OutOfStock, PaymentDeclined, NotDeliverable, NotRefundable, PromotionRejected, MemberLimitReached)
}


@attrs.frozen
class RecoveryReport:
    """What one recovery did: the flows it finished, the flows it undid, the flows that need an operator
    (stuck, with the reason) and the flows it left for a later run (``skipped``, with the reason: a lock
    held by another process, an outcome a provider cannot tell yet)."""

    resumed: tuple[str, ...] = ()
    compensated: tuple[str, ...] = ()
    stuck: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    reasons: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class FlowState:
    """A flow that has not finished: ``running`` (its owner works on it, or recovery will once its lease
    runs out) or ``stuck`` (stopped half-way; ``error`` says where and why, until an operator resolves it)."""

    id: str
    flow: str
    order_id: str
    status: str
    step: str
    error: str | None
    lease_until: datetime
    updated_at: datetime


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


def check_order_request(
    order_id: str, *, key: str | None = None, reason: str = "", lines: Mapping[int, int] | None = None
) -> None:
    """InvalidValue unless an order id, and a cancel's or refund's key, reason and line quantities, are
    within model.limits (the ``blocks`` commands check theirs with this too)."""
    check_text(order_id, "an order id", max_length=MAX_ID_LENGTH, allow_empty=False)
    if key is not None:
        check_key(key)
    check_text(reason, "a reason")
    if lines is None:
        return
    if not isinstance(lines, Mapping):
        raise InvalidValue(f"refund lines must map line indexes to quantities (got {type(lines).__name__})")
    for index, quantity in lines.items():
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise InvalidValue(f"a refund's line index must be an integer >= 0 (got {index!r})")
        check_quantity(quantity, f"the refund quantity of line {index}")


class OrderFlows:
    def __init__(self, stack: Runtime):
        self.stack = stack
        self.faults = FaultInjector()
        self._checkout = CheckoutSteps(self)
        self._aftercare = AftercareSteps(self)
        self._runners: dict[FlowKind, SagaRunner] = {}

    @contextmanager
    def outside_call(self, run: SagaRun[Any], ctx: FlowContext, *, last: bool = False) -> Iterator[FlowContext]:
        """A context of its own for one call to the outside world and what the block records about it.

        Each payment share gets its own unit of work: a block records its side of one call without holding
        the database while the next provider is called (on SQLite a held write lock would stall everyone).

        The ``last`` call of a step whose transaction has not begun records in the step's own transaction
        instead: no call follows it, so no lock is held across one, and the block's record commits with
        the step's — one transaction fewer. Should the step then roll back, the block's view misses the
        call, as after a crash between a call and its record: the call carries its key, so the block learns
        it again from the provider, and compensation undoes it.
        """
        if last and not ctx.step_started:
            # The block's record comes before the step's writes, so the locks it takes come first too: the
            # saga's row, taken before any, keeps a compensation of the flow from taking the same locks
            # in the other order (see hold).
            ctx.uow.open_with(lambda connection: hold(connection, run))
            try:
                yield ctx
            except BusinessRejection:
                # Nothing of the step is in its transaction yet but the block's record of the refusal: keep it.
                ctx.uow.commit()
                raise
            except BaseException:
                ctx.uow.rollback()
                raise
            run.effects += 1
            return
        uow = UnitOfWork(self.stack.engine)
        try:
            yield self.stack.new_context(uow, run.channel, flow=ctx.flow, flow_id=run.order_id, key=run.id)
        except BusinessRejection:
            # What the provider answered (a decline) is a fact the block recorded on purpose: keep it.
            uow.commit()
            raise
        except BaseException:
            uow.rollback()
            raise
        uow.commit()
        run.effects += 1

    def _runner(self, flow: FlowKind) -> SagaRunner:
        # A runner keeps no state of its own between runs: one per flow serves every run, on any thread.
        runner = self._runners.get(flow)
        if runner is None:
            steps = {
                FlowKind.CHECKOUT: self._checkout.steps,
                FlowKind.CANCEL: self._aftercare.cancel_steps,
                FlowKind.REFUND: self._aftercare.refund_steps,
            }[flow]()
            if flow is FlowKind.CHECKOUT:
                runner = SagaRunner(
                    self.stack,
                    flow,
                    steps,
                    self.faults,
                    settled=CHECKOUT_SETTLED,
                    grouped=True,
                    before_progress=self._checkout.write_order_at_commit,
                )
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
        check_key(key)
        self.stack.channel(cart.channel)
        # Refused here, before anything is recorded: a method no block answers, or details its block could
        # never authorize (no card number), are invalid input, which leaves no order behind; only a real
        # rejection (a decline, no stock) is kept, so that its key replays it.
        with self.stack.context(cart.channel, flow="checkout", read_only=True) as ctx:
            for requested in cart.payments:
                self.stack.hooks.maybe(
                    payment.payment_validate, ctx, requested.method, requested.details, cart.identities
                )
        fingerprint = request_hash(cart_fingerprint_data(cart, self.stack.fingerprint_key))
        # No look-up of the key first: the first step inserts it before anything else, so a key already
        # used (a replay, or a concurrent request) fails there with an IntegrityError, nothing done, and
        # is replayed below. Every new checkout saves a read transaction.
        order_id = self.stack.ids.new_id("ord")
        run = SagaRun(
            id=order_id,
            flow=FlowKind.CHECKOUT,
            order_id=order_id,
            channel=cart.channel,
            key=key,
            state=CheckoutState(request_hash=fingerprint, channel=cart.channel, key=key),
            transient=Transient(cart=cart, payment_details=[dict(p.details) for p in cart.payments]),
        )
        try:
            self._runner(FlowKind.CHECKOUT).run(run)
        except sa.exc.IntegrityError:
            found = self._find_key(key)
            if found is None:
                raise
            return self._replay(key, found, fingerprint)
        except BusinessRejection as rejection:
            if CheckoutStep.RESERVE not in run.done and not self._order_exists(order_id):
                self._record_rejection(run, cart, rejection)
            raise
        except FlowTakenOver:
            # Recovery owns the order now: the shopper gets its outcome, as a replay of the key would.
            return self._replay(key, {"request_hash": fingerprint, "result_id": order_id}, fingerprint)
        result = run.transient.result  # read by the last step, in its transaction
        return result if result is not None else self.order(order_id)

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
            if order.status is not OrderStatus.PENDING:
                break
            if time.monotonic() > deadline:
                raise FlowStillRunning(
                    f"the checkout under key {key!r} (order {order.id}) is still running; ask again later with "
                    "the same key for its outcome"
                )
            time.sleep(0.02)
        if order.status is OrderStatus.FAILED:
            raise rejection_from(order.failure or "rejected: checkout failed")
        return order

    def _record_rejection(self, run: SagaRun[CheckoutState], cart: Cart, rejection: BusinessRejection) -> None:
        """Keep a rejected checkout (nothing reserved, nothing charged) so its key replays the rejection."""
        now = self.stack.clock.now()
        failure = f"{rejection.cause}: {rejection}"
        try:
            with UnitOfWork(self.stack.engine) as uow:
                uow.connection.execute(
                    idempotency_keys.insert().values(
                        key=run.key,
                        flow=FlowKind.CHECKOUT.value,
                        request_hash=run.state.request_hash,
                        result_id=run.order_id,
                        created_at=now,
                    )
                )
                zero = 0
                uow.connection.execute(
                    orders.insert().values(
                        id=run.order_id,
                        channel=cart.channel,
                        status=OrderStatus.FAILED.value,
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
                ctx = self.stack.new_context(uow, cart.channel, flow="checkout", flow_id=run.order_id, key=run.id)
                ctx.record("order.rejected", {"cause": rejection.cause, "reason": str(rejection)})
        except sa.exc.IntegrityError:
            pass  # a concurrent request with the same key recorded its own outcome

    # -- cancel and refund ------------------------------------------------------------------------

    def cancel(self, order_id: str, *, key: str | None = None, reason: str = "") -> Order:
        """Cancel the order: stop delivery, return its stock, coupons, points and money.

        An order is cancelled at most once, whatever the key; a cancel refused once its parcel has left is
        refused again when asked again.
        """
        check_order_request(order_id, key=key, reason=reason)
        channel = self._channel_of(order_id)
        run = SagaRun(
            id=f"{order_id}~cancel",
            flow=FlowKind.CANCEL,
            order_id=order_id,
            channel=channel,
            key=key or f"{order_id}:cancel",
            state=CancelState(reason=reason, key=key or f"{order_id}:cancel", channel=channel),
        )
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
        check_order_request(order_id, key=key, reason=reason, lines=lines)
        # The flow's own identity, unique per order and key: the keys blocks and providers see derive from
        # it, so one caller key used on two orders names two refunds that never collide.
        saga_id = "rfd_" + hashlib.sha256(f"{order_id}|{key}".encode()).hexdigest()[:24]
        wanted = None if lines is None else {int(k): int(v) for k, v in lines.items()}
        channel = self._channel_of(order_id)
        run = SagaRun(
            id=saga_id,
            flow=FlowKind.REFUND,
            order_id=order_id,
            channel=channel,
            key=key,
            state=RefundState(lines=wanted, reason=reason, restock=restock, key=key, channel=channel),
        )
        return self._run_aftercare(run)

    def _channel_of(self, order_id: str) -> str:
        return self.order(order_id).channel

    def _run_aftercare(self, run: SagaRun[CancelState] | SagaRun[RefundState]) -> Order:
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            existing = connection.execute(sa.select(sagas.c.state).where(sagas.c.id == run.id)).first()
            connection.rollback()
        if existing is not None:
            if isinstance(run.state, RefundState):
                previous = load_state(RefundState, existing.state)
                if previous.lines != run.state.lines or previous.restock != run.state.restock:
                    raise IdempotencyConflict(
                        f"refund key {run.key!r} was used for a different refund of {run.order_id}"
                    )
            return self._outcome(run)
        try:
            self._runner(run.flow).run(run)
        except (sa.exc.IntegrityError, FlowTakenOver):
            return self._outcome(run)
        return self.order(run.order_id)

    def _outcome(self, run: SagaRun[Any]) -> Order:
        """What became of the cancel or refund ``run`` names, which another request began: the order once
        the flow completed; its refusal again if it was refused; FlowStuck if it stopped half-way."""
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        while True:
            with self.stack.engine.connect() as connection:
                connection.info["read_only"] = True
                row = connection.execute(
                    sa.select(sagas.c.status, sagas.c.step, sagas.c.error).where(sagas.c.id == run.id)
                ).first()
                connection.rollback()
            status = SagaStatus(row.status) if row is not None else SagaStatus.RUNNING
            if status is not SagaStatus.RUNNING:
                break
            if time.monotonic() > deadline:
                raise FlowStillRunning(
                    f"the {run.flow} of order {run.order_id} under key {run.key!r} is still running; ask again "
                    "later with the same key for its outcome"
                )
            time.sleep(0.02)
        assert row is not None
        if status is SagaStatus.REJECTED:
            raise rejection_from(row.error or "rejected: refused")
        if status is SagaStatus.STUCK:
            raise FlowStuck(
                f"the {run.flow} {run.id} of order {run.order_id} is stuck ({row.error}); `blocks recover` lists "
                "it and `blocks recover --retry-stuck` runs it again once the cause is mended",
                saga_id=run.id,
                step=row.step,
                reason=row.error or "",
            )
        return self.order(run.order_id)

    # -- reading ----------------------------------------------------------------------------------

    def order(self, order_id: str) -> Order:
        check_order_request(order_id)
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            order = load_order(connection, order_id)
            connection.rollback()
        if not order.payments:
            return order
        # Each payment as its block holds it now (captured, refunded…), not as checkout recorded it.
        with self.stack.context(flow="read", read_only=True) as ctx:
            balances = [self.stack.hooks.maybe(payment.payment_balance, ctx, paid) for paid in order.payments]
        return attrs.evolve(
            order,
            payments=tuple(
                payment if balance is None else attrs.evolve(payment, status=balance.status)
                for payment, balance in zip(order.payments, balances, strict=True)
            ),
        )

    def orders(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        member_id: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Order]:
        return list_orders(
            self.stack.engine, status=status, channel=channel, member_id=member_id, limit=limit, after=after
        )

    # -- recovery ---------------------------------------------------------------------------------

    def recover(
        self, *, ignore_leases: bool = False, retry_stuck: bool = False, orders: Collection[str] | None = None
    ) -> RecoveryReport:
        """Finish or undo every flow a crash left half-way, then run the blocks' housekeeping; report all of it.

        Only flows whose lease has run out are taken (a live process renews its lease at every step), unless
        ``ignore_leases`` — for a single process that knows it is the only one (start-up after a crash).
        Taking a flow over raises its epoch, so a stalled owner that wakes up can no longer write to it.
        With ``retry_stuck`` the stuck flows are run again too (once an operator has mended the cause).
        ``orders`` limits recovery to the flows of those orders (a simulation taking back its own flows).
        Flows found stuck are reported with their reasons either way; flows whose rows another process
        holds locked, or that wait on a lock it holds, are skipped and reported, never waited on for long.
        """
        lease_now = self.stack.lease_clock.now()
        statuses = [SagaStatus.RUNNING.value, *([SagaStatus.STUCK.value] if retry_stuck else [])]
        query = sa.select(sagas.c.id).where(sagas.c.status.in_(statuses))
        if not ignore_leases:
            query = query.where(sa.or_(sagas.c.lease_until < lease_now, sagas.c.status == SagaStatus.STUCK.value))
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            rows = connection.execute(query.add_columns(sagas.c.order_id).order_by(sagas.c.created_at, sagas.c.id))
            candidates = [row.id for row in rows if orders is None or row.order_id in orders]
            connection.rollback()
        resumed: list[str] = []
        compensated: list[str] = []
        skipped: list[str] = []
        reasons: dict[str, str] = {}
        for saga_id in candidates:
            try:
                run = self._claim(saga_id, ignore_leases=ignore_leases, retry_stuck=retry_stuck)
            except _Locked:
                skipped.append(saga_id)
                reasons[saga_id] = "another process holds it in an open transaction (frozen or slow); left for later"
                continue
            except TRANSIENT_FAILURES as problem:
                skipped.append(saga_id)
                reasons[saga_id] = f"could not be claimed: {_one_line(problem)}"
                continue
            if run is None:
                continue
            try:
                outcome = self._recover_run(run)
            except FlowTakenOver:
                continue  # another recovery took it over meanwhile: its outcome is that recovery's
            except TRANSIENT_FAILURES as problem:
                skipped.append(saga_id)
                reasons[saga_id] = f"left for a later recovery: {_one_line(problem)}"
                continue
            except (RetailBlocksError, Exception):
                continue  # the flow is stuck now, with its reason: reported below
            (resumed if outcome is RecoveryOutcome.RESUMED else compensated).append(saga_id)
        maintain(self.stack.hooks, lambda: self.stack.context(flow="maintenance"))
        stuck = self.stuck_flows()
        reasons.update(stuck)
        return RecoveryReport(tuple(resumed), tuple(compensated), tuple(stuck), tuple(skipped), reasons)

    def unfinished(self, *, status: str | None = None) -> list[FlowState]:
        """Every running and stuck flow (or only those of ``status``), oldest first."""
        wanted = [SagaStatus.RUNNING.value, SagaStatus.STUCK.value]
        if status is not None:
            if status not in wanted:
                raise InvalidValue(f"a flow left half-way is running or stuck (got {status!r})")
            wanted = [status]
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            rows = connection.execute(
                sa.select(
                    sagas.c.id,
                    sagas.c.flow,
                    sagas.c.order_id,
                    sagas.c.status,
                    sagas.c.step,
                    sagas.c.error,
                    sagas.c.lease_until,
                    sagas.c.updated_at,
                )
                .where(sagas.c.status.in_(wanted))
                .order_by(sagas.c.created_at, sagas.c.id)
            ).all()
            connection.rollback()
        return [
            FlowState(
                row.id,
                row.flow,
                row.order_id,
                row.status,
                row.step,
                row.error,
                as_utc(row.lease_until),
                as_utc(row.updated_at),
            )
            for row in rows
        ]

    def stuck_flows(self) -> dict[str, str]:
        """Every stuck flow, by id, with where and why it stopped."""
        with self.stack.engine.connect() as connection:
            connection.info["read_only"] = True
            rows = connection.execute(
                sa.select(sagas.c.id, sagas.c.flow, sagas.c.order_id, sagas.c.error)
                .where(sagas.c.status == SagaStatus.STUCK.value)
                .order_by(sagas.c.created_at, sagas.c.id)
            ).all()
            connection.rollback()
        return {row.id: f"{row.flow} of {row.order_id}: {row.error}" for row in rows}

    def _claim(self, saga_id: str, *, ignore_leases: bool, retry_stuck: bool) -> SagaRun[Any] | None:
        """Take the flow over under a new epoch. A row another process holds locked (PostgreSQL) is skipped
        rather than waited for: that process is alive enough to hold a transaction open."""
        lease_now = self.stack.lease_clock.now()
        with UnitOfWork(self.stack.engine) as uow:
            condition = [sagas.c.id == saga_id]
            if retry_stuck:
                condition.append(sagas.c.status.in_([SagaStatus.RUNNING.value, SagaStatus.STUCK.value]))
            else:
                condition.append(sagas.c.status == SagaStatus.RUNNING.value)
            if not ignore_leases:
                condition.append(sa.or_(sagas.c.lease_until < lease_now, sagas.c.status == SagaStatus.STUCK.value))
            free = uow.connection.execute(
                sa.select(sagas.c.id).where(*condition).with_for_update(skip_locked=True)
            ).first()
            if free is None:
                if uow.connection.execute(sa.select(sagas.c.id).where(*condition)).first() is not None:
                    raise _Locked  # still due, but another process holds its row in an open transaction
                return None
            uow.connection.execute(
                sagas.update()
                .where(sagas.c.id == saga_id)
                .values(
                    status=SagaStatus.RUNNING.value,
                    lease_until=lease_now + self.stack.lease,
                    attempts=sagas.c.attempts + 1,
                )
            )
            return load_run(uow.connection, saga_id)

    def _recover_run(self, run: SagaRun[Any]) -> RecoveryOutcome:
        runner = self._runner(run.flow)
        names = [step.name for step in runner.steps]
        next_index = max((names.index(n) + 1 for n in run.done if n in names), default=0)
        in_flight = names[next_index] if next_index < len(names) else None
        if run.flow is FlowKind.CHECKOUT and (run.state.compensating or CheckoutStep.PLACE not in run.done):
            status = runner.compensate(run, None, failed_step=in_flight)
            if status is SagaStatus.RUNNING:
                failure = run.state.failure
                raise PaymentOutcomeUnknown(f"{run.flow} {run.id} could not be fully undone yet: {failure}")
            if status is SagaStatus.STUCK:
                raise FlowStuck(f"{run.flow} {run.id} is stuck", saga_id=run.id)
            return RecoveryOutcome.COMPENSATED
        try:
            runner.run(run, start=next_index, recovering=True)
        except BusinessRejection:
            if run.flow is not FlowKind.CHECKOUT:
                raise  # a refund or cancel refused half-way is stuck or rejected now, not undone
            return RecoveryOutcome.COMPENSATED
        return RecoveryOutcome.RESUMED


class RecoveryOutcome(enum.Enum):
    """What recovering one flow came to."""

    RESUMED = "resumed"
    COMPENSATED = "compensated"


class _Locked(Exception):
    """A flow due for recovery whose row another process holds locked."""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(getattr(error, "orig", None) or error).split())
    return f"{type(error).__name__}: {text}"


__all__ = ["OrderFlows", "RecoveryReport"]
