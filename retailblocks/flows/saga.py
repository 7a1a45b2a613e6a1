"""A small saga engine: steps declared with their compensation, progress persisted in the same
transaction as each step's writes.

A step either only writes to the database (its writes and its progress record commit together, so it
happened or it did not), or first calls the outside world and then records what came back. Outside calls
carry idempotency keys derived from the saga, so repeating a step after a crash never repeats its effect;
compensations are idempotent for the same reason and are safe to run for a step whose effect is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.context import FlowContext
from retailblocks.errors import BusinessRejection, RetailBlocksError
from retailblocks.storage import UnitOfWork
from retailblocks.storage.json_text import JsonText, SettledJson
from retailblocks.storage.prepared import Prepared, PreparedQuery
from retailblocks.storage.tables import saga_log, sagas
from retailblocks.storage.unit_of_work import keeping_connection

if TYPE_CHECKING:
    from retailblocks.assembly.stack import Stack

#: How long a process owns a running saga before recovery may take it over.
LEASE = timedelta(minutes=2)

Action = Callable[["SagaRun", FlowContext], None]

# Every step of every flow writes its progress: two statements per step, seven steps per checkout. They
# are built once and sent straight to the driver (see retailblocks.storage.prepared).
_LOG_STEP = Prepared.insert(saga_log, "saga_id", "step", "action", "detail", "at")
_PROGRESS_VALUES: dict[str, Any] = {
    "step": sa.bindparam("step"),
    "state": sa.bindparam("state", type_=JsonText()),
    "updated_at": sa.bindparam("updated_at"),
    "lease_until": sa.bindparam("lease_until"),
}
_PROGRESS = Prepared(sagas.update().where(sagas.c.id == sa.bindparam("saga_id")).values(**_PROGRESS_VALUES))
# The last step's progress also closes the saga, in the same statement.
_PROGRESS_AND_STATUS = Prepared(
    sagas.update()
    .where(sagas.c.id == sa.bindparam("saga_id"))
    .values(status=sa.bindparam("status"), **_PROGRESS_VALUES)
)
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
class SagaRun:
    """A saga in progress: its id, the order it is about, and its JSON state (what later steps need)."""

    id: str
    flow: str
    order_id: str
    channel: str | None
    key: str
    state: dict[str, Any]
    done: list[str] = attrs.field(factory=list)
    #: What the running process knows but never persists (payment details such as card tokens).
    transient: dict[str, Any] = attrs.field(factory=dict)

    def encoder(self, document: str, settled: Sequence[str]) -> SettledJson:
        """The run's encoder for one document it rewrites step after step (its state, an order's details):
        the part under ``settled`` is encoded once per run (see SettledJson)."""
        key = f"{document}_encoder"
        encoder: SettledJson | None = self.transient.get(key)
        if encoder is None or encoder.settled != tuple(settled):
            encoder = self.transient[key] = SettledJson(settled)
        return encoder


class FaultInjector:
    """Stops a flow at a chosen point, before or after a step's side effect: for crash tests."""

    def __init__(self) -> None:
        self.points: set[tuple[str, str, str]] = set()

    def arm(self, flow: str, step: str, when: str) -> None:
        """Crash ``flow`` at ``step`` — ``when`` is "before" (nothing done) or "after" (effect done,
        progress not yet committed)."""
        self.points.add((flow, step, when))

    def clear(self) -> None:
        self.points.clear()

    def check(self, flow: str, step: str, when: str) -> None:
        if self.points and (flow, step, when) in self.points:
            self.points.discard((flow, step, when))
            raise SimulatedCrash(f"injected crash {when} {flow}.{step}")


class SagaRunner:
    """Runs the steps of one flow, persisting progress, compensating on rejection or failure."""

    def __init__(
        self,
        stack: Stack,
        flow: str,
        steps: Sequence[Step],
        faults: FaultInjector,
        *,
        forward_only: bool = False,
        settled: Sequence[str] = (),
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

    def run_step(self, run: SagaRun, step: Step) -> None:
        self.faults.check(self.flow, step.name, "before")
        uow = UnitOfWork(self.stack.engine)
        ctx = self.stack.new_context(uow, run.channel, flow=self.flow, flow_id=run.order_id, key=run.key)
        try:
            step.action(run, ctx)
            self.faults.check(self.flow, step.name, "after")
            run.done.append(step.name)
            self._progress(ctx, run, step.name, "done", status="completed" if step.completes else None)
        except BaseException:
            uow.rollback()
            raise
        uow.commit()

    def run(self, run: SagaRun, *, start: int = 0) -> None:
        """Run steps from ``start``; on a rejection or failure compensate what was done and re-raise."""
        # The run's units of work share one connection, in turn; it waits for the next run in between.
        with keeping_connection(self.stack.engine, self.stack.idle_connection):
            for step in self.steps[start:]:
                try:
                    self.run_step(run, step)
                except Exception as error:
                    if not self.forward_only:
                        self.compensate(run, error, failed_step=step.name)
                    elif isinstance(error, BusinessRejection) and run.done:
                        self._mark(run, "stuck", _reason(error))
                    raise

    def compensate(self, run: SagaRun, error: BaseException | None, *, failed_step: str | None) -> bool:
        """Undo, newest first, every step that is done — and the failed one, whose effect may be partial.

        A compensation that cannot finish now (a payment whose outcome the provider cannot tell yet) is
        left for recovery: the others still run, the saga stays running with a fresh lease, and the
        method returns False. Returns True when everything was undone.
        """
        names = list(run.done)
        by_name = {step.name: step for step in self.steps}
        if failed_step is not None and failed_step not in names and by_name[failed_step].outside:
            names.append(failed_step)
        reason = _reason(error)
        run.state["compensating"] = True
        if reason is not None:
            run.state.setdefault("failure", reason)
        with UnitOfWork(self.stack.engine) as uow:
            uow.connection.execute(
                sagas.update()
                .where(sagas.c.id == run.id)
                .values(state={**run.state, "done": run.done}, updated_at=self.stack.clock.now())
            )
        unfinished: list[str] = []
        for name in reversed(names):
            step = by_name[name]
            if step.compensation is None:
                if name in run.done:
                    run.done.remove(name)
                continue
            self.faults.check(self.flow, f"undo-{name}", "before")
            uow = UnitOfWork(self.stack.engine)
            ctx = self.stack.new_context(uow, run.channel, flow=self.flow, flow_id=run.order_id, key=run.key)
            try:
                step.compensation(run, ctx)
            except (RetailBlocksError, Exception) as problem:
                uow.rollback()
                unfinished.append(f"{name}: {_reason(problem)}")
                if name not in run.done:
                    run.done.append(name)
                continue
            except BaseException:
                uow.rollback()
                raise
            if name in run.done:
                run.done.remove(name)
            self._progress(ctx, run, name, "compensated", detail=reason)
            uow.commit()
        status = "running" if unfinished else "compensated"
        now = self.stack.clock.now()
        with UnitOfWork(self.stack.engine) as uow:
            uow.connection.execute(
                sagas.update()
                .where(sagas.c.id == run.id)
                .values(
                    status=status,
                    error="; ".join(unfinished) if unfinished else reason,
                    state={**run.state, "done": run.done},
                    updated_at=now,
                    lease_until=now + LEASE,
                )
            )
        return not unfinished

    def _mark(self, run: SagaRun, status: str, reason: str | None) -> None:
        with UnitOfWork(self.stack.engine) as uow:
            uow.connection.execute(
                sagas.update()
                .where(sagas.c.id == run.id)
                .values(status=status, error=reason, updated_at=self.stack.clock.now())
            )

    def _progress(
        self,
        ctx: FlowContext,
        run: SagaRun,
        step: str,
        action: str,
        detail: str | None = None,
        *,
        status: str | None = None,
    ) -> None:
        now = self.stack.clock.now()
        connection = ctx.db
        _LOG_STEP.execute(connection, saga_id=run.id, step=step, action=action, detail=detail, at=now)
        values = {
            "saga_id": run.id,
            "step": step,
            "state": state_text(run, self.settled),
            "updated_at": now,
            "lease_until": now + LEASE,
        }
        if status is None:
            _PROGRESS.execute(connection, values)
        else:
            _PROGRESS_AND_STATUS.execute(connection, values, status=status)


def insert_saga(connection: sa.Connection, run: SagaRun, now: datetime, settled: Sequence[str] = ()) -> None:
    """The saga's row, running, with no step done, in the flow's first transaction. A second request
    for the same saga id fails here with SQLAlchemy's IntegrityError, before doing anything."""
    _INSERT_SAGA.execute(
        connection,
        id=run.id,
        flow=run.flow,
        order_id=run.order_id,
        status="running",
        step="start",
        state=state_text(run, settled, done=()),
        lease_until=now + LEASE,
        attempts=0,
        created_at=now,
    )


def state_text(run: SagaRun, settled: Sequence[str], done: Sequence[str] | None = None) -> str:
    """The saga's state as its row holds it (``{**run.state, "done": ...}``), as JSON text; the part
    under the ``settled`` keys is encoded once per run (see SettledJson)."""
    return run.encoder("state", settled).encode({**run.state, "done": run.done if done is None else done})


def _reason(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, BusinessRejection):
        return f"{error.cause}: {error}"
    return f"{type(error).__name__}: {error}"


def load_run(connection: sa.Connection, saga_id: str) -> SagaRun | None:
    row = _LOAD_RUN.first_mapping(connection, saga_id=saga_id)
    if row is None:
        return None
    state = dict(row["state"])
    done = list(state.pop("done", []))
    return SagaRun(
        id=row["id"],
        flow=row["flow"],
        order_id=row["order_id"],
        channel=state.get("channel"),
        key=state.get("key", ""),
        state=state,
        done=done,
    )
