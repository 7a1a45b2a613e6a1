"""Reading and writing orders in the core's tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from retailblocks.errors import UnknownOrder
from retailblocks.model import (
    Fulfilment,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    PaymentAuthorization,
    PriceAdjustment,
    Shipment,
)
from retailblocks.model.serialize import from_data
from retailblocks.storage.tables import order_lines, orders


def load_order(connection: sa.Connection, order_id: str, *, for_update: bool = False) -> Order:
    query = sa.select(orders).where(orders.c.id == order_id)
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    if row is None:
        raise UnknownOrder(f"no order {order_id!r}")
    lines = (
        connection.execute(
            sa.select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.line_index)
        )
        .mappings()
        .all()
    )
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
        created_at=row["created_at"],
        member_id=row["member_id"],
        fulfilment=from_data(fulfilment, Fulfilment) if fulfilment else None,
        adjustments=tuple(from_data(a, PriceAdjustment) for a in details.get("adjustments", [])),
        payments=tuple(from_data(p, PaymentAuthorization) for p in details.get("authorizations", {}).values()),
        shipments=tuple(from_data(s, Shipment) for s in details.get("shipments", [])),
        refunded=money(row["refunded"]),
        attribution=row["attribution"],
        failure=row["failure"],
    )


def update_order(connection: sa.Connection, order_id: str, **values: Any) -> None:
    connection.execute(orders.update().where(orders.c.id == order_id).values(**values))


def order_details(connection: sa.Connection, order_id: str) -> dict[str, Any]:
    details = connection.execute(sa.select(orders.c.details).where(orders.c.id == order_id)).scalar()
    if details is None:
        raise UnknownOrder(f"no order {order_id!r}")
    return dict(details)
