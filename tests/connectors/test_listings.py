"""What marketplace and social channels may sell, published once per change and readable in bulk."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from retailblocks.connectors.listings import CHANGED
from retailblocks.hookspecs import inventory
from retailblocks.stack import Stack
from tests.connectors.test_marketplace import MARKET_MANIFEST, market_order
from tests.helpers import cart, make_stack

LISTED = MARKET_MANIFEST.replace(
    "  - {id: store-a, type: store, location: store-a}",
    "  - {id: store-a, type: store, location: store-a}\n  - {id: live, type: social}",
).replace(
    "        market: {locations: [dc]}",
    "        market: {locations: [dc], safety_stock: 2}\n        live: {locations: [dc]}",
)


def published(stack: Stack) -> list[tuple[str | None, str, int, int | None]]:
    return [
        (event.channel, event.payload["sku"], event.payload["sellable"], event.payload["previous"])
        for event in stack.events(event_type=CHANGED, limit=1000)
    ]


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Stack:
    with make_stack(tmp_path, database_url, text=LISTED) as opened:
        yield opened


def test_the_first_publication_tells_each_listed_channel_everything_then_only_changes(stack: Stack) -> None:
    first = stack.publish_listings()
    # 10 units at the warehouse; the marketplace keeps 2 back as safety stock. Web and store are not told.
    assert sorted((u.channel, u.sku, u.sellable, u.previous) for u in first) == [
        ("live", "BEANS", 10, None),
        ("live", "MUG", 10, None),
        ("live", "TEA", 10, None),
        ("market", "BEANS", 8, None),
        ("market", "MUG", 8, None),
        ("market", "TEA", 8, None),
    ]
    assert stack.publish_listings() == []
    stack.import_marketplace_order(market_order("TM-1", ("BEANS", 3)))
    stack.checkout(cart(("MUG", 1), channel="store-a", delivery=False), key="till-1")  # the store's own stock
    changes = stack.publish_listings()
    assert sorted((u.channel, u.sku, u.sellable, u.previous) for u in changes) == [
        ("live", "BEANS", 7, 10),
        ("market", "BEANS", 5, 8),
    ]
    stack.receive_stock("TEA", "dc", 5, key="tea-in")
    assert sorted((u.channel, u.sku, u.sellable) for u in stack.publish_listings()) == [
        ("live", "TEA", 15),
        ("market", "TEA", 13),
    ]
    assert sorted(published(stack)) == sorted(
        (u[0], u[1], u[2], u[3])
        for u in [
            ("live", "BEANS", 10, None),
            ("live", "MUG", 10, None),
            ("live", "TEA", 10, None),
            ("market", "BEANS", 8, None),
            ("market", "MUG", 8, None),
            ("market", "TEA", 8, None),
            ("live", "BEANS", 7, 10),
            ("market", "BEANS", 5, 8),
            ("live", "TEA", 15, 10),
            ("market", "TEA", 13, 8),
        ]
    )


def test_the_bulk_feed_is_what_availability_says_the_channel_may_sell(stack: Stack) -> None:
    stack.import_marketplace_order(market_order("TM-2", ("TEA", 4)))
    feed = stack.channel_stock("market")
    assert feed == dict(stack.availability("market", sorted(feed)).sellable) == {"BEANS": 8, "MUG": 8, "TEA": 4}
    assert stack.channel_stock("web") == {"BEANS": 20, "MUG": 20, "TEA": 16}


def test_publishers_running_at_once_publish_each_change_once(stack: Stack) -> None:
    stack.publish_listings()
    for index in range(4):
        stack.import_marketplace_order(market_order(f"TM-{index}", ("BEANS", 1)))
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def publish() -> None:
        start.wait()
        try:
            stack.publish_listings()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=publish) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    beans = [(channel, sellable, previous) for channel, sku, sellable, previous in published(stack) if sku == "BEANS"]
    # However the stock events were split between the publishers, each channel's figures chain without a gap
    # or a repeat, and end where the stock is.
    for channel, start_at, end_at in (("market", 8, 4), ("live", 10, 6)):
        chain = [(sellable, previous) for c, sellable, previous in beans if c == channel]
        assert chain[0] == (start_at, None) and chain[-1][0] == end_at
        assert all(chain[i][0] == chain[i + 1][1] for i in range(len(chain) - 1))


def test_a_publisher_that_dies_half_way_publishes_nothing_and_the_next_one_everything(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.publish_listings()
    stack.import_marketplace_order(market_order("TM-9", ("MUG", 2)))
    real_call = stack.hooks.call
    asked: list[str] = []

    def dies_on_the_second_channel(spec, ctx, *args, **kwargs):  # type: ignore[no-untyped-def]
        if spec is inventory.inventory_available and ctx.flow == "listings":
            asked.append(ctx.channel.id)
            if len(asked) == 2:
                raise RuntimeError("the process died")
        return real_call(spec, ctx, *args, **kwargs)

    monkeypatch.setattr(stack.hooks, "call", dies_on_the_second_channel)
    with pytest.raises(RuntimeError):
        stack.publish_listings()
    monkeypatch.undo()
    assert [row for row in published(stack) if row[1] == "MUG" and row[3] is not None] == []
    assert sorted((u.channel, u.sku, u.sellable) for u in stack.publish_listings()) == [
        ("live", "MUG", 8),
        ("market", "MUG", 6),
    ]
