"""Many checkouts at once: the last units are sold exactly once, and crossing orders never deadlock."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from retailblocks.errors import OutOfStock


def run_threads(count: int, work: Callable[[int], str]) -> list[str]:
    """Run ``work(i)`` in ``count`` threads released together; their outcomes, in thread order."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = [""] * count

    def runner(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = work(index)
        except Exception as error:  # a thread must report, not vanish
            outcomes[index] = f"error: {type(error).__name__}: {error}"

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a checkout hung"
    return outcomes


def test_twenty_checkouts_for_five_units_sell_exactly_five(inventory: Any) -> None:
    inventory.receive("last-mug", "wh-east", 5)

    def checkout(_index: int) -> str:
        try:
            inventory.reserve({"last-mug": 1}, locations=["wh-east"])
        except OutOfStock:
            return "out of stock"
        return "reserved"

    outcomes = run_threads(20, checkout)

    assert outcomes.count("reserved") == 5, outcomes
    assert outcomes.count("out of stock") == 15, outcomes
    on_hand, reserved, allocated = inventory.level("last-mug", "wh-east")
    assert (on_hand, reserved, allocated) == (5, 5, 0)
    assert on_hand - reserved - allocated >= 0


def test_multi_sku_checkouts_in_opposite_orders_do_not_deadlock(inventory: Any) -> None:
    skus = ["sku-a", "sku-b", "sku-c"]
    for sku in skus:
        inventory.receive(sku, "wh-east", 40)
        inventory.receive(sku, "wh-west", 40)
    shuffler = random.Random(7)
    orders = [shuffler.sample(skus, k=len(skus)) for _ in range(16)]

    def checkout(index: int) -> str:
        # Opposite orders of the same SKUs: sorted row access keeps PostgreSQL from deadlocking.
        order = orders[index] if index % 2 else list(reversed(orders[index - 1 if index else 0]))
        reservation = inventory.reserve([(sku, 3) for sku in order])
        if index % 3 == 0:
            inventory.release(reservation.id)
        else:
            inventory.commit(reservation.id, f"order-{index}")
        return "done"

    outcomes = run_threads(16, checkout)

    assert outcomes == ["done"] * 16, outcomes
    committed = sum(1 for index in range(16) if index % 3)
    for sku in skus:
        east = inventory.level(sku, "wh-east")
        west = inventory.level(sku, "wh-west")
        assert east[1] + west[1] == 0
        assert east[2] + west[2] == committed * 3
        assert min(east[0] - east[2], west[0] - west[2]) >= 0


def test_a_commit_racing_the_expiry_wins_or_loses_as_a_whole(inventory: Any) -> None:
    from datetime import timedelta

    inventory.receive("mug", "wh-east", 10)
    reservations = [inventory.reserve({"mug": 1}, ttl=timedelta(minutes=1)) for _ in range(8)]
    inventory.harness.clock.advance(timedelta(minutes=2))

    def work(index: int) -> str:
        if index == 0:
            inventory.maintain()
            return "maintained"
        inventory.commit(reservations[index - 1].id, f"order-{index}")
        return "committed"

    outcomes = run_threads(9, work)

    assert all(not outcome.startswith("error") for outcome in outcomes), outcomes
    # Every commit ends allocated (a commit after the expiry takes the stock again); nothing is lost.
    assert inventory.level("mug", "wh-east") == (10, 0, 8)
