"""The HTTP API's documents: what requests carry and responses return, as the OpenAPI document shows them.

These are the wire's shapes, converted to and from the model's values at the edge (:func:`cart_of`,
:func:`order_out`…); every rule of the model still applies after conversion, so a request that passes
these schemas may still be refused with the model's own message. Money is integer minor units with its
currency everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from retailblocks.flows.carts import ServerCart
from retailblocks.flows.pricing import PricedCart
from retailblocks.hookspecs.marketing import MemberCoupon
from retailblocks.model import (
    Address,
    Cart,
    CartLine,
    Fulfilment,
    FulfilmentGroup,
    Identity,
    Member,
    Money,
    Order,
    PaymentRequest,
    PointsMovement,
    PriceAdjustment,
    Product,
    ShippingQuote,
)
from retailblocks.model.limits import MAX_ID_LENGTH, MAX_LINE_QUANTITY, MAX_POINTS, MAX_SLUG_LENGTH, MAX_TEXT_LENGTH

#: Text the model accepts: no NUL; a Name also has something besides spaces. In the schema, so that a
#: client (and a generated test) knows the rule before the server says it.
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH, pattern=r"^[^\x00]*$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00]*\S[^\x00]*$")]


class StrictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MoneyOut(BaseModel):
    amount: int = Field(description="minor units (cents, fen)")
    currency: str = Field(description="ISO 4217 code")


def money_out(money: Money) -> MoneyOut:
    return MoneyOut(amount=money.amount, currency=money.currency)


class ProductOut(BaseModel):
    sku: str
    title: str
    category: str
    price: MoneyOut = Field(description="the price in the caller's channel")


def product_out(product: Product, channel: str) -> ProductOut:
    return ProductOut(
        sku=product.sku, title=product.title, category=product.category, price=money_out(product.price_in(channel))
    )


class CatalogOut(BaseModel):
    channel: str
    products: list[ProductOut]


class LocationStock(BaseModel):
    location: str
    available: int


class SkuAvailability(BaseModel):
    sku: str
    available: int = Field(description="what the caller's channel may sell now, after safety stock")
    locations: list[LocationStock] = Field(description="stock per location, for pick-up and 'which store'")


class AvailabilityOut(BaseModel):
    channel: str
    skus: list[SkuAvailability]


class CartLineIn(StrictIn):
    sku: Name
    quantity: int = Field(ge=1, le=MAX_LINE_QUANTITY)


class IdentityIn(StrictIn):
    kind: Literal["phone", "email", "openid", "marketplace", "store_card", "social", "union_id"]
    value: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*\S[^\x00]*$")]


class AddressIn(StrictIn):
    country: Text
    region: Text = ""
    city: Text = ""
    postal_code: Text = ""
    line1: Text = ""
    name: Text = ""
    phone: Text = ""


class FulfilmentIn(StrictIn):
    kind: Literal["carry_out", "pickup", "delivery"] = "carry_out"
    address: AddressIn | None = None
    pickup_location: Name | None = None
    option_id: Name | None = None


class QuotedLineIn(CartLineIn):
    """A line of a cart sent whole (a quote, a checkout), which may leave its own way."""

    fulfilment: FulfilmentIn | None = Field(
        default=None,
        description="how this line reaches the shopper when not as the cart does (picked up while the rest is "
        "delivered): the order then leaves in several groups, each reserved where it leaves from, quoted and "
        "shipped on its own, and promotions read it",
    )


class PaymentIn(StrictIn):
    method: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SLUG_LENGTH, pattern=r"^[^\x00]*\S[^\x00]*$")]
    amount: int | None = Field(
        default=None, ge=1, description="minor units of the stack's currency; absent means what is left"
    )
    details: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_SLUG_LENGTH, pattern=r"^[^\x00]*\S[^\x00]*$")],
        Text,
    ] = Field(default_factory=dict, description="method-specific: a card token, a gift card")


class CartIn(StrictIn):
    """A cart for the caller's channel (the channel comes from the API key, never from the body)."""

    lines: list[QuotedLineIn] = Field(min_length=1, max_length=500)
    payments: list[PaymentIn] = Field(default_factory=list, max_length=10)
    identities: list[IdentityIn] = Field(default_factory=list, max_length=10)
    fulfilment: FulfilmentIn = Field(default_factory=FulfilmentIn)
    coupons: list[Name] = Field(default_factory=list, max_length=10)
    attribution: Text | None = None


def cart_of(body: CartIn, channel: str, currency: str) -> Cart:
    """The model's cart for ``body`` in ``channel``; InvalidValue with the model's message if a value breaks
    one of its rules."""
    return Cart(
        channel=channel,
        lines=tuple(
            CartLine(line.sku, line.quantity, fulfilment_of(line.fulfilment) if line.fulfilment is not None else None)
            for line in body.lines
        ),
        payments=tuple(
            PaymentRequest(
                method=payment.method,
                amount=Money(payment.amount, currency) if payment.amount is not None else None,
                details=payment.details,
            )
            for payment in body.payments
        ),
        identities=tuple(identity_of(identity) for identity in body.identities),
        fulfilment=fulfilment_of(body.fulfilment),
        coupons=tuple(body.coupons),
        attribution=body.attribution,
    )


def fulfilment_of(fulfilment: FulfilmentIn) -> Fulfilment:
    return Fulfilment(
        fulfilment.kind,
        address=Address(**fulfilment.address.model_dump()) if fulfilment.address else None,
        pickup_location=fulfilment.pickup_location,
        option_id=fulfilment.option_id,
    )


class FunderPartOut(BaseModel):
    funder: str = Field(description="the merchant's id or a partner's")
    amount: MoneyOut


class AdjustmentOut(BaseModel):
    promotion_id: str
    target: str = Field(description="item, order or shipping")
    amount: MoneyOut
    reason: str
    funder: str = Field(description="who pays for it: the merchant or a partner (the largest part when shared)")
    funders: list[FunderPartOut] = Field(
        description="what each payer pays of it; the parts sum exactly to the amount (one part when one pays)"
    )
    coupon: str | None = None


def adjustment_out(adjustment: PriceAdjustment) -> AdjustmentOut:
    return AdjustmentOut(
        promotion_id=adjustment.promotion_id,
        target=adjustment.target.value,
        amount=money_out(adjustment.amount),
        reason=adjustment.reason,
        funder=adjustment.funder,
        funders=[FunderPartOut(funder=who, amount=money_out(part)) for who, part in adjustment.funded_by],
        coupon=adjustment.coupon,
    )


class ShippingOut(BaseModel):
    option_id: str
    carrier: str
    amount: MoneyOut
    min_days: int
    max_days: int


def shipping_out(quote: ShippingQuote) -> ShippingOut:
    return ShippingOut(
        option_id=quote.option_id,
        carrier=quote.carrier,
        amount=money_out(quote.amount),
        min_days=quote.min_days,
        max_days=quote.max_days,
    )


class LineOut(BaseModel):
    index: int
    sku: str
    quantity: int
    unit_price: MoneyOut
    discount: MoneyOut
    total: MoneyOut


class FulfilmentOut(BaseModel):
    kind: str = Field(description="carry_out, pickup or delivery")
    address: AddressIn | None
    pickup_location: str | None
    option_id: str | None


class GroupOut(BaseModel):
    """The lines of an order or quote that leave one way."""

    fulfilment: FulfilmentOut
    lines: list[int] = Field(description="the indexes of the lines that leave this way")
    shipping_option: str | None = Field(description="the shipping option this group goes by; none for nothing shipped")
    shipping: MoneyOut = Field(description="this group's shipping, after the shipping promotions that target it")


def fulfilment_out(fulfilment: Fulfilment) -> FulfilmentOut:
    address = fulfilment.address
    return FulfilmentOut(
        kind=fulfilment.kind.value,
        address=AddressIn(
            country=address.country,
            region=address.region,
            city=address.city,
            postal_code=address.postal_code,
            line1=address.line1,
            name=address.name,
            phone=address.phone,
        )
        if address is not None
        else None,
        pickup_location=fulfilment.pickup_location,
        option_id=fulfilment.option_id,
    )


def group_out(group: FulfilmentGroup) -> GroupOut:
    return GroupOut(
        fulfilment=fulfilment_out(group.fulfilment),
        lines=list(group.lines),
        shipping_option=group.option_id,
        shipping=money_out(group.shipping),
    )


#: Said of ``groups`` wherever an order or a quote shows them.
GROUPS_DESCRIPTION = (
    "one group per way the lines leave when they leave in several ways (a pick-up beside a delivery, two "
    "shipping options); empty when everything leaves one way"
)


class QuoteOut(BaseModel):
    lines: list[LineOut]
    adjustments: list[AdjustmentOut]
    shipping_option: ShippingOut | None
    subtotal: MoneyOut
    discount: MoneyOut
    shipping: MoneyOut
    total: MoneyOut
    groups: list[GroupOut] = Field(default_factory=list, description=GROUPS_DESCRIPTION)


def quote_out(priced: PricedCart) -> QuoteOut:
    zero = Money.zero(priced.total.currency)
    return QuoteOut(
        lines=[
            LineOut(
                index=line.index,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=money_out(line.unit_price),
                discount=money_out(line.discount or zero),
                total=money_out(line.subtotal - (line.discount or zero)),
            )
            for line in priced.lines
        ],
        adjustments=[adjustment_out(a) for a in priced.adjustments],
        shipping_option=shipping_out(priced.quote) if priced.quote else None,
        subtotal=money_out(priced.subtotal),
        discount=money_out(priced.discount),
        shipping=money_out(priced.shipping),
        total=money_out(priced.total),
        groups=[
            group_out(
                FulfilmentGroup(g.fulfilment, g.lines, g.shipping, g.quote.option_id if g.quote is not None else None)
            )
            for g in priced.groups
        ],
    )


class PaymentOut(BaseModel):
    method: str
    amount: MoneyOut
    status: str


class OrderOut(BaseModel):
    id: str
    channel: str
    status: str
    lines: list[LineOut]
    adjustments: list[AdjustmentOut]
    payments: list[PaymentOut]
    subtotal: MoneyOut
    discount: MoneyOut
    shipping: MoneyOut
    total: MoneyOut
    refunded: MoneyOut
    created_at: str
    token: str | None = Field(
        default=None, description="returned once, at checkout: send it as Order-Token to read this order"
    )
    groups: list[GroupOut] = Field(default_factory=list, description=GROUPS_DESCRIPTION)


def order_out(order: Order, token: str | None = None) -> OrderOut:
    zero = Money.zero(order.currency)
    return OrderOut(
        id=order.id,
        channel=order.channel,
        status=order.status.value,
        lines=[
            LineOut(
                index=line.index,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=money_out(line.unit_price),
                discount=money_out(line.discount),
                total=money_out(line.total),
            )
            for line in order.lines
        ],
        adjustments=[adjustment_out(a) for a in order.adjustments],
        payments=[
            PaymentOut(method=p.method, amount=money_out(p.amount), status=p.status.value) for p in order.payments
        ],
        subtotal=money_out(order.subtotal),
        discount=money_out(order.discount),
        shipping=money_out(order.shipping),
        total=money_out(order.total),
        refunded=money_out(order.refunded or zero),
        created_at=order.created_at.isoformat(),
        token=token,
        groups=[group_out(group) for group in order.groups],
    )


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]


class MemberOut(BaseModel):
    id: str
    tier: str
    points: int
    identities: list[str] = Field(description="kind:value, as the member's channels know them")


def member_out(member: Member) -> MemberOut:
    return MemberOut(
        id=member.id, tier=member.tier, points=member.points, identities=[str(i) for i in member.identities]
    )


class SignInIn(StrictIn):
    identities: list[IdentityIn] = Field(min_length=1, max_length=10)


class SessionOut(BaseModel):
    token: str = Field(description="send as Shopper-Token, with the channel's key")
    expires_at: str
    member: MemberOut


class LinkIn(StrictIn):
    identity: IdentityIn


Medium = Literal["mini_program", "sms", "email", "push"]


class OptOutIn(StrictIn):
    medium: Medium = Field(description="the medium the member wants no more messages by")


class OptOutOut(BaseModel):
    member_id: str
    medium: str
    blocks: list[str] = Field(description="the reach blocks that recorded the opt-out")


class ConsentIn(StrictIn):
    purpose: Literal["marketing", "profiling", "sharing"] = Field(description="what the consent is for")
    granted: bool = Field(description="true to grant, false to withdraw")
    medium: Literal["any", "mini_program", "sms", "email", "push"] = "any"


class ConsentOut(BaseModel):
    member_id: str
    purpose: str
    medium: str
    granted: bool
    source: str
    at: str


class ConsentsOut(BaseModel):
    consents: list[ConsentOut] = Field(description="every consent given or withdrawn, oldest first")


class MemberExportOut(BaseModel):
    """Everything held about a member (see docs/identity.md): rows as the stack stores them."""

    member: dict[str, Any] = Field(description="id, tier and points balance")
    identities: list[dict[str, Any]] = Field(description="every identity held or held before, as kind and value")
    orders: list[dict[str, Any]] = Field(description="the member's orders, each with its lines")
    coupons: list[dict[str, Any]]
    events: list[dict[str, Any]] = Field(description="every event recorded about the member")
    timeline: list[dict[str, Any]]
    consents: list[dict[str, Any]] = Field(description="every consent given or withdrawn, oldest first")
    fusion: dict[str, list[dict[str, Any]]] = Field(description="the fusion's rows about the member, by table")
    exported_at: str


class ErasureOut(BaseModel):
    member_id: str
    identifiers: int = Field(description="identities replaced by tokens (0: the member was erased already)")
    core_rows: int = Field(description="rows of the core's tables changed")
    at: str


def identity_of(identity: IdentityIn) -> Identity:
    return Identity(identity.kind, identity.value)


class OrderListOut(BaseModel):
    orders: list[OrderOut]


class CartCreateIn(StrictIn):
    """A new, empty cart in the caller's channel; with a Shopper-Token it belongs to that shopper."""

    attribution: Text | None = Field(default=None, description="a campaign or partner the cart came through")


class CartQuantityIn(StrictIn):
    quantity: int = Field(ge=1, le=MAX_LINE_QUANTITY)


class CartCouponsIn(StrictIn):
    coupons: list[Name] = Field(max_length=10, description="every code the cart presents; [] removes them all")


class CartPaymentIn(StrictIn):
    method: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SLUG_LENGTH, pattern=r"^[^\x00]*\S[^\x00]*$")]
    amount: int | None = Field(
        default=None, ge=1, description="minor units of the stack's currency; absent means what is left"
    )


class CartPaymentsIn(StrictIn):
    payments: list[CartPaymentIn] = Field(
        max_length=10, description="how the cart will be paid; details such as a card token come with the checkout"
    )


PaymentDetails = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=MAX_SLUG_LENGTH, pattern=r"^[^\x00]*\S[^\x00]*$")],
    Text,
]


class CartCheckoutIn(StrictIn):
    payment_details: list[PaymentDetails] = Field(
        default_factory=list,
        max_length=10,
        description="per payment of the cart, in its order (a card token, a gift card); never stored",
    )


class CartLineOut(BaseModel):
    sku: str
    quantity: int


class CartPaymentOut(BaseModel):
    method: str
    amount: MoneyOut | None = Field(description="absent: what is left")


class CartOut(BaseModel):
    id: str
    channel: str
    status: Literal["open", "checking_out", "checked_out"]
    version: int = Field(description="raised by every change; send it as If-Match to change only this version")
    lines: list[CartLineOut]
    fulfilment: FulfilmentOut
    coupons: list[str]
    payments: list[CartPaymentOut]
    attribution: str | None
    order_id: str | None = Field(description="the order the cart became, once checked out")
    expires_at: str = Field(description="when an open cart left untouched expires (each change extends it)")
    created_at: str
    updated_at: str


def cart_out(cart: ServerCart) -> CartOut:
    return CartOut(
        id=cart.id,
        channel=cart.channel,
        status=cart.status.value,
        version=cart.version,
        lines=[CartLineOut(sku=line.sku, quantity=line.quantity) for line in cart.lines],
        fulfilment=fulfilment_out(cart.fulfilment),
        coupons=list(cart.coupons),
        payments=[
            CartPaymentOut(method=p.method, amount=money_out(p.amount) if p.amount is not None else None)
            for p in cart.payments
        ],
        attribution=cart.attribution,
        order_id=cart.order_id,
        expires_at=cart.expires_at.isoformat(),
        created_at=cart.created_at.isoformat(),
        updated_at=cart.updated_at.isoformat(),
    )


class CouponOut(BaseModel):
    code: str = Field(description="present it in a cart's coupons")
    promotion_id: str
    description: str = Field(description="what it gives, in a sentence a shopper can read")
    uses_left: int
    issued_at: str


class CouponListOut(BaseModel):
    coupons: list[CouponOut]


def coupon_out(coupon: MemberCoupon) -> CouponOut:
    return CouponOut(
        code=coupon.code,
        promotion_id=coupon.promotion_id,
        description=coupon.description,
        uses_left=coupon.uses_left,
        issued_at=coupon.issued_at.isoformat(),
    )


class RedemptionIn(StrictIn):
    partner: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_SLUG_LENGTH, pattern=r"^[^\x00]*\S[^\x00]*$")
    ] = Field(description="the partner (as the manifest's partners name it) whose programme the points go to")
    points: int = Field(ge=1, le=MAX_POINTS, description="our points to spend")


class RedemptionOut(BaseModel):
    id: str = Field(description="the points movement; partner settlement lists it under this reference")
    partner: str
    points: int = Field(description="points spent")
    balance: int = Field(description="the member's points after it")
    description: str


def redemption_out(movement: PointsMovement, partner: str) -> RedemptionOut:
    return RedemptionOut(
        id=movement.id, partner=partner, points=-movement.points, balance=movement.balance, description=movement.reason
    )
