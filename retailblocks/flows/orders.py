"""Reading and writing orders in the core's tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.errors import UnknownOrder
from retailblocks.model import (
    Fulfilment,
    FulfilmentGroup,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    PaymentAuthorization,
    PriceAdjustment,
    Shipment,
)
from retailblocks.model.serialize import from_data
from retailblocks.storage.json_text import JsonText, dumps
from retailblocks.storage.prepared import Prepared, PreparedQuery
from retailblocks.storage.tables import order_lines, orders

# Reads built once, compiled once per dialect and sent straight to the driver (see
# retailblocks.storage.prepared).
_ORDER_SELECT = sa.select(orders).where(orders.c.id == sa.bindparam("order_id"))
_ORDER = PreparedQuery(_ORDER_SELECT)
_ORDER_FOR_UPDATE = PreparedQuery(_ORDER_SELECT.with_for_update())
_LINES = PreparedQuery(
    sa.select(order_lines).where(order_lines.c.order_id == sa.bindparam("order_id")).order_by(order_lines.c.line_index)
)
_DETAILS = PreparedQuery(sa.select(orders.c.details).where(orders.c.id == sa.bindparam("order_id")))

# The writes every checkout makes to its order (status and details change step by step): built once and
# sent straight to the driver (see retailblocks.storage.prepared).
_BY_ID = orders.c.id == sa.bindparam("order_id")
_SET_STATUS = Prepared(
    orders.update().where(_BY_ID).values(status=sa.bindparam("status"), updated_at=sa.bindparam("updated_at"))
)
# Details are handed over as JSON text (see set_order).
_DETAILS_TEXT = sa.bindparam("details", type_=JsonText())
_SET_DETAILS = Prepared(
    orders.update().where(_BY_ID).values(details=_DETAILS_TEXT, updated_at=sa.bindparam("updated_at"))
)
_SET_STATUS_AND_DETAILS = Prepared(
    orders.update()
    .where(_BY_ID)
    .values(status=sa.bindparam("status"), details=_DETAILS_TEXT, updated_at=sa.bindparam("updated_at"))
)


def load_order(connection: sa.Connection, order_id: str, *, for_update: bool = False) -> Order:
    parameters = {"order_id": order_id}
    row = (_ORDER_FOR_UPDATE if for_update else _ORDER).first_mapping(connection, parameters)
    if row is None:
        raise UnknownOrder(f"no order {order_id!r}")
    lines = _LINES.mappings(connection, parameters)
    return order_from_rows(row, lines)


def order_from_rows(row: Any, lines: Sequence[Any]) -> Order:
    currency = row["currency"]
    details = row["details"] or {}

    def money(amount: int) -> Money:
        return Money(int(amount), currency)

    fulfilment = details.get("fulfilment")
    return Order(
        id=row["id"],
        channel=row["channel"],
        status=OrderStatus(row["status"]),
        currency=currency,
        lines=tuple(
            OrderLine(
                index=line["line_index"],
                sku=line["sku"],
                quantity=line["quantity"],
                unit_price=money(line["unit_price"]),
                discount=money(line["discount"]),
                refunded_quantity=line["refunded_quantity"],
            )
            for line in lines
        ),
        subtotal=money(row["subtotal"]),
        discount=money(row["discount"]),
        shipping=money(row["shipping"]),
        total=money(row["total"]),
        created_at=as_utc(row["created_at"]),
        member_id=row["member_id"],
        fulfilment=from_data(fulfilment, Fulfilment) if fulfilment else None,
        adjustments=tuple(from_data(a, PriceAdjustment) for a in details.get("adjustments", [])),
        payments=tuple(from_data(p, PaymentAuthorization) for p in details.get("authorizations", {}).values()),
        shipments=tuple(from_data(s, Shipment) for s in details.get("shipments", [])),
        groups=_groups(details["groups"]) if "groups" in details else (),
        refunded=money(row["refunded"]),
        attribution=row["attribution"],
        failure=row["failure"],
    )


def _groups(data: Sequence[Any] | None) -> tuple[FulfilmentGroup, ...]:
    return tuple(from_data(group, FulfilmentGroup) for group in data or ())


def update_order(connection: sa.Connection, order_id: str, **values: Any) -> None:
    """Any change to an order; the flows' frequent ones go through :func:`set_order`."""
    connection.execute(orders.update().where(orders.c.id == order_id).values(**values))


def set_order(
    connection: sa.Connection,
    order_id: str,
    *,
    updated_at: Any,
    status: OrderStatus | None = None,
    details: Mapping[str, Any] | str | None = None,
) -> None:
    """Set an order's status, its details, or both (in one statement).

    ``details`` is the whole document, as a mapping or as JSON text already encoded (a flow that
    rewrites it step after step encodes its settled part once, see ``SettledJson``).
    """
    statement, values = order_write(order_id, updated_at=updated_at, status=status, details=details)
    statement.execute(connection, values)


def order_write(
    order_id: str,
    *,
    updated_at: Any,
    status: OrderStatus | None = None,
    details: Mapping[str, Any] | str | None = None,
) -> tuple[Prepared, dict[str, Any]]:
    """The statement :func:`set_order` runs, with its values: for a unit of work to run later
    (:meth:`~retailblocks.storage.UnitOfWork.defer`)."""
    if details is not None and not isinstance(details, str):
        details = dumps(details)
    # The driver is handed plain strings.
    value = None if status is None else str(status)
    if details is None:
        assert status is not None, "set_order needs a status, details, or both"
        return _SET_STATUS, {"order_id": order_id, "status": value, "updated_at": updated_at}
    if status is None:
        return _SET_DETAILS, {"order_id": order_id, "details": details, "updated_at": updated_at}
    both = {"order_id": order_id, "status": value, "details": details, "updated_at": updated_at}
    return _SET_STATUS_AND_DETAILS, both


def order_details(connection: sa.Connection, order_id: str) -> dict[str, Any]:
    details = _DETAILS.scalar(connection, order_id=order_id)
    if details is None:
        raise UnknownOrder(f"no order {order_id!r}")
    return dict(details)


def list_orders(
    engine: sa.Engine,
    *,
    status: str | None = None,
    channel: str | None = None,
    member_id: str | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> list[Order]:
    """The stored orders, oldest first, filtered by what is given; each as checkout recorded it.

    ``after`` is an order id: only orders after it in that order are listed, so pages read one after the
    other neither skip nor repeat an order, whatever is placed meanwhile (keyset pagination on
    ``(created_at, id)``; an order placed meanwhile is listed if it sorts after the page, else in no page).
    UnknownOrder if ``after`` names no order.
    """
    query = sa.select(orders).order_by(orders.c.created_at, orders.c.id)
    if after is not None:
        # The mark is read in the same statement as the page, so its stored value is compared as stored.
        mark = sa.select(orders.c.created_at).where(orders.c.id == after).scalar_subquery()
        with engine.connect() as connection:
            connection.info["read_only"] = True
            known = connection.execute(sa.select(orders.c.id).where(orders.c.id == after)).first()
            connection.rollback()
        if known is None:
            raise UnknownOrder(f"no order {after!r} to list orders after")
        query = query.where(
            sa.or_(orders.c.created_at > mark, sa.and_(orders.c.created_at == mark, orders.c.id > after))
        )
    if status is not None:
        query = query.where(orders.c.status == status)
    if channel is not None:
        query = query.where(orders.c.channel == channel)
    if member_id is not None:
        query = query.where(orders.c.member_id == member_id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
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
