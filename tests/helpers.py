"""Shared helpers for the core's tests: a small but complete merchant, and ways to build carts."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retailblocks import assemble
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.hookspecs import inventory
from retailblocks.model import (
    Address,
    Cart,
    CartLine,
    Fulfilment,
    FulfilmentKind,
    Identity,
    Money,
    PaymentRequest,
)
from retailblocks.stack import Stack

SHOP_MANIFEST = """
version: 1
merchant: {id: test-shop, name: Test Shop, currency: CNY}
database: "DATABASE"
channels:
  - {id: web, type: online}
  - {id: market, type: marketplace}
  - {id: store-a, type: store, location: store-a}
catalog:
  - {sku: BEANS, title: Beans, price: "50.00 CNY", category: beans, weight: 300g}
  - {sku: MUG, title: Mug, price: "30.00 CNY", category: merch, weight: 400g}
  - {sku: TEA, title: Tea, price: "20.00 CNY", category: tea, weight: 100g}
blocks:
  - use: sql-inventory
    id: inventory
    config:
      locations:
        - {id: dc, kind: warehouse, latitude: 31.37, longitude: 121.26}
        - {id: store-a, kind: store, latitude: 31.19, longitude: 121.44}
      channels:
        web: {locations: [dc, store-a]}
        market: {locations: [dc]}
  - use: sandbox-card
    id: card
    config: {secret_key: sk_test_core_tests}
  - use: stored-value
  - use: loyalty
    config:
      points_value: "1.00 CNY"
      tiers: [{name: base, threshold: "0.00 CNY"}, {name: gold, threshold: "500.00 CNY"}]
  - use: logistics
    config:
      zones: [{id: cn, countries: [CN]}]
      carriers:
        - id: sf
          name: SF
          options:
            - {id: sf-std, name: Standard, zones: [cn], rates: [{price: "10.00 CNY"}], free_over: "200.00 CNY"}
      locations:
        - {id: dc, latitude: 31.37, longitude: 121.26}
        - {id: store-a, latitude: 31.19, longitude: 121.44}
      pickup_locations: [store-a]
  - use: promotions
    config:
      promotions:
        - {id: tea-10, skus: [TEA], value_type: percentage, value: 10}
        - {id: save5, code: SAVE5, target: order, allocation: across, value_type: fixed, value: "5.00 CNY",
           usage_limit: 1000}
routing:
  payment: {card: card, gift_card: stored-value, wallet: stored-value, points: loyalty}
"""

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"


def write_manifest(directory: Path, database_url: str, text: str = SHOP_MANIFEST) -> Path:
    path = directory / "blocks.yaml"
    path.write_text(textwrap.dedent(text).replace("DATABASE", database_url), encoding="utf-8")
    return path


def make_stack(
    directory: Path, database_url: str, *, text: str = SHOP_MANIFEST, stock: int = 10, seed: int = 0
) -> Stack:
    """A stack over a fresh database with ``stock`` units of every SKU at the warehouse and the store."""
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    # Leases on the test's clock too, so a test expires them by moving it.
    stack = assemble(write_manifest(directory, database_url, text), clock=clock, ids=RandomIds(seed), lease_clock=clock)
    if stock:
        receive(stack, dict.fromkeys(stack.catalog, stock), locations=("dc", "store-a"))
    return stack


def receive(stack: Stack, quantities: dict[str, int], *, locations: tuple[str, ...] = ("dc",)) -> None:
    with stack.context(flow="test") as ctx:
        for location in locations:
            for sku, quantity in quantities.items():
                stack.hooks.call(
                    inventory.inventory_adjust,
                    ctx,
                    sku,
                    location,
                    quantity,
                    "received",
                    f"receive-{sku}-{location}-{quantity}-{stack.ids.new_id('k')}",
                )


def card(number: str = CARD_OK, amount: Money | None = None) -> PaymentRequest:
    return PaymentRequest("card", amount, {"card_number": number})


def cart(
    *lines: tuple[str, int],
    channel: str = "web",
    pay: tuple[PaymentRequest, ...] | None = None,
    delivery: bool = True,
    **extra: Any,
) -> Cart:
    fulfilment = (
        Fulfilment(FulfilmentKind.DELIVERY, Address(country="CN", region="Shanghai", latitude=31.2, longitude=121.45))
        if delivery and channel != "store-a"
        else Fulfilment(FulfilmentKind.CARRY_OUT)
    )
    return Cart(
        channel=channel,
        lines=tuple(CartLine(s, q) for s, q in lines),
        payments=pay if pay is not None else (card(),),
        fulfilment=extra.pop("fulfilment", fulfilment),
        **extra,
    )


def member(phone: str) -> tuple[Identity, ...]:
    return (Identity("phone", phone),)


def levels(stack: Stack) -> dict[tuple[str, str], tuple[int, int, int]]:
    with stack.context(flow="test", read_only=True) as ctx:
        return {
            (level.sku, level.location): (level.on_hand, level.reserved, level.allocated)
            for level in stack.hooks.call(inventory.inventory_levels, ctx, [])
        }
