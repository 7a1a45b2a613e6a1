"""A block's connections apart from the step's transaction, through the public FlowContext API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.clock import ManualClock, RandomIds
from retailblocks.context import FlowContext, OutsideWriteWouldWait
from retailblocks.model import Merchant
from retailblocks.storage import UnitOfWork, create_engine

notes = sa.Table("apart_notes", sa.MetaData(), sa.Column("key", sa.String(40), primary_key=True))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'apart.db'}")
    notes.metadata.create_all(engine)
    yield engine
    engine.dispose()


def context(uow: UnitOfWork) -> FlowContext:
    merchant = Merchant(id="lucky", name="Lucky", currency="CNY")
    return FlowContext(merchant, None, ManualClock(), RandomIds(seed=1), uow, current_block="my-block")


def keys(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(sa.select(notes.c.key)))


def test_a_write_apart_outlives_the_step_that_rolls_back(engine: sa.Engine) -> None:
    uow = UnitOfWork(engine)
    ctx = context(uow)
    with ctx.outside_connection() as connection:
        connection.execute(notes.insert().values(key="attempt-1"))
    assert not ctx.step_started
    ctx.db.execute(notes.insert().values(key="step-1"))
    assert ctx.step_started
    uow.rollback()  # the step fails after the gateway answered
    assert keys(engine) == ["attempt-1"]


def test_a_write_apart_that_raises_is_rolled_back(engine: sa.Engine) -> None:
    with UnitOfWork(engine) as uow:
        ctx = context(uow)
        apart = ctx.outside_connection()
        connection = apart.__enter__()
        connection.execute(notes.insert().values(key="half"))
        failure = ValueError("half-way")
        assert not apart.__exit__(ValueError, failure, None)  # the error goes on; the write is undone
    assert keys(engine) == []


def test_reading_apart_sees_committed_rows_without_beginning_the_step(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(notes.insert().values(key="committed"))
    with UnitOfWork(engine) as uow:
        ctx = context(uow)
        with ctx.read_only_connection() as connection:
            assert list(connection.scalars(sa.select(notes.c.key))) == ["committed"]
        assert not ctx.step_started


def test_on_sqlite_writing_apart_after_the_step_began_is_refused_by_name(engine: sa.Engine) -> None:
    with UnitOfWork(engine) as uow:
        ctx = context(uow)
        ctx.db.execute(sa.select(1))
        with pytest.raises(OutsideWriteWouldWait, match="my-block must be called before the step writes"):
            ctx.outside_engine()
        with pytest.raises(OutsideWriteWouldWait), ctx.outside_connection():
            pass  # pragma: no cover - refused before the block runs
        assert ctx.outside_engine(writes=False) is engine
        with ctx.read_only_connection() as connection:  # reading apart never waits in WAL mode
            assert connection.scalar(sa.select(sa.func.count()).select_from(notes)) == 0
