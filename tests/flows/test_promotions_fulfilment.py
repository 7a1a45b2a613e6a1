"""A cart whose lines leave different ways, priced through a stack: a pick-up promotion, a promotion on one
delivery option written before tax on tax-inclusive prices, and a 'once' promotion for one region over a
whole-cart threshold each reach only their lines. Checkout places such a cart as one order that leaves in
several groups, at what its quote said (tests/flows/test_several_fulfilments.py follows the groups)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from retailblocks.manifest import ManifestError
from retailblocks.model import Address, Cart, CartLine, Fulfilment, FulfilmentKind, Money, OrderStatus
from tests.helpers import SHOP_MANIFEST, card, make_stack, write_manifest

PROMOTIONS = """
  - use: promotions
    config:
      taxes: {prices_include_tax: true, default_rate: "13%", category_rates: {tea: "9%"}}
      promotions:
        - {id: collect, fulfilments: [pickup], value_type: percentage, value: 10}
        - {id: express, delivery_options: [sf-express], value_type: fixed, value: "2.00 CNY",
           amounts: tax_exclusive}
        - {id: two-cheapest, allocation: once, max_quantity: 2, value_type: percentage, value: 50,
           regions: [Shanghai], min_cart_subtotal: "150.00 CNY"}
routing:
"""
EXPRESS = '            - {id: sf-express, name: Express, zones: [cn], rates: [{price: "20.00 CNY"}]}\n'


def manifest(promotions: str = PROMOTIONS) -> str:
    head, _, tail = SHOP_MANIFEST.partition("  - use: promotions\n")
    text = head + promotions.lstrip("\n") + tail.partition("routing:\n")[2]
    standard = 'free_over: "200.00 CNY"}\n'
    return text.replace(standard, standard + EXPRESS)


SHANGHAI = Address(country="CN", region="Shanghai", latitude=31.2, longitude=121.45)


def mixed_cart() -> Cart:
    return Cart(
        channel="web",
        lines=(
            CartLine("BEANS", 2, Fulfilment(FulfilmentKind.PICKUP, pickup_location="store-a")),
            CartLine("MUG", 1),  # the cart's: delivered by the standard option
            CartLine("TEA", 1, Fulfilment(FulfilmentKind.DELIVERY, SHANGHAI, option_id="sf-express")),
        ),
        payments=(card(),),
        fulfilment=Fulfilment(FulfilmentKind.DELIVERY, SHANGHAI, option_id="sf-std"),
    )


def cny(minor: int) -> Money:
    return Money(minor, "CNY")


def test_a_mixed_fulfilment_cart_is_quoted_and_checked_out(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url, text=manifest()) as stack:
        quoted = stack.quote(mixed_cart())
        shares = {
            (adjustment.promotion_id, index): share.amount
            for adjustment in quoted.adjustments
            for index, share in adjustment.line_amounts
        }
        assert shares == {
            ("collect", 0): 1000,  # 10% of the beans picked up
            ("express", 2): 218,  # 2.00 before tax, at tea's 9%, on the tea sent express
            # The two cheapest units going to Shanghai: tea (half of what is left of 20.00), then the mug.
            ("two-cheapest", 2): 891,
            ("two-cheapest", 1): 1500,
        }
        # Shipping quoted per way the lines leave: the pick-up free, the mug by the standard option (10.00),
        # the tea express (20.00).
        assert quoted.discount == cny(3609) and quoted.shipping == cny(3000) and quoted.total == cny(14391)
        assert [(group.lines, group.shipping) for group in quoted.groups] == [
            ((0,), cny(0)),
            ((1,), cny(1000)),
            ((2,), cny(2000)),
        ]
        # Checkout places it as one order, at what the quote said, each line keeping its discount.
        order = stack.checkout(mixed_cart(), key="mixed-1")
        assert order.status is OrderStatus.FULFILLED and order.total == quoted.total
        assert [line.discount.amount for line in order.lines] == [1000, 1500, 1109]
        assert [group.option_id for group in order.groups] == ["click-and-collect", "sf-std", "sf-express"]
        assert len(order.shipments) == 3


def test_the_same_cart_in_another_order_is_priced_the_same(tmp_path: Path, database_url: str) -> None:
    with make_stack(tmp_path, database_url, text=manifest(), stock=0) as stack:
        cart = mixed_cart()
        reversed_cart = Cart(
            channel=cart.channel, lines=cart.lines[::-1], payments=cart.payments, fulfilment=cart.fulfilment
        )
        first, second = stack.quote(cart), stack.quote(reversed_cart)
        assert first.total == second.total
        assert [line.discount for line in first.lines] == [line.discount for line in second.lines][::-1]


TAXES_LINE = '      taxes: {prices_include_tax: true, default_rate: "13%", category_rates: {tea: "9%"}}\n'


@pytest.mark.parametrize(
    ("written", "instead", "where", "problem"),
    [
        ("allocation: once, max_quantity: 2,", "allocation: once,", "promotions[2]", "needs 'max_quantity'"),
        (TAXES_LINE, "", "promotions[1].amounts", "tax-exclusive, which needs 'taxes'"),
        ("fulfilments: [pickup]", "fulfilments: [courier]", "promotions[0].fulfilments", "not a fulfilment kind"),
        ('default_rate: "13%"', 'default_rate: "13"', "taxes.default_rate", "must be a tax rate"),
    ],
)
def test_a_bad_promotion_is_refused_where_it_is_written(
    tmp_path: Path, sqlite_url: str, written: str, instead: str, where: str, problem: str
) -> None:
    from retailblocks.stack import plan

    assert written in PROMOTIONS
    path = write_manifest(tmp_path, sqlite_url, manifest(PROMOTIONS.replace(written, instead)))
    with pytest.raises(ManifestError) as error:
        plan(path)
    message = str(error.value)
    assert re.search(r"blocks\.yaml:\d+:\d+: ", message), message
    assert where in message and problem in message


def test_a_line_without_its_own_fulfilment_is_fingerprinted_as_before_lines_had_one() -> None:
    from retailblocks.flows.checkout import cart_fingerprint_data

    plain = Cart(channel="web", lines=(CartLine("MUG", 1),), payments=(card(),))
    assert cart_fingerprint_data(plain, b"k")["lines"] == [{"sku": "MUG", "quantity": 1}]
    own = mixed_cart()
    assert "fulfilment" in cart_fingerprint_data(own, b"k")["lines"][0]
