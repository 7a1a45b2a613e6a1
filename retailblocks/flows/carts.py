"""Server-side carts: a cart a channel builds step by step, priced and checked out like any other.

A cart belongs to the channel that made it and, when a signed-in shopper made it, to that member: anyone
else is told it does not exist. Every change rewrites the cart's row by a conditional update on its
``version``, so concurrent edits never lose one another: an edit made without a version is re-applied to
whatever the cart holds now; an edit made as of a version (HTTP ``If-Match``) that is no longer current
is refused with :class:`~retailblocks.errors.StaleVersion`. An open cart untouched for :data:`CART_TTL`
(on the stack's clock) has expired (:class:`~retailblocks.errors.CartExpired`).

Checkout is once per cart. It closes the cart (``checking_out``) by the same conditional update, then
runs the one checkout flow (:meth:`OrderFlows.checkout`) under a key derived from the cart and its
checkout attempt: a second checkout, concurrent or later, runs under the same key and so gets the same
order, and a checkout interrupted half-way is finished by the next one. A refused checkout (out of stock,
declined, a coupon that does not apply) reopens the cart for the shopper to mend; the next attempt gets a
key of its own. Payment details (a card token) are never stored: they come with the checkout.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import sqlalchemy as sa

from retailblocks.clock import as_utc
from retailblocks.errors import (
    BusinessRejection,
    CartClosed,
    CartExpired,
    EnvironmentFailure,
    IdempotencyConflict,
    InvalidInput,
    InvalidValue,
    StaleVersion,
    UnknownCart,
    UnknownSku,
)
from retailblocks.hookspecs import membership
from retailblocks.model import Cart, CartLine, Fulfilment, FulfilmentKind, Identity, Money, Order, PaymentRequest
from retailblocks.model.limits import (
    MAX_CART_LINES,
    MAX_ID_LENGTH,
    MAX_LINE_QUANTITY,
    MAX_SLUG_LENGTH,
    MAX_TEXT_LENGTH,
    check_key,
    check_text,
)
from retailblocks.model.serialize import from_data, to_data
from retailblocks.storage.engine import reading
from retailblocks.storage.tables import carts

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime
    from retailblocks.flows.pricing import PricedCart

#: How long an open cart lives after its last change.
CART_TTL = timedelta(days=7)
#: The most coupons and payment shares a cart may carry (as a checkout request may).
MAX_CART_COUPONS = 10
MAX_CART_PAYMENTS = 10
#: How many times an edit without a version is re-applied when concurrent edits keep winning the race.
_EDIT_ROUNDS = 50
#: How many keys of recent line additions a cart remembers, so a retried addition adds nothing.
_REMEMBERED_KEYS = 20


class CartStatus(enum.StrEnum):
    OPEN = "open"
    CHECKING_OUT = "checking_out"
    CHECKED_OUT = "checked_out"


@attrs.frozen
class CartOwner:
    """Who asks: the channel (from the API key) and, for a signed-in shopper, the member."""

    channel: str
    member_id: str | None = None


@attrs.frozen
class ServerCart:
    """A cart as the server keeps it. ``payments`` carry method and amount only, never details."""

    id: str
    channel: str
    member_id: str | None
    status: CartStatus
    version: int
    lines: tuple[CartLine, ...]
    fulfilment: Fulfilment
    coupons: tuple[str, ...]
    payments: tuple[PaymentRequest, ...]
    attribution: str | None
    order_id: str | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    #: Keys of the latest line additions (not shown to callers): a retried addition is not added twice.
    applied_keys: tuple[str, ...] = ()

    def to_cart(self, identities: Sequence[Identity] = (), payment_details: Sequence[Mapping[str, str]] = ()) -> Cart:
        """The checkout request this cart stands for; InvalidValue if it has no lines yet."""
        if not self.lines:
            raise InvalidValue(f"cart {self.id} has no lines yet: add one before quoting or checking out")
        if payment_details and len(payment_details) != len(self.payments):
            raise InvalidValue(
                f"payment details are given per payment of the cart, in its order: the cart has "
                f"{len(self.payments)} payment(s), the request gave details for {len(payment_details)}"
            )
        payments = tuple(
            attrs.evolve(requested, details=payment_details[i] if payment_details else {})
            for i, requested in enumerate(self.payments)
        )
        return Cart(
            channel=self.channel,
            lines=self.lines,
            payments=payments,
            identities=tuple(identities),
            fulfilment=self.fulfilment,
            coupons=self.coupons,
            attribution=self.attribution,
        )


class CheckoutFlows(Protocol):
    """What carts need of the order flows (:class:`retailblocks.flows.api.OrderFlows` is one)."""

    def checkout(self, cart: Cart, *, key: str) -> Order: ...
    def order(self, order_id: str) -> Order: ...


def _contents(cart: ServerCart) -> dict[str, Any]:
    return {
        "lines": [[line.sku, line.quantity] for line in cart.lines],
        "fulfilment": to_data(cart.fulfilment),
        "coupons": list(cart.coupons),
        "payments": [
            {"method": p.method, "amount": p.amount.amount if p.amount is not None else None} for p in cart.payments
        ],
        "attribution": cart.attribution,
        "applied_keys": list(cart.applied_keys),
    }


def _cart_of(row: Mapping[str, Any], currency: str) -> ServerCart:
    contents = row["contents"]
    return ServerCart(
        id=row["id"],
        channel=row["channel"],
        member_id=row["member_id"],
        status=CartStatus(row["status"]),
        version=int(row["version"]),
        lines=tuple(CartLine(str(sku), int(quantity)) for sku, quantity in contents["lines"]),
        fulfilment=from_data(contents["fulfilment"], Fulfilment),
        coupons=tuple(contents["coupons"]),
        payments=tuple(
            PaymentRequest(p["method"], Money(int(p["amount"]), currency) if p["amount"] is not None else None)
            for p in contents["payments"]
        ),
        attribution=contents.get("attribution"),
        order_id=row["order_id"],
        expires_at=as_utc(row["expires_at"]),
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
        applied_keys=tuple(contents.get("applied_keys", ())),
    )


class Carts:
    """The server-side carts of a stack; every method checks that ``owner`` may see the cart."""

    def __init__(self, stack: Runtime, flows: CheckoutFlows):
        self.stack = stack
        self.flows = flows

    # -- reading ----------------------------------------------------------------------------------

    def cart(self, cart_id: str, owner: CartOwner) -> ServerCart:
        """The cart, as ``owner`` may see it: UnknownCart for another channel's or another shopper's cart
        (or none at all), CartExpired for an open cart past its expiry."""
        check_text(cart_id, "a cart id", max_length=MAX_ID_LENGTH, allow_empty=False)
        with reading(self.stack.engine) as connection:
            row = connection.execute(sa.select(carts).where(carts.c.id == cart_id)).mappings().first()
        # One answer for every way of not being allowed to see it: nothing tells a guesser which it was.
        if row is None or row["channel"] != owner.channel:
            raise UnknownCart(f"no cart {cart_id!r} for this channel")
        if row["member_id"] is not None and row["member_id"] != owner.member_id:
            raise UnknownCart(f"no cart {cart_id!r} for this channel")
        cart = _cart_of(dict(row), self.stack.currency)
        if cart.status is CartStatus.OPEN and cart.expires_at <= self.stack.clock.now():
            raise CartExpired(f"cart {cart_id!r} expired at {cart.expires_at.isoformat()}; start a new cart")
        return cart

    # -- creating and changing ----------------------------------------------------------------------

    def create(self, owner: CartOwner, *, key: str, attribution: str | None = None) -> ServerCart:
        """A new, empty cart in ``owner``'s channel (bound to its member, if any); once per ``key``: the
        same key names the same cart, so a retried creation creates nothing more."""
        check_key(key)
        self.stack.channel(owner.channel)
        if attribution is not None:
            check_text(attribution, "a cart's attribution", max_length=MAX_TEXT_LENGTH)
        # The id is a keyed hash of the key: the same key always names the same cart, and nobody without
        # the stack's secret can guess another cart's id from its own.
        digest = hmac.new(self.stack.fingerprint_key, f"cart:{owner.channel}:{key}".encode(), hashlib.sha256)
        cart_id = "cart_" + digest.hexdigest()[:32]
        now = self.stack.clock.now()
        empty = ServerCart(
            id=cart_id,
            channel=owner.channel,
            member_id=owner.member_id,
            status=CartStatus.OPEN,
            version=1,
            lines=(),
            fulfilment=Fulfilment(FulfilmentKind.CARRY_OUT),
            coupons=(),
            payments=(),
            attribution=attribution,
            order_id=None,
            expires_at=now + CART_TTL,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.stack.engine.begin() as connection:
                connection.execute(
                    carts.insert().values(
                        id=cart_id,
                        channel=owner.channel,
                        member_id=owner.member_id,
                        status=empty.status.value,
                        version=empty.version,
                        contents=_contents(empty),
                        checkout_attempt=0,
                        order_id=None,
                        expires_at=empty.expires_at,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            pass  # created before under this key: that cart is the answer
        return self.cart(cart_id, owner)

    def add_line(
        self,
        cart_id: str,
        owner: CartOwner,
        sku: str,
        quantity: int,
        *,
        key: str | None = None,
        expected_version: int | None = None,
    ) -> ServerCart:
        """Add ``quantity`` of ``sku`` (to its line, if the cart has one). With ``key``, a retried addition
        under the same key adds nothing more."""
        self._check_sku(sku, owner.channel)
        CartLine(sku, quantity)  # InvalidValue for a quantity out of bounds, before anything is read

        def add(cart: ServerCart) -> ServerCart:
            if key is not None and key in cart.applied_keys:
                return cart
            lines = list(cart.lines)
            for i, line in enumerate(lines):
                if line.sku == sku:
                    total = line.quantity + quantity
                    if total > MAX_LINE_QUANTITY:
                        raise InvalidValue(
                            f"the cart's line of {sku!r} would hold {total} units; at most {MAX_LINE_QUANTITY:,}"
                        )
                    lines[i] = CartLine(sku, total)
                    break
            else:
                if len(lines) >= MAX_CART_LINES:
                    raise InvalidValue(f"a cart holds at most {MAX_CART_LINES} lines (distinct SKUs)")
                lines.append(CartLine(sku, quantity))
            keys = (*cart.applied_keys, key)[-_REMEMBERED_KEYS:] if key is not None else cart.applied_keys
            return attrs.evolve(cart, lines=tuple(lines), applied_keys=keys)

        return self._change(cart_id, owner, expected_version, add)

    def set_line(
        self, cart_id: str, owner: CartOwner, sku: str, quantity: int, *, expected_version: int | None = None
    ) -> ServerCart:
        """Set the quantity of the cart's line of ``sku`` (UnknownSku if it has none)."""
        CartLine(sku, quantity)

        def set_quantity(cart: ServerCart) -> ServerCart:
            _line_index(cart, sku)
            return attrs.evolve(
                cart, lines=tuple(CartLine(sku, quantity) if line.sku == sku else line for line in cart.lines)
            )

        return self._change(cart_id, owner, expected_version, set_quantity)

    def remove_line(
        self, cart_id: str, owner: CartOwner, sku: str, *, expected_version: int | None = None
    ) -> ServerCart:
        """Take the line of ``sku`` out of the cart (UnknownSku if it has none)."""

        def remove(cart: ServerCart) -> ServerCart:
            _line_index(cart, sku)
            return attrs.evolve(cart, lines=tuple(line for line in cart.lines if line.sku != sku))

        return self._change(cart_id, owner, expected_version, remove)

    def set_fulfilment(
        self, cart_id: str, owner: CartOwner, fulfilment: Fulfilment, *, expected_version: int | None = None
    ) -> ServerCart:
        """How the cart is to be handed over: carried out, picked up, or delivered (address and option)."""
        if not isinstance(fulfilment, Fulfilment):
            raise InvalidValue(f"a cart's fulfilment must be a Fulfilment (got {type(fulfilment).__name__})")
        return self._change(cart_id, owner, expected_version, lambda cart: attrs.evolve(cart, fulfilment=fulfilment))

    def set_coupons(
        self, cart_id: str, owner: CartOwner, codes: Sequence[str], *, expected_version: int | None = None
    ) -> ServerCart:
        """The coupon codes the cart presents (duplicates once); whether they apply is the quote's answer."""
        unique = tuple(dict.fromkeys(codes))
        if len(unique) > MAX_CART_COUPONS:
            raise InvalidValue(f"a cart presents at most {MAX_CART_COUPONS} coupons (got {len(unique)})")
        for code in unique:
            check_text(code, "a coupon code", max_length=MAX_SLUG_LENGTH, allow_empty=False)
        return self._change(cart_id, owner, expected_version, lambda cart: attrs.evolve(cart, coupons=unique))

    def set_payments(
        self,
        cart_id: str,
        owner: CartOwner,
        payments: Sequence[PaymentRequest],
        *,
        expected_version: int | None = None,
    ) -> ServerCart:
        """The payment methods (and amounts; None is what is left) the cart will be paid by. Details such
        as a card token are not kept: they come with the checkout."""
        if len(payments) > MAX_CART_PAYMENTS:
            raise InvalidValue(f"a cart is paid by at most {MAX_CART_PAYMENTS} payments (got {len(payments)})")
        kept: list[PaymentRequest] = []
        for requested in payments:
            if not isinstance(requested, PaymentRequest):
                raise InvalidValue(f"a cart's payment must be a PaymentRequest (got {type(requested).__name__})")
            self.stack.hooks.payment_block(requested.method)  # InvalidValue for a method no block takes
            if requested.amount is not None:
                if requested.amount.currency != self.stack.currency:
                    raise InvalidValue(
                        f"a payment's amount must be in {self.stack.currency} (got {requested.amount.currency})"
                    )
                if requested.amount.amount <= 0:
                    raise InvalidValue(f"a payment's amount must be positive (got {requested.amount.amount})")
            kept.append(PaymentRequest(requested.method, requested.amount))
        return self._change(cart_id, owner, expected_version, lambda cart: attrs.evolve(cart, payments=tuple(kept)))

    # -- pricing and checkout ---------------------------------------------------------------------

    def quote(self, cart_id: str, owner: CartOwner) -> PricedCart:
        """The cart priced exactly as checkout would price it (what ``POST /store/quotes`` answers)."""
        from retailblocks.flows.quote import quote

        cart = self.cart(cart_id, owner)
        return quote(self.stack, cart.to_cart(self._identities(cart)))

    def checkout(
        self,
        cart_id: str,
        owner: CartOwner,
        *,
        payment_details: Sequence[Mapping[str, str]] = (),
        expected_version: int | None = None,
    ) -> Order:
        """Place the cart as an order, once: a cart already checked out answers its order again; a checkout
        left half-way (its server died) is finished by this one. A refusal reopens the cart."""
        for _round in range(_EDIT_ROUNDS):
            cart = self.cart(cart_id, owner)
            if cart.status is CartStatus.CHECKED_OUT:
                assert cart.order_id is not None
                return self.flows.order(cart.order_id)
            if cart.status is CartStatus.CHECKING_OUT:
                attempt = self._attempt(cart_id)
                break
            if expected_version is not None and cart.version != expected_version:
                raise _stale(cart, expected_version)
            cart.to_cart(payment_details=payment_details)  # refuses an empty cart before it is closed
            claimed = self._update(
                cart,
                status=CartStatus.CHECKING_OUT.value,
                checkout_attempt=carts.c.checkout_attempt + 1,
                version=cart.version + 1,
                updated_at=self.stack.clock.now(),
            )
            if claimed:
                attempt = self._attempt(cart_id)
                cart = attrs.evolve(cart, status=CartStatus.CHECKING_OUT, version=cart.version + 1)
                break
        else:
            raise EnvironmentFailure(f"cart {cart_id!r} changes too often to be checked out now; try again")
        key = f"cart:{cart_id}:{attempt}"
        try:
            order = self.flows.checkout(cart.to_cart(self._identities(cart), payment_details), key=key)
        except IdempotencyConflict:
            raise  # this attempt's order may stand: the cart stays closed until a retry finishes it
        except (BusinessRejection, InvalidInput):
            # Nothing was placed: the shopper may mend the cart and try again, under the next attempt's key.
            self._settle(cart_id, attempt, status=CartStatus.OPEN.value, expires_at=self.stack.clock.now() + CART_TTL)
            raise
        self._settle(cart_id, attempt, status=CartStatus.CHECKED_OUT.value, order_id=order.id)
        return order

    # -- inside -----------------------------------------------------------------------------------

    def _check_sku(self, sku: str, channel: str) -> None:
        check_text(sku, "a cart line's SKU", max_length=MAX_ID_LENGTH, allow_empty=False)
        product = self.stack.catalog.get(sku)
        if product is None or not product.sold_in(channel):
            raise InvalidValue(f"SKU {sku!r} is not sold in channel {channel!r}")

    def _identities(self, cart: ServerCart) -> tuple[Identity, ...]:
        """The identities of the member a bound cart belongs to, so prices and coupons are theirs."""
        if cart.member_id is None:
            return ()
        with self.stack.context(cart.channel, flow="quote", read_only=True) as ctx:
            member = self.stack.hooks.maybe(membership.membership_member, ctx, cart.member_id)
        return member.identities if member is not None else ()

    def _change(
        self,
        cart_id: str,
        owner: CartOwner,
        expected_version: int | None,
        change: Callable[[ServerCart], ServerCart],
    ) -> ServerCart:
        """Apply ``change`` to the cart as it is now, by a conditional update on its version; re-applied
        to the newer cart when a concurrent edit got there first, unless the caller named a version."""
        for _round in range(_EDIT_ROUNDS):
            cart = self.cart(cart_id, owner)
            if cart.status is not CartStatus.OPEN:
                raise CartClosed(f"cart {cart_id!r} is {cart.status.value.replace('_', ' ')}: it no longer changes")
            if expected_version is not None and cart.version != expected_version:
                raise _stale(cart, expected_version)
            changed = change(cart)
            if changed == cart:
                return cart  # nothing to change (a retried addition): the version stays
            now = self.stack.clock.now()
            changed = attrs.evolve(changed, version=cart.version + 1, updated_at=now, expires_at=now + CART_TTL)
            if self._update(
                cart,
                contents=_contents(changed),
                version=changed.version,
                updated_at=now,
                expires_at=changed.expires_at,
            ):
                return changed
        raise EnvironmentFailure(f"cart {cart_id!r} changes too often to change it now; try again")

    def _update(self, cart: ServerCart, **values: Any) -> bool:
        """Write ``values`` if the cart is still open at the version it was read at."""
        with self.stack.engine.begin() as connection:
            changed = connection.execute(
                carts.update()
                .where(
                    carts.c.id == cart.id,
                    carts.c.version == cart.version,
                    carts.c.status == CartStatus.OPEN.value,
                )
                .values(**values)
            ).rowcount
        return bool(changed)

    def _attempt(self, cart_id: str) -> int:
        with reading(self.stack.engine) as connection:
            return int(
                connection.execute(sa.select(carts.c.checkout_attempt).where(carts.c.id == cart_id)).scalar_one()
            )

    def _settle(self, cart_id: str, attempt: int, **values: Any) -> None:
        """End checkout attempt ``attempt``; a no-op if another request ended it already."""
        with self.stack.engine.begin() as connection:
            connection.execute(
                carts.update()
                .where(
                    carts.c.id == cart_id,
                    carts.c.status == CartStatus.CHECKING_OUT.value,
                    carts.c.checkout_attempt == attempt,
                )
                .values(updated_at=self.stack.clock.now(), **values)
            )


def _line_index(cart: ServerCart, sku: str) -> int:
    for i, line in enumerate(cart.lines):
        if line.sku == sku:
            return i
    raise UnknownSku(f"cart {cart.id} has no line of SKU {sku!r}")


def _stale(cart: ServerCart, expected: int) -> StaleVersion:
    return StaleVersion(
        f"cart {cart.id} is at version {cart.version}, not {expected}: read it again and apply the change to it"
    )
