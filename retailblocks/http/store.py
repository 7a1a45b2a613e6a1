"""The store API: what a channel's shop, till or marketplace connector calls, scoped to its channel.

A store key acts for exactly one channel: the catalog and prices are that channel's, carts are placed in
it, and an order of another channel does not exist for it (404). Reading an order also needs the order's
token, returned once at checkout, so a shopper cannot read another shopper's order by guessing its id.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from retailblocks.errors import UnknownOrder
from retailblocks.http import sessions
from retailblocks.http.auth import Forbidden, bearer
from retailblocks.http.idempotency import HEADER
from retailblocks.http.schemas import (
    AvailabilityOut,
    CartIn,
    CatalogOut,
    ConsentIn,
    ConsentOut,
    ConsentsOut,
    CouponListOut,
    ErasureOut,
    LinkIn,
    LocationStock,
    MemberExportOut,
    MemberOut,
    Name,
    OptOutIn,
    OptOutOut,
    OrderListOut,
    OrderOut,
    QuoteOut,
    RedemptionIn,
    RedemptionOut,
    SessionOut,
    SignInIn,
    SkuAvailability,
    cart_of,
    coupon_out,
    identity_of,
    member_out,
    order_out,
    product_out,
    quote_out,
    redemption_out,
)
from retailblocks.http.state import Api, api_dependency, api_of, run_once
from retailblocks.manifest.api import ApiKey

router = APIRouter(prefix="/store", tags=["store"])

STORE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no key, or a key this stack does not accept"},
    403: {"description": "an admin key; the store API takes a channel's store key"},
    422: {"description": "a value that breaks a rule, said where"},
    429: {"description": "the key's rate limit; see Retry-After"},
}


async def store_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKey:
    api = api_of(request)
    key = api.keys.authenticate(credentials.credentials if credentials else None)
    if not key.is_store_key:
        raise Forbidden("the store API takes a channel's store key")
    origin = request.headers.get("origin")
    if origin is not None and origin not in key.cors_origins and "*" not in key.cors_origins:
        raise Forbidden("this key may not be used from this origin (see the key's cors list)")
    api.limiter.spend(key)
    return key


Caller = Annotated[ApiKey, Depends(store_key)]
ApiDep = Annotated[Api, Depends(api_dependency)]


def channel_of(key: ApiKey) -> str:
    assert key.channel is not None  # store_key admits store keys only
    return key.channel


@router.get(
    "/catalog",
    operation_id="storeCatalog",
    response_model=CatalogOut,
    responses=STORE_PROBLEMS,
    summary="The channel's assortment and prices",
)
def catalog(caller: Caller, api: ApiDep) -> CatalogOut:
    channel = channel_of(caller)
    products = [product_out(p, channel) for p in api.stack.catalog.values() if p.sold_in(channel)]
    return CatalogOut(channel=channel, products=products)


@router.get(
    "/availability",
    operation_id="storeAvailability",
    response_model=AvailabilityOut,
    responses=STORE_PROBLEMS,
    summary="What the channel may sell now, and the stock at each of its locations",
)
def availability(
    caller: Caller, api: ApiDep, sku: Annotated[list[Name], Query(min_length=1, max_length=200)]
) -> AvailabilityOut:
    channel = channel_of(caller)
    found = api.stack.availability(channel, sku)
    return AvailabilityOut(
        channel=channel,
        skus=[
            SkuAvailability(
                sku=name,
                available=units,
                locations=[LocationStock(location=loc, available=n) for loc, n in found.by_location[name].items()],
            )
            for name, units in found.sellable.items()
        ],
    )


@router.post(
    "/quotes",
    operation_id="createQuote",
    response_model=QuoteOut,
    responses={
        **STORE_PROBLEMS,
        404: {"description": "a SKU the stack does not sell"},
        409: {"description": "not deliverable, or a coupon that does not apply"},
    },
    summary="Price a cart as checkout would: adjustments with reasons and funders, shipping; nothing is kept",
)
async def create_quote(body: CartIn, caller: Caller, api: ApiDep) -> Response:
    channel = channel_of(caller)

    def price() -> Response:
        document = quote_out(api.stack.quote(cart_of(body, channel, api.stack.currency)))
        return JSONResponse(document.model_dump(mode="json"))

    # Pricing waits on the database, so it runs in the thread pool, and the document is rendered there
    # too: one hand-over to a thread and back. (A plain function's answer would be validated against
    # the response model in a second hand-over, for a document built from that model.)
    return await run_in_threadpool(price)


@router.post(
    "/orders",
    operation_id="createOrder",
    status_code=201,
    response_model=OrderOut,
    responses={
        **STORE_PROBLEMS,
        400: {"description": f"no {HEADER} header"},
        404: {"description": "a SKU the stack does not sell"},
        402: {"description": "the payment was declined"},
        409: {"description": "out of stock, not deliverable, or the same key still in progress"},
    },
    summary="Check out a cart: once per Idempotency-Key",
)
async def create_order(
    request: Request,
    body: CartIn,
    caller: Caller,
    api: ApiDep,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    channel = channel_of(caller)

    def place(key: str) -> OrderOut:
        order = api.stack.checkout(cart_of(body, channel, api.stack.currency), key=key)
        return order_out(order, token=api.order_token(order.id))

    return await run_once(request, api, caller, idempotency_key, place, status=201)


@router.get(
    "/orders/{order_id}",
    operation_id="readOrder",
    response_model=OrderOut,
    responses={**STORE_PROBLEMS, 404: {"description": "no such order for this channel and token"}},
    summary="An order the shopper placed, with its status, by the token checkout returned",
)
def read_order(
    order_id: str,
    caller: Caller,
    api: ApiDep,
    order_token: Annotated[str | None, Header(alias="Order-Token")] = None,
) -> OrderOut:
    # One answer for every way of not being allowed to see it: nothing tells a guesser which it was.
    hidden = UnknownOrder(f"no order {order_id!r} for this channel")
    if order_token is None or not hmac.compare_digest(order_token.encode(), api.order_token(order_id).encode()):
        raise hidden
    order = api.stack.order(order_id)
    if order.channel != channel_of(caller):
        raise hidden
    return order_out(order)


async def shopper(
    request: Request,
    caller: Caller,
    token: Annotated[str | None, Header(alias=sessions.HEADER)] = None,
) -> str:
    """The member the shopper's session names, in the caller's channel."""
    api = api_of(request)
    return sessions.verify(
        api.stack.manifest.api.session_secret, token, channel_of(caller), api.stack.lease_clock.now()
    )


Shopper = Annotated[str, Depends(shopper)]
_SESSION_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **STORE_PROBLEMS,
    401: {"description": "no key or shopper session, or one not valid here and now"},
}


@router.post(
    "/sessions",
    operation_id="signIn",
    status_code=201,
    response_model=SessionOut,
    responses={**STORE_PROBLEMS, 403: {"description": "a key that does not sign shoppers in"}},
    summary="Sign a shopper in by the identities the channel's server has verified",
)
def sign_in(body: SignInIn, caller: Caller, api: ApiDep) -> SessionOut:
    if not caller.signs_in_shoppers or api.stack.manifest.api.session_secret is None:
        raise Forbidden("this key does not sign shoppers in (only a channel server's key with signs_in_shoppers)")
    channel = channel_of(caller)
    member = api.stack.sign_in(channel, [identity_of(i) for i in body.identities])
    token, expires = sessions.issue(
        api.stack.manifest.api.session_secret, member.id, channel, api.stack.lease_clock.now()
    )
    return SessionOut(token=token, expires_at=expires.isoformat(), member=member_out(member))


@router.get(
    "/me", operation_id="readMe", response_model=MemberOut, responses=_SESSION_PROBLEMS, summary="The signed-in member"
)
def read_me(member_id: Shopper, api: ApiDep) -> MemberOut:
    return member_out(api.stack.member(member_id))


@router.get(
    "/me/orders",
    operation_id="readMyOrders",
    response_model=OrderListOut,
    responses=_SESSION_PROBLEMS,
    summary="The signed-in member's orders in this channel, newest first",
)
def read_my_orders(
    member_id: Shopper, caller: Caller, api: ApiDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> OrderListOut:
    found = api.stack.orders(member_id=member_id, channel=channel_of(caller))
    return OrderListOut(orders=[order_out(order) for order in reversed(found[-limit:])])


@router.post(
    "/me/identities",
    operation_id="linkIdentity",
    response_model=MemberOut,
    responses={**_SESSION_PROBLEMS, 400: {"description": f"no {HEADER} header"}},
    summary="Link another identity to the signed-in member",
)
async def link_identity(
    request: Request,
    body: LinkIn,
    member_id: Shopper,
    caller: Caller,
    api: ApiDep,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    channel = channel_of(caller)

    def link(_key: str) -> MemberOut:
        return member_out(api.stack.link_identity(channel, member_id, identity_of(body.identity)))

    return await run_once(request, api, caller, idempotency_key, link, scope=member_id)


@router.get(
    "/me/coupons",
    operation_id="readMyCoupons",
    response_model=CouponListOut,
    responses=_SESSION_PROBLEMS,
    summary="The coupons in the signed-in member's wallet that may still be used, oldest first",
)
def read_my_coupons(member_id: Shopper, api: ApiDep) -> CouponListOut:
    return CouponListOut(coupons=[coupon_out(coupon) for coupon in api.stack.member_coupons(member_id)])


@router.post(
    "/me/opt-outs",
    operation_id="optOut",
    response_model=OptOutOut,
    responses={**_SESSION_PROBLEMS, 400: {"description": f"no {HEADER} header"}},
    summary="The signed-in member wants no more messages by a medium (campaigns honour it)",
)
async def opt_out(
    request: Request,
    body: OptOutIn,
    member_id: Shopper,
    caller: Caller,
    api: ApiDep,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    channel = channel_of(caller)

    def record(_key: str) -> OptOutOut:
        blocks = api.stack.opt_out(member_id, body.medium, source=f"the member, in channel {channel}")
        return OptOutOut(member_id=member_id, medium=body.medium, blocks=blocks)

    return await run_once(request, api, caller, idempotency_key, record, scope=member_id)


@router.get(
    "/me/consents",
    operation_id="myConsents",
    response_model=ConsentsOut,
    responses=_SESSION_PROBLEMS,
    summary="Every consent the signed-in member gave or withdrew, oldest first",
)
def my_consents(member_id: Shopper, caller: Caller, api: ApiDep) -> ConsentsOut:
    return ConsentsOut(consents=[ConsentOut(**row.to_dict()) for row in api.stack.consents(member_id)])


@router.post(
    "/me/consents",
    operation_id="recordConsent",
    response_model=ConsentOut,
    responses={**_SESSION_PROBLEMS, 400: {"description": f"no {HEADER} header"}},
    summary="The signed-in member grants or withdraws consent to a purpose by a medium",
)
async def record_consent(
    request: Request,
    body: ConsentIn,
    member_id: Shopper,
    caller: Caller,
    api: ApiDep,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    channel = channel_of(caller)

    def record(_key: str) -> ConsentOut:
        recorded = api.stack.record_consent(
            member_id,
            body.purpose,
            granted=body.granted,
            source=f"the member, in channel {channel}",
            medium=body.medium,
        )
        return ConsentOut(**recorded.to_dict())

    return await run_once(request, api, caller, idempotency_key, record, scope=member_id)


@router.get(
    "/me/export",
    operation_id="exportMe",
    response_model=MemberExportOut,
    responses=_SESSION_PROBLEMS,
    summary="Everything the merchant holds about the signed-in member, as one JSON document",
)
def export_me(member_id: Shopper, caller: Caller, api: ApiDep) -> MemberExportOut:
    return MemberExportOut(**api.stack.export_member(member_id))


@router.post(
    "/me/erasure",
    operation_id="eraseMe",
    response_model=ErasureOut,
    responses={**_SESSION_PROBLEMS, 400: {"description": f"no {HEADER} header"}},
    summary="Erase the signed-in member: identities pseudonymised everywhere; the session ends with them",
)
async def erase_me(
    request: Request,
    member_id: Shopper,
    caller: Caller,
    api: ApiDep,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    channel = channel_of(caller)

    def run(_key: str) -> ErasureOut:
        erasure = api.stack.erase_member(member_id, source=f"the member, in channel {channel}")
        return ErasureOut(**erasure.to_dict())

    return await run_once(request, api, caller, idempotency_key, run, scope=member_id)


@router.post(
    "/me/points/redemptions",
    operation_id="redeemPoints",
    status_code=201,
    response_model=RedemptionOut,
    responses={
        **_SESSION_PROBLEMS,
        400: {"description": f"no {HEADER} header"},
        409: {"description": "not enough points (type insufficient-points), or the same key still in progress"},
    },
    summary="Spend the signed-in member's points for a partner's programme; settled with the partner",
)
async def redeem_points(
    request: Request,
    body: RedemptionIn,
    member_id: Shopper,
    caller: Caller,
    api: ApiDep,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    channel = channel_of(caller)

    def redeem(key: str) -> RedemptionOut:
        movement = api.stack.redeem_points(member_id, body.partner, body.points, key=key, channel=channel)
        return redemption_out(movement, body.partner)

    return await run_once(request, api, caller, idempotency_key, redeem, status=201, scope=member_id)
