"""``/admin/stock``: levels and the movement ledger; goods received, corrections and counts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from retailblocks.http.admin._common import READ_PROBLEMS, WRITE_PROBLEMS, ApiDep, IdempotencyKey, scoped
from retailblocks.http.admin.schemas import (
    AdjustmentIn,
    CountIn,
    Movements,
    ReceiptIn,
    StockChangeOut,
    StockLevels,
    movement_out,
    stock_change_out,
    stock_level_out,
)
from retailblocks.http.state import run_once
from retailblocks.manifest.api import ApiKey

router = APIRouter(prefix="/stock", tags=["admin: stock"])
Reader = Annotated[ApiKey, Depends(scoped("stock", "read"))]
Writer = Annotated[ApiKey, Depends(scoped("stock", "write"))]
Skus = Annotated[list[str], Query(max_length=200, description="only these SKUs (repeat); all when absent")]
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "an unknown SKU or location"}}


@router.get(
    "/levels",
    response_model=StockLevels,
    responses=READ_PROBLEMS,
    summary="Stock per SKU and location: on hand, reserved, allocated, available",
)
def levels(caller: Reader, api: ApiDep, sku: Skus = []) -> StockLevels:  # noqa: B006 - FastAPI copies it
    return StockLevels(data=[stock_level_out(level) for level in api.stack.stock_levels(sku)])


@router.get(
    "/movements",
    response_model=Movements,
    responses=READ_PROBLEMS,
    summary="The movement ledger, oldest first: every change of on hand and why",
)
def movements(
    caller: Reader,
    api: ApiDep,
    sku: Skus = [],  # noqa: B006 - FastAPI copies it
    limit: Annotated[int, Query(ge=1, le=10_000, description="the newest N")] = 500,
) -> Movements:
    return Movements(data=[movement_out(m) for m in api.stack.stock_movements(sku, limit=limit)])


@router.post(
    "/receipts",
    response_model=StockChangeOut,
    status_code=201,
    responses={**WRITE_PROBLEMS, **_UNKNOWN},
    summary="Goods arrived: more units on hand at a location",
)
async def receive(
    request: Request, body: ReceiptIn, caller: Writer, api: ApiDep, idempotency_key: IdempotencyKey = None
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda key: stock_change_out(
            api.stack.receive_stock(body.sku, body.location, body.quantity, reason=body.reason, key=key)
        ),
        status=201,
    )


@router.post(
    "/adjustments",
    response_model=StockChangeOut,
    status_code=201,
    responses={**WRITE_PROBLEMS, **_UNKNOWN},
    summary="Correct on hand by a number of units (negative for damage or loss), with the reason",
)
async def adjust(
    request: Request, body: AdjustmentIn, caller: Writer, api: ApiDep, idempotency_key: IdempotencyKey = None
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda key: stock_change_out(
            api.stack.adjust_stock(body.sku, body.location, body.delta, reason=body.reason, key=key)
        ),
        status=201,
    )


@router.post(
    "/counts",
    response_model=StockChangeOut,
    status_code=201,
    responses={**WRITE_PROBLEMS, **_UNKNOWN},
    summary="Record a count: on hand becomes what was counted; the difference is a movement",
)
async def count(
    request: Request, body: CountIn, caller: Writer, api: ApiDep, idempotency_key: IdempotencyKey = None
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda key: stock_change_out(
            api.stack.count_stock(body.sku, body.location, body.counted, reason=body.reason, key=key)
        ),
        status=201,
    )
