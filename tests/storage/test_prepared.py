"""Prepared statements do exactly what the same SQLAlchemy statement does, inside the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from retailblocks.storage import UnitOfWork, create_engine
from retailblocks.storage.prepared import Prepared

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.String(20), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
INSERT = Prepared(things.insert())
TAKE = Prepared(
    things.update()
    .where(things.c.id == sa.bindparam("thing"), things.c.count >= sa.bindparam("n"))
    .values(count=things.c.count - sa.bindparam("n"))
)


def test_prepared_statements_convert_types_and_report_rowcounts(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    moment = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        INSERT.execute(uow.connection, id="a", count=3, data={"k": [1, 2]}, at=moment)
        INSERT.execute_many(uow.connection, [{"id": "b", "count": 1, "data": {}, "at": moment}])
        assert TAKE.execute(uow.connection, thing="a", n=2) == 1
        assert TAKE.execute(uow.connection, thing="a", n=2) == 0  # conditional: only 1 left
    with engine.connect() as connection:
        rows = {row.id: row for row in connection.execute(sa.select(things))}
    assert rows["a"].count == 1 and rows["a"].data == {"k": [1, 2]}
    assert rows["a"].at.replace(tzinfo=UTC) == moment and rows["b"].count == 1
    uow = UnitOfWork(engine)
    TAKE.execute(uow.connection, thing="b", n=1)
    uow.rollback()  # the raw statement was part of the transaction: rolled back with it
    with engine.connect() as connection:
        assert connection.execute(sa.select(things.c.count).where(things.c.id == "b")).scalar() == 1
    engine.dispose()


def test_listeners_see_prepared_statements_as_they_see_any_other(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: seen.append(sql))
    with UnitOfWork(engine) as uow:
        INSERT.execute(uow.connection, id="c", count=1, data={}, at=datetime(2026, 1, 1, tzinfo=UTC))
    assert any("INSERT INTO things" in sql for sql in seen)
    engine.dispose()


def test_a_violated_constraint_raises_sqlalchemys_error_type(database_url: str) -> None:
    import pytest

    engine = create_engine(database_url)
    metadata.create_all(engine)
    uow = UnitOfWork(engine)
    INSERT.execute(uow.connection, id="d", count=1, data={}, at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(sa.exc.IntegrityError):
        INSERT.execute(uow.connection, id="d", count=1, data={}, at=datetime(2026, 1, 1, tzinfo=UTC))
    uow.rollback()
    engine.dispose()
