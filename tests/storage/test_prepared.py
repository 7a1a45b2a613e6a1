"""Prepared statements do exactly what the same SQLAlchemy statement does, inside the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from retailblocks.storage import UnitOfWork, create_engine
from retailblocks.storage.prepared import Prepared, PreparedQuery

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


def test_prepared_statements_store_exactly_what_sqlalchemy_stores(database_url: str) -> None:
    # Compared as the database holds them (text on SQLite), not as they read back: values in two formats
    # in one column would read back alike yet compare and sort wrongly in SQL.
    engine = create_engine(database_url)
    metadata.create_all(engine)
    moments = [datetime(2026, 3, 2, 9, 30, tzinfo=UTC), datetime(2026, 3, 2, 9, 30, 0, 250000, tzinfo=UTC)]
    with UnitOfWork(engine) as uow:
        for n, moment in enumerate(moments):
            INSERT.execute(uow.connection, id=f"p{n}", count=n, data={"n": n}, at=moment)
            uow.connection.execute(things.insert().values(id=f"s{n}", count=n, data={"n": n}, at=moment))
    raw = sa.select(things.c.id, sa.cast(things.c.at, sa.String).label("at"), sa.cast(things.c.data, sa.String))
    with engine.connect() as connection:
        stored = {row[0]: tuple(row[1:]) for row in connection.execute(raw)}
    for n in range(len(moments)):
        assert stored[f"p{n}"] == stored[f"s{n}"]
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
    engine = create_engine(database_url)
    metadata.create_all(engine)
    uow = UnitOfWork(engine)
    INSERT.execute(uow.connection, id="d", count=1, data={}, at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(sa.exc.IntegrityError):
        INSERT.execute(uow.connection, id="d", count=1, data={}, at=datetime(2026, 1, 1, tzinfo=UTC))
    uow.rollback()
    engine.dispose()


typed = sa.Table(
    "typed_things",
    metadata,
    sa.Column("id", sa.String(20), primary_key=True),
    sa.Column("name", sa.String(40), nullable=True),
    sa.Column("count", sa.Integer, nullable=True),
    sa.Column("big", sa.BigInteger, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("data", sa.JSON, nullable=True),
)
_BY_ID = typed.c.id == sa.bindparam("thing")
_QUERIES = {
    "every row": sa.select(typed).order_by(typed.c.id),
    "one row": sa.select(typed).where(_BY_ID),
    "for update": sa.select(typed).where(_BY_ID).with_for_update(),
    "limited": sa.select(typed.c.id, typed.c.flag).order_by(typed.c.id.desc()).limit(2),
    "literal": sa.select(typed.c.id).where(typed.c.count > 5).order_by(typed.c.id),
    "computed": sa.select(sa.func.count().label("n"), sa.func.max(typed.c.big).label("top")).where(
        typed.c.flag.is_(True)
    ),
    "no row": sa.select(typed).where(typed.c.id == "missing"),
}
_RETURNING = PreparedQuery(
    typed.insert()
    .values({name: sa.bindparam(name) for name in ("id", "flag", "at", "data")})
    .returning(typed.c.id, typed.c.flag, typed.c.at, typed.c.data)
)


def test_prepared_queries_return_what_sqlalchemy_returns_for_every_type(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    moment = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
    values = [
        {"id": "a", "name": "Ä-name", "count": 7, "big": 2**40, "flag": True, "at": moment, "data": {"k": [1, 2.5]}},
        {"id": "b", "name": "", "count": 0, "big": -1, "flag": False, "at": moment, "data": ["x", None, True]},
        {"id": "c", "name": None, "count": None, "big": None, "flag": None, "at": None, "data": None},
        {"id": "d", "name": "d", "count": 9, "big": 3, "flag": True, "at": moment, "data": "text"},
    ]
    with UnitOfWork(engine) as uow:
        uow.connection.execute(typed.insert(), values)
        for label, statement in _QUERIES.items():
            query = PreparedQuery(statement)
            parameters = {"thing": "a"} if "thing" in str(statement) else {}
            expected = [tuple(row) for row in uow.connection.execute(statement, parameters)]
            got = query.all(uow.connection, parameters)
            assert [tuple(row) for row in got] == expected, label
            for row, expected_row in zip(got, expected, strict=True):
                assert [type(v) for v in row] == [type(v) for v in expected_row], label
            assert query.first(uow.connection, parameters) == (expected[0] if expected else None), label
            assert query.scalar(uow.connection, parameters) == (expected[0][0] if expected else None), label
            assert query.scalars(uow.connection, parameters) == [row[0] for row in expected], label
            mappings = [dict(row) for row in uow.connection.execute(statement, parameters).mappings()]
            assert query.mappings(uow.connection, parameters) == mappings, label
            assert query.first_mapping(uow.connection, parameters) == (mappings[0] if mappings else None), label
        row = PreparedQuery(_QUERIES["one row"]).first(uow.connection, thing="a")
        assert row.flag is True and row.big == 2**40 and row.data == {"k": [1, 2.5]} and row.name == "Ä-name"
        assert row.at.replace(tzinfo=UTC) == moment
        inserted = _RETURNING.first(uow.connection, id="e", flag=False, at=moment, data={"z": 1})
        stored = sa.select(typed.c.id, typed.c.flag, typed.c.at, typed.c.data).where(typed.c.id == "e")
        assert tuple(inserted) == tuple(uow.connection.execute(stored).one())
        assert inserted.flag is False and inserted.data == {"z": 1}
    engine.dispose()


def test_prepared_queries_are_seen_by_listeners_and_raise_sqlalchemys_errors(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: seen.append(sql))
    uow = UnitOfWork(engine)
    PreparedQuery(_QUERIES["every row"]).all(uow.connection)
    assert any("FROM typed_things" in sql for sql in seen)
    with pytest.raises(sa.exc.ProgrammingError if "postgresql" in database_url else sa.exc.OperationalError):
        PreparedQuery(sa.select(sa.column("nope")).select_from(sa.table("no_such_table"))).all(uow.connection)
    uow.rollback()
    engine.dispose()


_IN_IDS = sa.bindparam("ids", expanding=True)
_EXPANDING = {
    "in": sa.select(typed.c.id, typed.c.at).where(typed.c.id.in_(_IN_IDS)).order_by(typed.c.id),
    "not in": sa.select(typed.c.id).where(typed.c.id.not_in(_IN_IDS)).order_by(typed.c.id),
    "in and more": sa.select(typed.c.id)
    .where(typed.c.id.in_(_IN_IDS), typed.c.count >= sa.bindparam("least"))
    .order_by(typed.c.id),
    "tuples": sa.select(typed.c.id)
    .where(sa.tuple_(typed.c.id, typed.c.count).in_(sa.bindparam("pairs", expanding=True)))
    .order_by(typed.c.id),
    "datetimes": sa.select(typed.c.id).where(typed.c.at.in_(sa.bindparam("moments", expanding=True))),
    "literal list": sa.select(typed.c.id).where(typed.c.id.in_(["a", "c"])).order_by(typed.c.id),
}


def test_expanding_in_parameters_give_what_sqlalchemy_gives_for_every_list_length(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    moment = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
    rows = [{"id": name, "count": n, "at": moment.replace(minute=n)} for n, name in enumerate("abcde")]
    with UnitOfWork(engine) as uow:
        uow.connection.execute(typed.insert(), rows)
        queries = {label: PreparedQuery(statement) for label, statement in _EXPANDING.items()}
        cases = [("in", {"ids": ids}) for ids in ([], ["a"], ["c", "a", "zz"], ["a", "b", "c", "d", "e"], ("b",))] + [
            ("not in", {"ids": []}),
            ("not in", {"ids": ["a", "e"]}),
            ("in and more", {"ids": ["a", "b", "c"], "least": 1}),
            ("tuples", {"pairs": [("a", 0), ("b", 5), ("c", 2)]}),
            ("tuples", {"pairs": []}),
            ("datetimes", {"moments": [moment.replace(minute=1), moment.replace(minute=3)]}),
            ("literal list", {}),
            ("in", {"ids": ["b", "d"]}),  # a length seen before: the kept expansion, new values
        ]
        for label, parameters in cases:
            expected = [tuple(row) for row in uow.connection.execute(_EXPANDING[label], parameters)]
            got = [tuple(row) for row in queries[label].all(uow.connection, parameters)]
            assert sorted(got) == sorted(expected), (label, parameters)
        assert queries["in"].scalars(uow.connection, ids=["e", "a"]) == ["a", "e"]
        bump = Prepared(typed.update().where(typed.c.id.in_(_IN_IDS)).values(count=typed.c.count + 10))
        assert bump.execute(uow.connection, ids=["a", "b", "nope"]) == 2
        assert bump.execute(uow.connection, ids=[]) == 0
        counts = {row.id: row.count for row in uow.connection.execute(sa.select(typed.c.id, typed.c.count))}
        assert counts == {"a": 10, "b": 11, "c": 2, "d": 3, "e": 4}
        with pytest.raises(ValueError, match="expanding parameter 'ids'"):
            queries["in"].all(uow.connection)
        with pytest.raises(ValueError, match="execute_many"):
            bump.execute_many(uow.connection, [{"ids": ["a"]}])
    engine.dispose()


_MOMENTS = (
    st.datetimes(timezones=st.none() | st.just(UTC) | st.timezones())
    | st.dates()
    | st.datetimes().map(lambda moment: moment.replace(microsecond=0))
)


@given(st.lists(_MOMENTS | st.sampled_from([datetime(2026, 3, 2, 9, tzinfo=UTC)]), min_size=1, max_size=80))
def test_the_fast_sqlite_datetime_writer_writes_what_sqlalchemy_writes(values: list[Any]) -> None:
    # One writer for the whole list, each value written twice: texts it keeps must still be right,
    # across more moments than it keeps at a time.
    from sqlalchemy.dialects import sqlite

    from retailblocks.storage.prepared import _sqlite_datetime_writer

    dialect = sqlite.dialect()
    general = sa.DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    assert general is not None
    write = _sqlite_datetime_writer(general)
    for value in values:
        assert write(value) == general(value)
        assert write(value) == general(value)


def test_prepared_statements_follow_the_driver_connection_when_it_is_replaced(database_url: str) -> None:
    # The driver cursor is kept per driver connection: a connection invalidated (a lost server, a broken
    # socket) comes back with a new driver connection, and statements must run on a cursor of that one.
    engine = create_engine(database_url)
    metadata.create_all(engine)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.connect() as connection:
        INSERT.execute(connection, id="r1", count=1, data={}, at=moment)
        connection.commit()
        before = connection.connection.dbapi_connection
        connection.invalidate()
        connection.rollback()
        INSERT.execute(connection, id="r2", count=2, data={}, at=moment)
        assert connection.connection.dbapi_connection is not before
        assert PreparedQuery(sa.select(things.c.id).where(things.c.id.like("r%"))).scalars(connection) == ["r1", "r2"]
        connection.commit()
    engine.dispose()


def test_a_prepared_statement_on_a_fresh_connection_begins_its_transaction(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata.create_all(engine)
    with engine.connect() as connection:
        INSERT.execute(connection, id="t1", count=1, data={}, at=datetime(2026, 1, 1, tzinfo=UTC))
        assert connection.in_transaction()
        connection.rollback()  # as for any statement: nothing stays without a commit
        assert PreparedQuery(sa.select(things.c.id).where(things.c.id == "t1")).first(connection) is None
        connection.rollback()
    engine.dispose()


def test_the_written_parameter_list_reads_names_defaults_and_processors_as_the_loop_did() -> None:
    from retailblocks.storage.prepared import _list_maker

    names = ["id", "it's", 'say "hi"', "at", "limit_1", "at"]
    processors = {"at": lambda value: f"<{value}>", 'say "hi"': str.upper}
    make = _list_maker(names, processors, {"limit_1": 2})
    values = {"id": 7, "it's": None, 'say "hi"': "hello", "at": "noon"}
    assert make(values) == [7, None, "HELLO", "<noon>", 2, "<noon>"]
    assert make({**values, "at": None, "limit_1": 5}) == [7, None, "HELLO", None, 5, None]
    with pytest.raises(KeyError):
        make({"id": 7})  # a value with no default is required, as before
