"""One order across every block: checkout, its rejections, cancel and refund, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.errors import IdempotencyConflict, NotRefundable, OutOfStock, PaymentDeclined, PromotionRejected
from retailblocks.events import read_events
from retailblocks.hookspecs import membership, payment
from retailblocks.model import Fulfilment, FulfilmentKind, Money, OrderStatus, PaymentRequest
from retailblocks.simulation.invariants import check_invariants, stock_snapshot
from tests.helpers import CARD_DECLINED, SHOP_MANIFEST, card, cart, levels, make_stack, member


def cny(text: str) -> Money:
    return Money.parse(f"{text} CNY")


def gateway_charges(stack) -> int:  # type: ignore[no-untyped-def]
    with stack.engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM sandbox_card_gateway_charges")).scalar())


def test_an_order_crosses_every_block(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        before = stock_snapshot(stack)
        order = stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("+8613800000001")), key="k1")
        assert order.status is OrderStatus.FULFILLED
        # 2 × 50.00 + 20.00 − 10% on tea (2.00); shipping 10.00 (under the 200.00 free threshold)
        assert order.subtotal == cny("120.00") and order.discount == cny("2.00") and order.shipping == cny("10.00")
        assert order.total == cny("128.00")
        assert sum((line.total for line in order.lines), cny("0")) + order.shipping == order.total
        assert order.member_id is not None and len(order.shipments) == 1
        with stack.context(read_only=True) as ctx:
            points = stack.hooks.maybe(membership.membership_member, ctx, order.member_id)
        assert points is not None and points.points > 0
        on_hand = {key: value[0] for key, value in levels(stack).items()}
        assert on_hand[("BEANS", "dc")] + on_hand[("BEANS", "store-a")] == 18
        types = [event.type for event in read_events(stack, order_id=order.id, limit=500)]
        for expected in (
            "order.created",
            "stock.reserved",
            "payment.authorized",
            "order.placed",
            "payment.captured",
            "shipment.created",
            "points.earned",
            "order.completed",
        ):
            assert expected in types, expected
        assert all(i.ok for i in check_invariants(stack, before, stack.orders())[:5])


def test_the_same_key_returns_the_same_order_and_charges_once(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        first = stack.checkout(cart(("MUG", 1)), key="same")
        again = stack.checkout(cart(("MUG", 1)), key="same")
        assert again.id == first.id and gateway_charges(stack) == 1
        with pytest.raises(IdempotencyConflict, match="different request"):
            stack.checkout(cart(("MUG", 2)), key="same")


def test_a_declined_card_releases_the_stock_and_replays_the_rejection(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        with pytest.raises(PaymentDeclined):
            stack.checkout(cart(("BEANS", 3), pay=(card(CARD_DECLINED),)), key="declined")
        assert all(reserved == 0 and allocated == 0 for _, reserved, allocated in levels(stack).values())
        [order] = stack.orders()
        assert order.status is OrderStatus.FAILED and "payment_declined" in (order.failure or "")
        with pytest.raises(PaymentDeclined):
            stack.checkout(cart(("BEANS", 3), pay=(card(CARD_DECLINED),)), key="declined")
        assert len(stack.orders()) == 1


def test_split_payment_declined_second_share_voids_the_first(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        with stack.context() as ctx:
            code = stack.hooks.call(payment.payment_issue, ctx, "gift_card", cny("50.00"), None, "issue-1")
        gift = PaymentRequest("gift_card", cny("30.00"), {"code": code})
        with pytest.raises(PaymentDeclined):
            stack.checkout(cart(("BEANS", 2), pay=(gift, card(CARD_DECLINED))), key="split-bad")
        order = stack.checkout(cart(("BEANS", 2), pay=(gift, card())), key="split-ok")
        assert [p.method for p in order.payments] == ["gift_card", "card"]
        assert sum(p.amount.amount for p in order.payments) == order.total.amount
        refunded = stack.refund(order.id, key="refund-all")
        assert refunded.status is OrderStatus.REFUNDED and refunded.refunded == order.total


def test_out_of_stock_counts_lines_of_one_sku_together(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url, stock=0) as stack:
        from tests.helpers import receive

        receive(stack, {"TEA": 3}, locations=("dc",))
        with pytest.raises(OutOfStock):
            stack.checkout(cart(("TEA", 2), ("TEA", 2), channel="market"), key="two-lines")
        assert (
            stack.checkout(cart(("TEA", 2), ("TEA", 1), channel="market"), key="fits").status is OrderStatus.FULFILLED
        )


def test_an_unknown_coupon_is_rejected_and_a_known_one_applies(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        with pytest.raises(PromotionRejected, match="NOPE"):
            stack.checkout(cart(("MUG", 1), coupons=("NOPE",)), key="c1")
        order = stack.checkout(cart(("MUG", 1), coupons=("save5",)), key="c2")
        assert order.discount == cny("5.00") and any(a.coupon for a in order.adjustments)


def test_pickup_reserves_at_the_store(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(
            cart(("MUG", 2), fulfilment=Fulfilment(FulfilmentKind.PICKUP, pickup_location="store-a")), key="pickup"
        )
        assert order.shipping == cny("0.00")
        assert levels(stack)[("MUG", "store-a")][0] == 8 and levels(stack)[("MUG", "dc")][0] == 10


def test_cancel_undoes_everything_checkout_did(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(cart(("BEANS", 2), identities=member("+8613800000002"), coupons=("SAVE5",)), key="k")
        assert order.member_id is not None
        cancelled = stack.cancel(order.id, reason="changed mind")
        assert cancelled.status is OrderStatus.CANCELLED and cancelled.refunded == order.total
        assert {key: value for key, value in levels(stack).items() if key[0] == "BEANS"} == {
            ("BEANS", "dc"): (10, 0, 0),
            ("BEANS", "store-a"): (10, 0, 0),
        }
        with stack.context(read_only=True) as ctx:
            person = stack.hooks.maybe(membership.membership_member, ctx, order.member_id)
        assert person is not None and person.points == 0
        assert stack.cancel(order.id).status is OrderStatus.CANCELLED  # idempotent


def test_a_store_sale_cannot_be_cancelled_but_can_be_refunded_by_line(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url) as stack:
        order = stack.checkout(
            cart(("MUG", 3), ("TEA", 1), channel="store-a", identities=member("+8613800000003")), key="store"
        )
        with pytest.raises(NotRefundable, match="already left"):
            stack.cancel(order.id)
        partly = stack.refund(order.id, {0: 1}, key="r1")
        assert partly.status is OrderStatus.PARTIALLY_REFUNDED
        assert partly.refunded == cny("30.00") and partly.lines[0].refunded_quantity == 1
        assert stack.refund(order.id, {0: 1}, key="r1").refunded == cny("30.00")  # replay
        with pytest.raises(NotRefundable):
            stack.refund(order.id, {0: 3}, key="r2")
        rest = stack.refund(order.id, key="r3")
        assert rest.status is OrderStatus.REFUNDED and rest.refunded == order.total
        assert levels(stack)[("MUG", "store-a")][0] == 10


@pytest.mark.parametrize(
    ("lines", "coupons", "shipping", "discount"),
    [
        # 2 × 50.00, nothing off: 10.00 shipping, half of it taken off by the shipping promotion.
        ((("BEANS", 2),), (), "5.00", "0.00"),
        # 4 × 50.00 reaches the free-shipping 200.00 undiscounted, but not once SAVE5 takes 5.00 off: the
        # cart is quoted again (10.00) and priced again with that shipping.
        ((("BEANS", 4),), ("SAVE5",), "5.00", "5.00"),
        # 5 × 50.00 less 5.00 stays over 200.00: free either way, nothing for the shipping promotion.
        ((("BEANS", 5),), ("SAVE5",), "0.00", "5.00"),
    ],
)
def test_shipping_is_quoted_after_the_discounts_and_priced_by_shipping_promotions(
    tmp_path: Path,
    database_url: str,
    lines: tuple[tuple[str, int], ...],
    coupons: tuple[str, ...],
    shipping: str,
    discount: str,
) -> None:
    text = SHOP_MANIFEST.replace(
        "      promotions:\n",
        "      promotions:\n        - {id: ship-half, target: shipping, value_type: percentage, value: 50}\n",
    )
    with make_stack(tmp_path, database_url, text=text) as stack:
        order = stack.checkout(cart(*lines, coupons=coupons), key=f"ship-{lines[0][1]}-{len(coupons)}")
        assert order.shipping == cny(shipping) and order.discount == cny(discount)
        assert order.total == order.subtotal - order.discount + order.shipping
