"""What a channel connector calls: a marketplace's orders imported as paid by the marketplace, and the
bulk feed of what the channel may sell. Store keys, scoped to their channel like the rest of ``/store``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints

from retailblocks.connectors.block import MAX_ORDER_NUMBER_LENGTH
from retailblocks.connectors.marketplace import MarketplaceOrder
from retailblocks.http.idempotency import HEADER
from retailblocks.http.schemas import (
    CartLineIn,
    FulfilmentIn,
    IdentityIn,
    OrderOut,
    StrictIn,
    fulfilment_of,
    identity_of,
    order_out,
)
from retailblocks.http.state import run_once
from retailblocks.http.store import STORE_PROBLEMS, ApiDep, Caller, channel_of
from retailblocks.model import CartLine, Money

router = APIRouter(prefix="/store", tags=["store: connectors"])


class MarketplaceOrderIn(StrictIn):
    """An order the marketplace took and collected, as its connector reports it."""

    order_number: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_ORDER_NUMBER_LENGTH, pattern=r"^[^\x00]*\S[^\x00]*$")
    ] = Field(description="the marketplace's own order number: one number is one order, however often sent")
    lines: list[CartLineIn] = Field(min_length=1, max_length=500)
    fulfilment: FulfilmentIn = Field(default_factory=lambda: FulfilmentIn(kind="delivery"))
    identities: list[IdentityIn] = Field(default_factory=list, max_length=10)
    collected: int | None = Field(
        default=None,
        ge=0,
        description="what the buyer paid on the marketplace, in minor units of the stack's currency; when given "
        "it must equal what the channel's prices make of the order, or nothing is imported (422)",
    )


def marketplace_order_of(body: MarketplaceOrderIn, channel: str, currency: str) -> MarketplaceOrder:
    """The model's marketplace order for ``body`` (the API's document, and a line of ``blocks
    marketplace-orders``'s file) in ``channel``."""
    return MarketplaceOrder(
        channel=channel,
        order_number=body.order_number,
        lines=[CartLine(line.sku, line.quantity) for line in body.lines],
        fulfilment=fulfilment_of(body.fulfilment),
        identities=[identity_of(identity) for identity in body.identities],
        collected=Money(body.collected, currency) if body.collected is not None else None,
    )


class SkuSellable(BaseModel):
    sku: str
    sellable: int = Field(description="units the channel may sell now, after its safety stock")


class ChannelStockOut(BaseModel):
    channel: str
    skus: list[SkuSellable]


@router.post(
    "/marketplace-orders",
    operation_id="importMarketplaceOrder",
    status_code=201,
    response_model=OrderOut,
    responses={
        **STORE_PROBLEMS,
        400: {"description": f"no {HEADER} header"},
        404: {"description": "a SKU the stack does not sell"},
        409: {"description": "out of stock, not deliverable, or the same key still in progress"},
        422: {
            "description": "not a marketplace channel, a collected amount the channel's prices do not make, or "
            "an order number imported before with other contents"
        },
    },
    summary="Import an order the marketplace took and collected: the brand's stock reserved, paid by the "
    "marketplace, once per marketplace order number",
)
async def import_marketplace_order(
    request: Request,
    body: MarketplaceOrderIn,
    caller: Caller,
    api: ApiDep,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    channel = channel_of(caller)
    currency = api.stack.currency

    def record(_key: str) -> OrderOut:
        # The order number is the import's own key (see retailblocks.connectors.marketplace); the request's
        # key only replays this answer.
        order = api.stack.import_marketplace_order(marketplace_order_of(body, channel, currency))
        return order_out(order, token=api.order_token(order.id))

    return await run_once(request, api, caller, idempotency_key, record, status=201)


@router.get(
    "/stock",
    operation_id="storeChannelStock",
    response_model=ChannelStockOut,
    responses=STORE_PROBLEMS,
    summary="What the channel may sell now of every SKU it sells (the bulk feed for a listing)",
)
def channel_stock(caller: Caller, api: ApiDep) -> ChannelStockOut:
    channel = channel_of(caller)
    sellable = api.stack.channel_stock(channel)
    return ChannelStockOut(channel=channel, skus=[SkuSellable(sku=sku, sellable=n) for sku, n in sellable.items()])
