"""A state machine over every stock operation: on hand always equals the ledger, nothing goes negative.

Runs on SQLite only, for speed; the concurrency tests cover PostgreSQL's locking.
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from retailblocks_sql_inventory import Location, SqlInventory, SqlInventoryConfig
from retailblocks_sql_inventory.tables import allocations, levels, movements, reservation_lines
from retailblocks_sql_inventory.tables import reservations as reservation_table

from retailblocks.errors import InvalidValue, OutOfStock
from retailblocks.model import Parcel, ReservedStock, StockDemand
from retailblocks.testing import DEFAULT_CHANNELS, BlockHarness

SKUS = ["a", "b"]
LOCATIONS = ["east", "west"]

skus = st.sampled_from(SKUS)
locations = st.sampled_from(LOCATIONS)


class StockMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        config = SqlInventoryConfig(locations=[Location(name) for name in LOCATIONS])
        self.block = SqlInventory(config)
        url = f"sqlite:///{Path(self.directory.name) / 'stock.db'}"
        # An online channel only: the store channel of the default stack sells from a location this block lacks.
        self.harness = BlockHarness(self.block, url, channels=DEFAULT_CHANNELS[:1], skus=SKUS)
        self.counter = itertools.count()
        self.adjust_keys: list[tuple[str, str, int, str]] = []

    def teardown(self) -> None:
        self.harness.close()
        self.directory.cleanup()

    @initialize()
    def stock_arrives(self) -> None:
        for sku, location in itertools.product(SKUS, LOCATIONS):
            with self.harness.context(None) as ctx:
                self.block.receive(ctx, sku, location, 8)

    def _key(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    @rule(sku=skus, location=locations, quantity=st.integers(1, 6))
    def receive(self, sku: str, location: str, quantity: int) -> None:
        with self.harness.context(None) as ctx:
            self.block.receive(ctx, sku, location, quantity)

    @rule(sku=skus, location=locations, delta=st.integers(-6, 6).filter(bool))
    def adjust(self, sku: str, location: str, delta: int) -> None:
        key = self._key("adjust")
        try:
            with self.harness.context(None) as ctx:
                self.block.inventory_adjust(ctx, sku, location, delta, "test", key)
        except InvalidValue:
            return
        self.adjust_keys.append((sku, location, delta, key))

    @rule()
    def replay_an_adjustment(self) -> None:
        if self.adjust_keys:
            sku, location, delta, key = self.adjust_keys[-1]
            with self.harness.context(None) as ctx:
                self.block.inventory_adjust(ctx, sku, location, delta, "test", key)

    @rule(
        target=reservations,
        demand=st.lists(st.tuples(skus, st.integers(1, 4)), min_size=1, max_size=3),
        split=st.booleans(),
    )
    def reserve(self, demand: list[tuple[str, int]], split: bool) -> object:
        try:
            with self.harness.context("web") as ctx:
                reservation = self.block.inventory_reserve(
                    ctx,
                    [StockDemand(sku, qty) for sku, qty in demand],
                    LOCATIONS,
                    split,
                    timedelta(minutes=10),
                )
        except OutOfStock:
            return multiple()
        return reservation.id

    @rule(target=orders, reservation=consumes(reservations))
    def commit(self, reservation: str) -> str:
        order_id = self._key("order")
        try:
            with self.harness.context("web") as ctx:
                self.block.inventory_commit(ctx, reservation, order_id)
        except (OutOfStock, InvalidValue) as refused:
            # The refusals allowed: released before, or expired with its stock gone since.
            if "was released" not in str(refused) and "reservation expired" not in str(refused):
                raise
        return order_id

    @rule(reservation=reservations)
    def release(self, reservation: str) -> None:
        with self.harness.context("web") as ctx:
            self.block.inventory_release(ctx, reservation)

    @rule(minutes=st.integers(1, 12))
    def time_passes(self, minutes: int) -> None:
        self.harness.clock.advance(timedelta(minutes=minutes))
        with self.harness.context(None) as ctx:
            self.block.stack_maintain(ctx)

    @rule(order=orders, data=st.data())
    def fulfil(self, order: str, data: st.DataObject) -> None:
        held = self._held(order, "allocated")
        if not held:
            return
        (sku, location), units = data.draw(st.sampled_from(sorted(held.items())))
        quantity = data.draw(st.integers(1, units))
        with self.harness.context("web", flow_id=self._key("ship")) as ctx:
            self.block.inventory_fulfil(ctx, order, [Parcel(location, ((sku, quantity),))])

    @rule(order=orders, data=st.data(), replay=st.booleans())
    def return_units(self, order: str, data: st.DataObject, replay: bool) -> None:
        allocated = self._held(order, "allocated")
        shipped = self._held(order, "fulfilled", minus="returned")
        pairs = sorted(set(allocated) | set(shipped))
        if not pairs:
            return
        sku, location = data.draw(st.sampled_from(pairs))
        most = allocated.get((sku, location), 0) + shipped.get((sku, location), 0)
        quantity = data.draw(st.integers(1, most))
        key = self._key("return")
        for _ in range(2 if replay else 1):
            with self.harness.context("web") as ctx:
                self.block.inventory_return(ctx, order, [ReservedStock(sku, location, quantity)], key)

    def _held(self, order: str, column: str, minus: str | None = None) -> dict[tuple[str, str], int]:
        amount = allocations.c[column] - (allocations.c[minus] if minus else 0)
        with self.harness.engine.connect() as connection:
            rows = connection.execute(
                sa.select(allocations.c.sku, allocations.c.location, amount.label("units")).where(
                    allocations.c.order_id == order
                )
            ).all()
        return {(row.sku, row.location): row.units for row in rows if row.units > 0}

    @invariant()
    def on_hand_is_the_ledger_and_nothing_is_negative(self) -> None:
        with self.harness.engine.connect() as connection:
            ledger = dict(
                connection.execute(
                    sa.select(movements.c.sku + "@" + movements.c.location, sa.func.sum(movements.c.delta)).group_by(
                        movements.c.sku, movements.c.location
                    )
                ).all()
            )
            active_lines = dict(
                connection.execute(
                    sa.select(
                        reservation_lines.c.sku + "@" + reservation_lines.c.location,
                        sa.func.sum(reservation_lines.c.quantity),
                    )
                    .join(reservation_table)
                    .where(reservation_table.c.status == "active")
                    .group_by(reservation_lines.c.sku, reservation_lines.c.location)
                ).all()
            )
            allocated = dict(
                connection.execute(
                    sa.select(
                        allocations.c.sku + "@" + allocations.c.location,
                        sa.func.sum(allocations.c.allocated),
                    ).group_by(allocations.c.sku, allocations.c.location)
                ).all()
            )
            rows = connection.execute(sa.select(levels)).all()
        for row in rows:
            pair = f"{row.sku}@{row.location}"
            assert row.on_hand == (ledger.get(pair) or 0), pair
            assert row.reserved == (active_lines.get(pair) or 0), pair
            assert row.allocated == (allocated.get(pair) or 0), pair
            assert min(row.on_hand, row.reserved, row.allocated) >= 0, pair
            assert row.on_hand - row.reserved - row.allocated >= 0, pair


def test_stock_ledger_state_machine() -> None:
    run_state_machine_as_test(
        StockMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
