"""``/admin/orders``: find orders (filtered, a page at a time), read one, cancel it, refund some lines."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from retailblocks.http.admin._common import (
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    ApiDep,
    IdempotencyKey,
    decode_cursor,
    encode_cursor,
    next_link,
    scoped,
)
from retailblocks.http.admin.schemas import (
    AdminOrderOut,
    CancelIn,
    OrderPage,
    RefundIn,
    admin_order_out,
    order_summary,
    refund_lines,
)
from retailblocks.http.state import run_once
from retailblocks.manifest.api import ApiKey
from retailblocks.model import OrderStatus
from retailblocks.model.limits import MAX_ID_LENGTH, MAX_SLUG_LENGTH

router = APIRouter(prefix="/orders", tags=["admin: orders"])
Reader = Annotated[ApiKey, Depends(scoped("orders", "read"))]
Writer = Annotated[ApiKey, Depends(scoped("orders", "write"))]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such order"}}
_CURSOR = "orders"


@router.get("", response_model=OrderPage, responses=READ_PROBLEMS, summary="Orders, oldest first, a page at a time")
def list_orders(
    request: Request,
    caller: Reader,
    api: ApiDep,
    status: OrderStatus | None = None,
    channel: Annotated[str | None, Query(max_length=MAX_SLUG_LENGTH)] = None,
    member: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=400, description="from the previous page's next_cursor")] = None,
) -> OrderPage:
    found = api.stack.orders(
        status=status.value if status else None,
        channel=channel,
        member_id=member,
        limit=limit + 1,
        after=decode_cursor(_CURSOR, cursor),
    )
    page = found[:limit]
    following = encode_cursor(_CURSOR, page[-1].id) if len(found) > limit else None
    return OrderPage(
        data=[order_summary(order) for order in page],
        next_cursor=following,
        next=next_link(request, following) if following else None,
    )


@router.get("/{order_id}", response_model=AdminOrderOut, responses={**READ_PROBLEMS, **_NOT_FOUND}, summary="One order")
def read_order(order_id: str, caller: Reader, api: ApiDep) -> AdminOrderOut:
    return admin_order_out(api.stack.order(order_id))


@router.post(
    "/{order_id}/cancel",
    response_model=AdminOrderOut,
    responses={**WRITE_PROBLEMS, **_NOT_FOUND},
    summary="Cancel an order: stop delivery, restock, release coupons, reverse points, return the money",
)
async def cancel_order(
    request: Request, order_id: str, body: CancelIn, caller: Writer, api: ApiDep, idempotency_key: IdempotencyKey = None
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda key: admin_order_out(api.stack.cancel(order_id, key=key, reason=body.reason)),
    )


@router.post(
    "/{order_id}/refunds",
    response_model=AdminOrderOut,
    responses={**WRITE_PROBLEMS, **_NOT_FOUND},
    summary="Refund an order in full, or some units of some lines",
)
async def refund_order(
    request: Request, order_id: str, body: RefundIn, caller: Writer, api: ApiDep, idempotency_key: IdempotencyKey = None
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda key: admin_order_out(
            api.stack.refund(order_id, refund_lines(body), key=key, reason=body.reason, restock=body.restock)
        ),
    )
