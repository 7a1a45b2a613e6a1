"""Marketplace orders imported as orders paid by the marketplace: the same stock guarantees as a checkout,
once per marketplace order number, settled with the marketplace as a partner."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.connectors.marketplace import MarketplaceOrder
from retailblocks.errors import IdempotencyConflict, InvalidValue, OutOfStock, PaymentDeclined
from retailblocks.manifest import ManifestError
from retailblocks.model import (
    Address,
    CartLine,
    Fulfilment,
    FulfilmentKind,
    Money,
    OrderStatus,
    PaymentRequest,
)
from retailblocks.simulation.invariants import check_invariants, stock_snapshot
from retailblocks.stack import Stack, assemble
from tests.helpers import SHOP_MANIFEST, cart, levels, make_stack, write_manifest

MARKET_MANIFEST = SHOP_MANIFEST.replace(
    "  - {id: market, type: marketplace}", "  - {id: market, type: marketplace, settles_with: tmall}"
).replace(
    "catalog:",
    "partners:\n  - {id: tmall, name: Tmall, type: platform}\ncatalog:",
)
SHANGHAI = Fulfilment(FulfilmentKind.DELIVERY, Address(country="CN", region="Shanghai", city="Shanghai", line1="1 Rd"))


def cny(text: str) -> Money:
    return Money.parse(f"{text} CNY")


def market_order(number: str, *lines: tuple[str, int], collected: Money | None = None) -> MarketplaceOrder:
    return MarketplaceOrder(
        channel="market",
        order_number=number,
        lines=[CartLine(sku, quantity) for sku, quantity in lines],
        fulfilment=SHANGHAI,
        collected=collected,
    )


def payments(stack: Stack) -> list[dict[str, object]]:
    with stack.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM marketplace_payments ORDER BY order_number")).mappings()
        return [dict(row) for row in rows]


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Stack:
    with make_stack(tmp_path, database_url, text=MARKET_MANIFEST) as opened:
        yield opened


def test_an_imported_order_is_paid_by_the_marketplace_and_takes_the_brands_stock(stack: Stack) -> None:
    before = stock_snapshot(stack)
    on_hand = levels(stack)[("BEANS", "dc")][0]
    # 2 × 50.00 and 10.00 shipping: what the marketplace collected equals what the channel's prices make.
    order = stack.import_marketplace_order(market_order("TM-1001", ("BEANS", 2), collected=cny("110.00")))
    assert order.status is OrderStatus.FULFILLED and order.channel == "market" and order.total == cny("110.00")
    assert [(p.method, p.reference, p.amount) for p in order.payments] == [("marketplace", "TM-1001", order.total)]
    assert levels(stack)[("BEANS", "dc")][0] == on_hand - 2
    [row] = payments(stack)
    assert (row["partner"], row["captured"], row["refunded"], row["status"]) == ("tmall", 11000, 0, "captured")
    stack.dispatch_events()
    assert all(invariant.ok for invariant in check_invariants(stack, before, stack.orders()))


def test_one_marketplace_order_number_is_one_order_however_often_it_is_sent(stack: Stack) -> None:
    first = stack.import_marketplace_order(market_order("TM-2", ("MUG", 1)))
    again = stack.import_marketplace_order(market_order("TM-2", ("MUG", 1)))
    assert again.id == first.id and len(payments(stack)) == 1
    with pytest.raises(IdempotencyConflict, match="different request"):
        stack.import_marketplace_order(market_order("TM-2", ("MUG", 2)))
    assert len(stack.orders()) == 1


def test_the_same_order_number_sent_at_once_from_many_threads_makes_one_order(stack: Stack) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def send() -> None:
        start.wait()
        try:
            results.append(stack.import_marketplace_order(market_order("TM-RACE", ("TEA", 1))).id)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(set(results)) == 1 and len(results) == 6
    assert len(payments(stack)) == 1 and len(stack.orders()) == 1


def test_marketplace_orders_and_web_checkouts_racing_for_the_last_units_never_oversell(
    tmp_path: Path, database_url: str
) -> None:
    with make_stack(tmp_path, database_url, text=MARKET_MANIFEST, stock=0) as stack:
        stack.receive_stock("BEANS", "dc", 4, key="receive-beans")
        sold: list[str] = []
        refused: list[str] = []
        start = threading.Barrier(8)

        def buy(index: int) -> None:
            start.wait()
            try:
                if index % 2:
                    stack.import_marketplace_order(market_order(f"TM-{index}", ("BEANS", 1)))
                else:
                    stack.checkout(cart(("BEANS", 1), channel="web"), key=f"web-{index}")
                sold.append(str(index))
            except OutOfStock:
                refused.append(str(index))

        threads = [threading.Thread(target=buy, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(sold) == 4 and len(refused) == 4
        assert sum(on_hand for (sku, _), (on_hand, _, _) in levels(stack).items() if sku == "BEANS") == 0


def test_a_price_the_channel_does_not_make_imports_nothing(stack: Stack) -> None:
    before = levels(stack)
    with pytest.raises(InvalidValue, match=r"collected 99.00 CNY but channel 'market' prices it at 110.00 CNY"):
        stack.import_marketplace_order(market_order("TM-3", ("BEANS", 2), collected=cny("99.00")))
    assert stack.orders() == [] and payments(stack) == [] and levels(stack) == before
    # Once the figures agree the same order number imports.
    order = stack.import_marketplace_order(market_order("TM-3", ("BEANS", 2), collected=cny("110.00")))
    assert order.status is OrderStatus.FULFILLED


def test_a_shop_channel_cannot_pay_with_the_marketplace_method(stack: Stack) -> None:
    before = levels(stack)
    free = cart(("BEANS", 1), channel="web", pay=(PaymentRequest("marketplace", details={"order_number": "x"}),))
    with pytest.raises(PaymentDeclined, match="only a marketplace channel"):
        stack.checkout(free, key="web-free")
    [failed] = stack.orders()
    assert failed.status is OrderStatus.FAILED and levels(stack) == before
    with pytest.raises(InvalidValue, match="only a marketplace's orders are imported"):
        stack.import_marketplace_order(
            MarketplaceOrder(channel="web", order_number="TM-9", lines=[CartLine("MUG", 1)], fulfilment=SHANGHAI)
        )
    with pytest.raises(InvalidValue, match="order number"):
        stack.checkout(cart(("BEANS", 1), channel="market", pay=(PaymentRequest("marketplace"),)), key="no-number")


def test_settlement_with_the_marketplace_draws_what_it_collected_less_refunds(stack: Stack) -> None:
    kept = stack.import_marketplace_order(market_order("TM-10", ("BEANS", 2), ("TEA", 1)))
    cancelled = stack.import_marketplace_order(market_order("TM-11", ("MUG", 1)))
    stack.cancel(cancelled.id, reason="buyer cancelled on the marketplace")
    refunded = stack.import_marketplace_order(market_order("TM-12", ("MUG", 2)))
    stack.refund(refunded.id, {0: 1}, key="refund-tm-12", reason="one mug broken")
    stack.checkout(cart(("BEANS", 1), channel="web"), key="web-1")  # not the marketplace's
    statement = stack.settlement("tmall", date(2026, 3, 1), date(2026, 3, 31))
    sales = {line.reference: line.amount for line in statement.lines if line.kind == "marketplace_sale"}
    after_refund = refunded.total - stack.order(refunded.id).refunded  # type: ignore[operator]
    assert sales == {kept.id: kept.total, refunded.id: after_refund}
    assert statement.total("marketplace_sale") == kept.total.amount + after_refund.amount
    by_payment = {row["order_number"]: row["captured"] - row["refunded"] for row in payments(stack)}  # type: ignore[operator]
    assert by_payment == {"TM-10": kept.total.amount, "TM-11": 0, "TM-12": after_refund.amount}


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (("{id: web, type: online}", "{id: web, type: online, settles_with: tmall}"), "only a marketplace channel"),
        (("settles_with: tmall}", "settles_with: tmal}"), "unknown partner 'tmal'; did you mean 'tmall'"),
    ],
)
def test_the_manifest_says_where_a_settling_channel_is_wrong(
    tmp_path: Path, wrong: tuple[str, str], message: str
) -> None:
    text = MARKET_MANIFEST.replace(*wrong)
    path = write_manifest(tmp_path, f"sqlite:///{tmp_path}/shop.db", text)
    with pytest.raises(ManifestError, match=message) as raised:
        assemble(path)
    assert "blocks.yaml:" in str(raised.value)
