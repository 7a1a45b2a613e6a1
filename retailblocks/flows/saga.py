"""A small saga engine: steps declared with their compensation, progress persisted in the same
transaction as each step's writes (a flow may let steps that only write share the transaction of the step
before them: see ``SagaRunner.groups``).

A step either only writes to the database (its writes and its progress record commit together, so it
happened or it did not), or first calls the outside world and then records what came back. Outside calls
carry idempotency keys derived from the saga, so repeating a step after a crash never repeats its effect;
compensations are idempotent for the same reason and are safe to run for a step whose effect is unknown.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic

import attrs
import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import (
    BusinessRejection,
    EnvironmentFailure,
    FlowTakenOver,
    InvalidInput,
    PaymentOutcomeUnknown,
    RetailBlocksError,
)
from retailblocks.flows.state import STATE_TYPES, DataMemo, FlowKind, S, StepMark, load_state, state_document
from retailblocks.model import Cart, Member, Order
from retailblocks.storage import UnitOfWork
from retailblocks.storage.json_text import JsonText, SettledJson
from retailblocks.storage.prepared import Prepared, PreparedQuery
from retailblocks.storage.tables import saga_log, sagas
from retailblocks.storage.unit_of_work import UNITS_BY_CONNECTION, keeping_connection

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime


class SagaStatus(enum.StrEnum):
    """Where a flow stands. Only RUNNING flows are worked on (by their owner, or by recovery)."""

    RUNNING = "running"
    COMPLETED = "completed"
    #: Undone: every step that was done has been compensated.
    COMPENSATED = "compensated"
    #: Refused before anything took effect; the key replays the refusal.
    REJECTED = "rejected"
    #: Stopped half-way for a reason a retry cannot cure: visible to operators until one resolves it.
    STUCK = "stuck"


#: Failures that a later attempt may cure: the flow stays running, and recovery takes it up once its
#: lease has run out. Anything else that stops a flow half-way leaves it stuck, with the reason.
TRANSIENT_FAILURES: tuple[type[BaseException], ...] = (
    EnvironmentFailure,
    PaymentOutcomeUnknown,
    sa.exc.OperationalError,
)

Action = Callable[["SagaRun[Any]", FlowContext], None]

# Every step of every flow writes its progress: two statements per step, seven steps per checkout. They
# are built once and sent straight to the driver (see retailblocks.storage.prepared).
_LOG_STEP = Prepared.insert(saga_log, "saga_id", "step", "action", "detail", "at")
_PROGRESS_VALUES: dict[str, Any] = {
    "step": sa.bindparam("step"),
    "state": sa.bindparam("state", type_=JsonText()),
    "updated_at": sa.bindparam("updated_at"),
    "lease_until": sa.bindparam("lease_until"),
}
# Every write to a running saga is fenced: it matches the saga's id *and* the epoch its writer owns
# (``attempts``, raised by every takeover), so a process that stalled past its lease finds its write
# matching nothing and its step rolled back, instead of redoing what the new owner does.
_OWNED = sa.and_(sagas.c.id == sa.bindparam("saga_id"), sagas.c.attempts == sa.bindparam("epoch"))
_PROGRESS = Prepared(sagas.update().where(_OWNED).values(**_PROGRESS_VALUES))
# The last step's progress also closes the saga, in the same statement.
_PROGRESS_AND_STATUS = Prepared(sagas.update().where(_OWNED).values(status=sa.bindparam("status"), **_PROGRESS_VALUES))
_HOLD = PreparedQuery(sa.select(sagas.c.attempts).where(sagas.c.id == sa.bindparam("saga_id")).with_for_update())


def _logged_progress(steps: int, with_status: bool) -> Prepared:
    """On PostgreSQL, the progress UPDATE with the log rows of ``steps`` steps inserted by a data-modifying
    WITH in the same statement: one round trip where there were two. (SQLite has no INSERT in a WITH.)"""
    log = (
        saga_log.insert()
        .values(
            [
                {
                    "saga_id": sa.bindparam("saga_id"),
                    "step": sa.bindparam(f"logged_{index}"),
                    "action": sa.bindparam("action"),
                    "detail": sa.bindparam("detail"),
                    "at": sa.bindparam("updated_at"),
                }
                for index in range(steps)
            ]
        )
        .cte("logged")
    )
    values = {**_PROGRESS_VALUES, **({"status": sa.bindparam("status")} if with_status else {})}
    return Prepared(sagas.update().where(_OWNED).values(**values).add_cte(log))


#: Built on first use, by (number of steps logged, whether the saga's status is set).
_LOGGED_PROGRESS: dict[tuple[int, bool], Prepared] = {}
_LOAD_RUN = PreparedQuery(sa.select(sagas).where(sagas.c.id == sa.bindparam("saga_id")))
_SAGA_COLUMNS = ("id", "flow", "order_id", "status", "step", "state", "lease_until", "attempts", "created_at")
_INSERT_SAGA = Prepared(
    sagas.insert()
    .values(
        {
            **{name: sa.bindparam(name, type_=JsonText() if name == "state" else None) for name in _SAGA_COLUMNS},
            "updated_at": sa.bindparam("created_at"),
        }
    )
    .inline()
)


class SimulatedCrash(BaseException):
    """Raised by fault injection to stop a flow as a dying process would: no compensation runs.

    It derives from BaseException so that no ``except Exception`` in a flow or a block can swallow it.
    """


@attrs.frozen
class Step:
    """One step of a saga and how to undo it. ``channel_scoped`` steps run in the order's channel."""

    name: str
    action: Action
    compensation: Action | None = None
    #: Whether the step calls the outside world. A step that only writes to the database either
    #: committed (and is "done") or left no trace, so only outside steps are undone when they fail.
    outside: bool = False
    #: Whether the step finishes the flow: its progress record marks the saga "completed", in the
    #: step's own transaction.
    completes: bool = False


@attrs.define
class Transient:
    """What the running process knows of a saga but never persists: the request (payment details such as
    card tokens), what the steps keep in memory so as not to read it back, and the run's encoders."""

    cart: Cart | None = None
    payment_details: list[dict[str, str]] = attrs.field(factory=list)
    #: The order's row and line rows as checkout inserted them.
    order: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
    #: The order as checkout inserted it, as an order.
    base_order: Order | None = None
    #: The member checkout priced the cart for (None for a guest, or a saga resumed by recovery).
    member: Member | None = None
    #: The order as earn passed it to membership.
    paid_order: Order | None = None
    #: The order the last step read, as the caller gets it.
    result: Order | None = None
    encoders: dict[str, SettledJson] = attrs.field(factory=dict)
    data: DataMemo = attrs.field(factory=dict)
    #: The order's status and details as the steps of the running transaction changed them, written once
    #: before its progress (see ``SagaRunner.before_progress``); forgotten if the transaction rolls back.
    order_write: dict[str, Any] = attrs.field(factory=dict)
    #: The unit of work whose transaction holds the saga's row with the epoch this process owns (it
    #: inserted the row, or locked it with :func:`hold`): its progress needs no fence.
    fenced_by: UnitOfWork | None = None


@attrs.define
class SagaRun(Generic[S]):
    """A saga in progress: its id, the order it is about, and its state (what later steps need).

    ``state`` is a frozen value: a step records progress by replacing it (``attrs.evolve``), and the
    runner writes the current one with the step's progress.
    """

    id: str
    flow: FlowKind
    order_id: str
    channel: str | None
    key: str
    state: S
    done: list[str] = attrs.field(factory=list)
    #: What the running process knows but never persists.
    transient: Transient = attrs.field(factory=Transient)
    #: The fencing token this process owns the saga under: 0 for the process that began it, raised by
    #: every takeover (see _OWNED).
    epoch: int = 0
    #: Outside calls that took effect in the step now running (see OrderFlows.outside_call): a forward-only
    #: flow whose failing step had none, and that did nothing else yet, was refused rather than stuck.
    effects: int = 0

    def encoder(self, document: str, settled: Sequence[str]) -> SettledJson:
        """The run's encoder for one document it rewrites step after step (its state, an order's details):
        the part under ``settled`` is encoded once per run (see SettledJson)."""
        encoders = self.transient.encoders
        encoder = encoders.get(document)
        if encoder is None or encoder.settled != tuple(settled):
            encoder = encoders[document] = SettledJson(settled)
        return encoder

    def document(self) -> dict[str, Any]:
        """The state and the steps done, as the saga's row holds them."""
        document = state_document(self.state, self.transient.data)
        document["done"] = list(self.done)
        return document


class FaultInjector:
    """Stops a flow at a chosen point, before or after a step's side effect: for crash tests. It can also
    freeze a flow there (a stalled process: a pause, a slow gateway) until the test lets it go."""

    def __init__(self) -> None:
        self.points: set[tuple[str, str, str]] = set()
        self.holds: dict[tuple[str, str, str], tuple[threading.Event, threading.Event]] = {}

    def hold(self, flow: str, step: str, when: str) -> tuple[threading.Event, threading.Event]:
        """Freeze the next run that reaches ``flow.step`` (``when``: "before" or "after" its effect). Returns
        (reached, release): the run sets ``reached`` and waits until ``release`` is set."""
        pair = (threading.Event(), threading.Event())
        self.holds[(flow, step, when)] = pair
        return pair

    def arm(self, flow: str, step: str, when: str) -> None:
        """Crash ``flow`` at ``step`` — ``when`` is "before" (nothing done) or "after" (effect done,
        progress not yet committed)."""
        self.points.add((flow, step, when))

    def clear(self) -> None:
        self.points.clear()

    def check(self, flow: str, step: str, when: str) -> None:
        if self.holds:
            pair = self.holds.pop((flow, step, when), None)
            if pair is not None:
                pair[0].set()
                pair[1].wait()
        if self.points and (flow, step, when) in self.points:
            self.points.discard((flow, step, when))
            raise SimulatedCrash(f"injected crash {when} {flow}.{step}")


class SagaRunner:
    """Runs the steps of one flow, persisting progress, compensating on rejection or failure."""

    def __init__(
        self,
        stack: Runtime,
        flow: FlowKind,
        steps: Sequence[Step],
        faults: FaultInjector,
        *,
        forward_only: bool = False,
        settled: Sequence[str] = (),
        grouped: bool = False,
        before_progress: Action | None = None,
    ):
        self.stack = stack
        self.flow = flow
        self.steps = list(steps)
        self.faults = faults
        #: Forward-only flows (cancel, refund) are never undone: a failure leaves them for recovery.
        self.forward_only = forward_only
        #: State keys that no step changes once set (the cart's price, plan and reservation at checkout):
        #: encoded once per run, though every step writes the whole state.
        self.settled = tuple(settled)
        #: Whether steps that only write share the transaction of the step before them (see ``groups``).
        #: Only for flows whose every step that calls the outside world says so (``Step.outside``).
        self.grouped = grouped
        #: Called in each transaction of steps just before their progress is written: what the steps left
        #: for the end of the transaction (the order's row, changed by two steps, written once).
        self.before_progress = before_progress

    def context(self, uow: UnitOfWork, run: SagaRun[Any]) -> FlowContext:
        """The context of one step of ``run``: outside calls derive their keys from the saga's own id."""
        return self.stack.new_context(uow, run.channel, flow=self.flow, flow_id=run.order_id, key=run.id)

    def groups(self, start: int) -> list[list[Step]]:
        """The steps from ``start`` in the transactions they run in.

        Ungrouped, every step is a transaction of its own. Grouped, a step that only writes to the database
        joins the transaction of the step before it, and a new one begins at every step that calls the
        outside world: its call is made before its transaction takes any lock, and the steps after it record
        with it. A crash anywhere in a group rolls the whole group back, so it is as if none of its steps
        ran; the outside call at its head carries its key, so running the group again repeats no effect.
        """
        steps = self.steps[start:]
        if not self.grouped:
            return [[step] for step in steps]
        groups: list[list[Step]] = []
        for step in steps:
            if groups and not step.outside:
                groups[-1].append(step)
            else:
                groups.append([step])
        return groups

    def run_steps(self, run: SagaRun[Any], steps: Sequence[Step]) -> None:
        """Run ``steps`` in one transaction with their progress; on any failure none of them is done.

        On a failure the run's state goes back to what its stored progress says, as a crash at that point
        would leave it: what the steps learnt from the outside world rolled back with their transaction,
        and compensation learns it again under the same keys (a payment's status, a capture or a booking
        made again), never from memory the database does not hold.
        """
        done_before = len(run.done)
        state_before = run.state
        self.faults.check(self.flow, steps[0].name, "before")
        uow = UnitOfWork(self.stack.engine)
        ctx = self.context(uow, run)
        run.effects = 0
        try:
            for index, step in enumerate(steps):
                if index:
                    self.faults.check(self.flow, step.name, "before")
                step.action(run, ctx)
                self.faults.check(self.flow, step.name, "after")
                run.done.append(step.name)
            if self.before_progress is not None:
                self.before_progress(run, ctx)
            last = steps[-1]
            self._progress(
                ctx,
                run,
                [step.name for step in steps],
                StepMark.DONE,
                status=SagaStatus.COMPLETED if last.completes else None,
            )
            # Inside: writes deferred to the commit fail there, and then nothing of the steps is done.
            uow.commit()
        except BaseException:
            uow.rollback()
            del run.done[done_before:]
            run.state = state_before
            run.transient.order_write.clear()
            raise

    def run(self, run: SagaRun[Any], *, start: int = 0, recovering: bool = False) -> None:
        """Run steps from ``start``; on a rejection or failure undo what was done (or, in a forward-only
        flow, leave the flow stuck with the reason) and re-raise.

        A process that lost the flow to recovery stops at once, undoing nothing. When ``recovering``, a
        failure a later attempt may cure (a lock held by a stalled process, an unreachable database)
        leaves the flow running for the next recovery instead of undoing it.
        """
        # The run's units of work share one connection, in turn; it waits for the next run in between.
        with keeping_connection(self.stack.engine, self.stack.idle_connection):
            for group in self.groups(start):
                # The step whose effect a failure leaves unknown: the group's head, when it calls out (the
                # steps after it in the group only write, and rolled back with it).
                step = group[0]
                try:
                    self.run_steps(run, group)
                except FlowTakenOver:
                    raise
                except Exception as error:
                    if recovering and isinstance(error, TRANSIENT_FAILURES):
                        raise
                    if not run.done and not step.outside:
                        raise  # the opening step rolled back whole: nothing was recorded, nothing to undo
                    if not self.forward_only:
                        self.compensate(run, error, failed_step=step.name)
                    else:
                        self._stop_forward_flow(run, error, step)
                    raise

    def _stop_forward_flow(self, run: SagaRun[Any], error: Exception, step: Step) -> None:
        """A forward-only flow (cancel, refund) cannot be undone once money or stock moved. If nothing took
        effect yet — only the opening step, which records, is done, and the failing step made no outside
        call that went through — the opening step is undone and the flow is rejected, so its key replays
        the refusal. Otherwise the flow is stuck with the reason, unless a later attempt may cure it."""
        if not run.done:
            return  # the opening step refused: nothing was recorded
        opening = self.steps[0]
        untouched = run.done == [opening.name] and run.effects == 0
        if untouched and isinstance(error, BusinessRejection | InvalidInput):
            uow = UnitOfWork(self.stack.engine)
            ctx = self.context(uow, run)
            try:
                if opening.compensation is not None:
                    opening.compensation(run, ctx)
                run.done.remove(opening.name)
                self._progress(ctx, run, opening.name, StepMark.COMPENSATED, _reason(error), status=SagaStatus.REJECTED)
                self._set_error(ctx, run, _reason(error))
            except BaseException:
                uow.rollback()
                raise
            uow.commit()
            return
        if isinstance(error, TRANSIENT_FAILURES):
            return  # recovery retries once the lease runs out
        self._mark(run, SagaStatus.STUCK, f"{step.name}: {_reason(error)}")

    def compensate(self, run: SagaRun[Any], error: BaseException | None, *, failed_step: str | None) -> SagaStatus:
        """Undo, newest first, every step that is done — and the failed one, whose effect may be partial.

        A compensation that cannot finish now (a payment whose outcome the provider cannot tell yet) is
        left for recovery: the others still run and the saga stays RUNNING with a fresh lease. One that
        fails for a reason no retry cures leaves it STUCK, with the reason. Returns the saga's status:
        COMPENSATED when everything was undone.
        """
        names = list(run.done)
        by_name = {step.name: step for step in self.steps}
        if failed_step is not None and failed_step not in names and by_name[failed_step].outside:
            names.append(failed_step)
        reason = _reason(error)
        failure = run.state.failure if run.state.failure is not None else reason
        run.state = attrs.evolve(run.state, compensating=True, failure=failure)
        with UnitOfWork(self.stack.engine) as uow:
            self._fenced(uow.connection, run, state=run.document(), updated_at=self.stack.clock.now())
        unfinished: list[str] = []
        curable = True
        for name in reversed(names):
            step = by_name[name]
            if step.compensation is None:
                if name in run.done:
                    run.done.remove(name)
                continue
            self.faults.check(self.flow, f"undo-{name}", "before")
            uow = UnitOfWork(self.stack.engine)
            ctx = self.context(uow, run)
            try:
                step.compensation(run, ctx)
            except FlowTakenOver:
                uow.rollback()
                raise
            except (RetailBlocksError, Exception) as problem:
                uow.rollback()
                unfinished.append(f"{name}: {_reason(problem)}")
                curable = curable and isinstance(problem, TRANSIENT_FAILURES)
                if name not in run.done:
                    run.done.append(name)
                continue
            except BaseException:
                uow.rollback()
                raise
            if name in run.done:
                run.done.remove(name)
            self._progress(ctx, run, name, StepMark.COMPENSATED, detail=reason)
            uow.commit()
        # What a later attempt may finish (a provider that cannot tell yet) stays running for recovery;
        # what it cannot (a method no block answers, a block that refuses) is stuck, for an operator.
        status = SagaStatus.STUCK if not curable else SagaStatus.RUNNING if unfinished else SagaStatus.COMPENSATED
        with UnitOfWork(self.stack.engine) as uow:
            self._fenced(
                uow.connection,
                run,
                status=status,
                error="; ".join(unfinished) if unfinished else reason,
                state=run.document(),
                updated_at=self.stack.clock.now(),
                lease_until=self.stack.lease_clock.now() + self.stack.lease,
            )
        return status

    def _mark(self, run: SagaRun[Any], status: SagaStatus, reason: str | None) -> None:
        with UnitOfWork(self.stack.engine) as uow:
            self._fenced(uow.connection, run, status=status, error=reason, updated_at=self.stack.clock.now())

    def _set_error(self, ctx: FlowContext, run: SagaRun[Any], reason: str | None) -> None:
        self._fenced(ctx.db, run, error=reason)

    @staticmethod
    def _fenced(connection: sa.Connection, run: SagaRun[Any], **values: Any) -> None:
        """Update the saga's row if this process still owns it, else raise FlowTakenOver."""
        changed = connection.execute(
            sagas.update().where(sagas.c.id == run.id, sagas.c.attempts == run.epoch).values(**values)
        ).rowcount
        if changed != 1:
            raise lost(run)

    def _progress(
        self,
        ctx: FlowContext,
        run: SagaRun[Any],
        steps: str | Sequence[str],
        action: StepMark,
        detail: str | None = None,
        *,
        status: SagaStatus | None = None,
    ) -> None:
        """Log ``steps`` (one step's name, or the names of a group run in one transaction) and write the
        saga's state once, fenced by the epoch this process owns."""
        now = self.stack.clock.now()
        connection = ctx.db
        # Plain strings for the driver, whatever enum the step's name is.
        names = [str(steps)] if isinstance(steps, str) else [str(step) for step in steps]
        values: dict[str, Any] = {
            "saga_id": run.id,
            "epoch": run.epoch,
            "step": names[-1],
            "state": state_text(run, self.settled),
            "updated_at": now,
            "lease_until": self.stack.lease_clock.now() + self.stack.lease,
        }
        if connection.dialect.name == "postgresql":
            shape = (len(names), status is not None)
            statement = _LOGGED_PROGRESS.get(shape)
            if statement is None:
                statement = _LOGGED_PROGRESS.setdefault(shape, _logged_progress(*shape))
            logged = {f"logged_{index}": name for index, name in enumerate(names)}
            extra = {} if status is None else {"status": status.value}
            every = {**values, "action": str(action), "detail": detail, **logged, **extra}
            if run.transient.fenced_by is ctx.uow:
                # The transaction holds the row at this epoch: the write cannot miss, and leaves with the
                # commit instead of waiting for its row count.
                ctx.uow.defer(statement, every)
            elif statement.execute(connection, every) != 1:
                raise lost(run)
            return
        logged_rows = [
            {"saga_id": run.id, "step": name, "action": str(action), "detail": detail, "at": now} for name in names
        ]
        if len(logged_rows) == 1:
            _LOG_STEP.execute(connection, logged_rows[0])
        else:
            _LOG_STEP.execute_many(connection, logged_rows)
        if status is None:
            changed = _PROGRESS.execute(connection, values)
        else:
            changed = _PROGRESS_AND_STATUS.execute(connection, values, status=status.value)
        if changed != 1:
            raise lost(run)


def hold(connection: sa.Connection, run: SagaRun[Any]) -> None:
    """Lock the saga's row for the rest of the transaction, or raise FlowTakenOver if recovery took it.

    For a transaction that writes what a block recorded of an outside call before the step's own writes
    (see :meth:`~retailblocks.flows.api.OrderFlows.outside_call`). Recovery takes a flow over by updating
    this row, so while the transaction holds it, no compensation of the flow can run beside it: the
    compensation's locks (the stock, then the payment) cannot meet this transaction's in the other order.
    A flow already taken over stops here, before it writes anything. (SQLite runs one writer at a time:
    there is no lock to take, only the epoch to check.)
    """
    if _HOLD.scalar(connection, saga_id=run.id) != run.epoch:
        raise lost(run)
    run.transient.fenced_by = UNITS_BY_CONNECTION.get(connection)


def lost(run: SagaRun[Any]) -> FlowTakenOver:
    return FlowTakenOver(
        f"{run.flow} {run.id} of order {run.order_id} was taken over by recovery while this process held it "
        "past its lease; what this process was doing was undone. Ask again with the same key for the outcome."
    )


def numbered(key: str, number: int) -> str:
    """The idempotency key of the ``number``-th of several calls a step makes (shipments, one per way an
    order leaves): the first keeps the key a single call always had."""
    return key if number == 0 else f"{key}-{number}"


def insert_saga(
    connection: sa.Connection, run: SagaRun[Any], now: datetime, lease_until: datetime, settled: Sequence[str] = ()
) -> None:
    """The saga's row, running, with no step done, in the flow's first transaction. A second request
    for the same saga id fails here with SQLAlchemy's IntegrityError, before doing anything."""
    _INSERT_SAGA.execute(
        connection,
        id=run.id,
        flow=run.flow.value,
        order_id=run.order_id,
        status=SagaStatus.RUNNING.value,
        step=StepMark.START.value,
        state=state_text(run, settled, done=()),
        lease_until=lease_until,
        attempts=run.epoch,
        created_at=now,
    )
    run.transient.fenced_by = UNITS_BY_CONNECTION.get(connection)


def state_text(run: SagaRun[Any], settled: Sequence[str], done: Sequence[str] | None = None) -> str:
    """The saga's state as its row holds it (its fields and ``done``), as JSON text; the part under the
    ``settled`` keys is encoded once per run (see SettledJson)."""
    document = state_document(run.state, run.transient.data)
    document["done"] = run.done if done is None else done
    return run.encoder("state", settled).encode(document)


def _reason(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, BusinessRejection):
        return f"{error.cause}: {error}"
    return f"{type(error).__name__}: {error}"


def load_run(connection: sa.Connection, saga_id: str) -> SagaRun[Any] | None:
    row = _LOAD_RUN.first_mapping(connection, saga_id=saga_id)
    if row is None:
        return None
    document = row["state"]
    flow = FlowKind(row["flow"])
    return SagaRun(
        id=row["id"],
        flow=flow,
        order_id=row["order_id"],
        channel=document.get("channel"),
        key=document.get("key", ""),
        state=load_state(STATE_TYPES[flow], document),
        done=list(document.get("done", [])),
        epoch=int(row["attempts"]),
    )
