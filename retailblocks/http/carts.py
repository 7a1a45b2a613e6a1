"""``/store/carts``: a cart a channel builds step by step on the server, then quotes and checks out.

Each route calls one method of :attr:`Stack.carts` (retailblocks.flows.carts), which holds every rule.
A cart is its channel's (another channel's key gets 404) and, when made with a Shopper-Token, its
shopper's (anyone else gets 404). Responses carry the cart's ``version``, also as ``ETag``; a change sent
with ``If-Match`` applies only to that version (412 otherwise), a change without it applies to the cart
as it is then, so concurrent edits never lose one another. A checked-out cart no longer changes (409);
an open cart left untouched past ``expires_at`` is gone (410). POSTs need an Idempotency-Key; PUT,
PATCH and DELETE are idempotent by themselves.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from retailblocks.errors import StaleVersion
from retailblocks.flows.carts import CartOwner, ServerCart
from retailblocks.http import sessions
from retailblocks.http.idempotency import HEADER
from retailblocks.http.schemas import (
    CartCheckoutIn,
    CartCouponsIn,
    CartCreateIn,
    CartLineIn,
    CartOut,
    CartPaymentsIn,
    CartQuantityIn,
    FulfilmentIn,
    Name,
    OrderOut,
    QuoteOut,
    cart_out,
    fulfilment_of,
    order_out,
    quote_out,
)
from retailblocks.http.state import api_of, run_once
from retailblocks.http.store import ApiDep, Caller
from retailblocks.model import Money, PaymentRequest

router = APIRouter(prefix="/store/carts", tags=["store"])

_READ: dict[int | str, dict[str, Any]] = {
    401: {"description": "no key, or a Shopper-Token that is not valid here and now"},
    403: {"description": "an admin key; the store API takes a channel's store key"},
    404: {"description": "no such cart for this channel and shopper"},
    410: {"description": "the cart was left untouched past its expires_at"},
    422: {"description": "a value that breaks a rule, said where"},
    429: {"description": "the key's rate limit; see Retry-After"},
}
_CHANGE: dict[int | str, dict[str, Any]] = {
    **_READ,
    409: {"description": "the cart is checked out (or being checked out) and no longer changes"},
    412: {"description": "If-Match names a version that is no longer the cart's"},
}
_POST: dict[int | str, dict[str, Any]] = {**_CHANGE, 400: {"description": f"no {HEADER} header"}}


async def cart_owner(
    request: Request,
    caller: Caller,
    token: Annotated[str | None, Header(alias=sessions.HEADER)] = None,
) -> CartOwner:
    """The caller's channel and, when a Shopper-Token comes along, its member (a bad token is 401)."""
    assert caller.channel is not None  # store_key admits store keys only
    if token is None:
        return CartOwner(caller.channel)
    api = api_of(request)
    member_id = sessions.verify(
        api.stack.manifest.api.session_secret, token, caller.channel, api.stack.lease_clock.now()
    )
    return CartOwner(caller.channel, member_id)


Owner = Annotated[CartOwner, Depends(cart_owner)]
IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description="a version (the ETag) the change applies to; absent: the cart as it is"),
]


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header names (``"3"``, ``W/"3"`` or ``3``); ``*`` or none: any version."""
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 12:
        raise StaleVersion(f"If-Match must name a version of the cart, as its ETag gives it (got {if_match[:40]!r})")
    return int(text)


def _answer(response: Response, cart: ServerCart) -> CartOut:
    response.headers["ETag"] = f'"{cart.version}"'
    return cart_out(cart)


def _scope(owner: CartOwner) -> str:
    return owner.member_id or ""


@router.post(
    "",
    operation_id="createCart",
    status_code=201,
    response_model=CartOut,
    responses={k: v for k, v in _POST.items() if k not in (404, 409, 410, 412)},
    summary="Start a cart in the caller's channel, the signed-in shopper's if a Shopper-Token comes along",
)
async def create_cart(
    request: Request,
    body: CartCreateIn,
    owner: Owner,
    caller: Caller,
    api: ApiDep,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    def create(key: str) -> CartOut:
        return cart_out(api.stack.carts.create(owner, key=key, attribution=body.attribution))

    return await run_once(request, api, caller, idempotency_key, create, status=201, scope=_scope(owner))


@router.get("/{cart_id}", operation_id="readCart", response_model=CartOut, responses=_READ, summary="A cart")
def read_cart(cart_id: Name, owner: Owner, api: ApiDep, response: Response) -> CartOut:
    return _answer(response, api.stack.carts.cart(cart_id, owner))


@router.post(
    "/{cart_id}/lines",
    operation_id="addCartLine",
    response_model=CartOut,
    responses=_POST,
    summary="Add units of a SKU to the cart (to its line, if the cart has one)",
)
async def add_cart_line(
    request: Request,
    cart_id: Name,
    body: CartLineIn,
    owner: Owner,
    caller: Caller,
    api: ApiDep,
    if_match: IfMatch = None,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    expected = expected_version(if_match)

    def add(key: str) -> CartOut:
        cart = api.stack.carts.add_line(cart_id, owner, body.sku, body.quantity, key=key, expected_version=expected)
        return cart_out(cart)

    return await run_once(request, api, caller, idempotency_key, add, scope=_scope(owner))


@router.patch(
    "/{cart_id}/lines/{sku}",
    operation_id="setCartLine",
    response_model=CartOut,
    responses=_CHANGE,
    summary="Set the quantity of the cart's line of a SKU",
)
def set_cart_line(
    cart_id: Name,
    sku: Name,
    body: CartQuantityIn,
    owner: Owner,
    api: ApiDep,
    response: Response,
    if_match: IfMatch = None,
) -> CartOut:
    cart = api.stack.carts.set_line(cart_id, owner, sku, body.quantity, expected_version=expected_version(if_match))
    return _answer(response, cart)


@router.delete(
    "/{cart_id}/lines/{sku}",
    operation_id="removeCartLine",
    response_model=CartOut,
    responses=_CHANGE,
    summary="Take the line of a SKU out of the cart",
)
def remove_cart_line(
    cart_id: Name, sku: Name, owner: Owner, api: ApiDep, response: Response, if_match: IfMatch = None
) -> CartOut:
    cart = api.stack.carts.remove_line(cart_id, owner, sku, expected_version=expected_version(if_match))
    return _answer(response, cart)


@router.put(
    "/{cart_id}/fulfilment",
    operation_id="setCartFulfilment",
    response_model=CartOut,
    responses=_CHANGE,
    summary="How the cart is handed over: carried out, picked up at a store, or delivered (address, option)",
)
def set_cart_fulfilment(
    cart_id: Name, body: FulfilmentIn, owner: Owner, api: ApiDep, response: Response, if_match: IfMatch = None
) -> CartOut:
    cart = api.stack.carts.set_fulfilment(
        cart_id, owner, fulfilment_of(body), expected_version=expected_version(if_match)
    )
    return _answer(response, cart)


@router.put(
    "/{cart_id}/coupons",
    operation_id="setCartCoupons",
    response_model=CartOut,
    responses=_CHANGE,
    summary="The coupon codes the cart presents; the quote says whether they apply",
)
def set_cart_coupons(
    cart_id: Name, body: CartCouponsIn, owner: Owner, api: ApiDep, response: Response, if_match: IfMatch = None
) -> CartOut:
    cart = api.stack.carts.set_coupons(cart_id, owner, body.coupons, expected_version=expected_version(if_match))
    return _answer(response, cart)


@router.put(
    "/{cart_id}/payments",
    operation_id="setCartPayments",
    response_model=CartOut,
    responses=_CHANGE,
    summary="The payment methods the cart will be paid by (details such as a card token come at checkout)",
)
def set_cart_payments(
    cart_id: Name, body: CartPaymentsIn, owner: Owner, api: ApiDep, response: Response, if_match: IfMatch = None
) -> CartOut:
    currency = api.stack.currency
    payments = [
        PaymentRequest(p.method, Money(p.amount, currency) if p.amount is not None else None) for p in body.payments
    ]
    cart = api.stack.carts.set_payments(cart_id, owner, payments, expected_version=expected_version(if_match))
    return _answer(response, cart)


@router.get(
    "/{cart_id}/quote",
    operation_id="quoteCart",
    response_model=QuoteOut,
    responses={**_READ, 409: {"description": "not deliverable, or a coupon that does not apply"}},
    summary="The cart priced as checkout would price it (what POST /store/quotes answers); nothing is kept",
)
def quote_cart(cart_id: Name, owner: Owner, api: ApiDep) -> QuoteOut:
    return quote_out(api.stack.carts.quote(cart_id, owner))


@router.post(
    "/{cart_id}/checkout",
    operation_id="checkoutCart",
    status_code=201,
    response_model=OrderOut,
    responses={
        **_POST,
        402: {"description": "the payment was declined (the cart is open again)"},
        409: {"description": "out of stock, not deliverable, a coupon that does not apply (the cart is open again)"},
    },
    summary="Check the cart out as an order, once: a cart checked out already answers its order again",
)
async def checkout_cart(
    request: Request,
    cart_id: Name,
    body: CartCheckoutIn,
    owner: Owner,
    caller: Caller,
    api: ApiDep,
    if_match: IfMatch = None,
    idempotency_key: Annotated[str | None, Header(alias=HEADER)] = None,
) -> Response:
    expected = expected_version(if_match)

    def checkout(_key: str) -> OrderOut:
        # The flow's key derives from the cart (see flows.carts), not from this request's key: whoever
        # checks the cart out, however often, gets its one order.
        order = api.stack.carts.checkout(
            cart_id, owner, payment_details=body.payment_details, expected_version=expected
        )
        return order_out(order, token=api.order_token(order.id))

    return await run_once(request, api, caller, idempotency_key, checkout, status=201, scope=_scope(owner))
