"""Planning without a database, and configuration that says what is wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest
from retailblocks_sql_inventory import ChannelSourcing, Location, SqlInventory, SqlInventoryConfig
from retailblocks_sql_inventory.engine import PlannedLine, Shortfall, plan_reservation, sum_demands

from retailblocks.errors import InvalidValue
from retailblocks.model import Channel, Merchant, StockDemand


def test_sum_demands_merges_lines_of_one_sku_sorted() -> None:
    demands = [StockDemand("b", 1), StockDemand("a", 2), StockDemand("b", 3)]
    assert sum_demands(demands) == {"a": 2, "b": 4}
    assert list(sum_demands(demands)) == ["a", "b"]


def test_plan_prefers_the_first_location_covering_everything() -> None:
    available = {("a", "x"): 5, ("a", "y"): 5, ("b", "y"): 1}
    plan = plan_reservation({"a": 2, "b": 1}, ["x", "y"], available, {}, allow_split=True)
    assert plan == [PlannedLine("a", "y", 2), PlannedLine("b", "y", 1)]


def test_plan_splits_in_location_order_and_back_orders_the_rest_at_the_first() -> None:
    available = {("a", "x"): 1, ("a", "y"): 2}
    plan = plan_reservation({"a": 5}, ["x", "y"], available, {"a": 2}, allow_split=True)
    assert plan == [PlannedLine("a", "x", 3, backordered=2), PlannedLine("a", "y", 2)]


def test_plan_ignores_negative_availability_and_reports_the_short_sku() -> None:
    available = {("a", "x"): -3, ("b", "x"): 4}
    outcome = plan_reservation({"a": 1, "b": 1}, ["x"], available, {}, allow_split=True)
    assert isinstance(outcome, Shortfall)
    assert (outcome.sku, outcome.requested, outcome.available) == ("a", 1, 0)


def test_plan_without_split_explains_when_items_sit_in_different_places() -> None:
    available = {("a", "x"): 1, ("b", "y"): 1}
    outcome = plan_reservation({"a": 1, "b": 1}, ["x", "y"], available, {}, allow_split=False)
    assert isinstance(outcome, Shortfall)
    assert "no single location" in outcome.message
    assert plan_reservation({}, [], {}, {}, allow_split=False) == []
    assert isinstance(plan_reservation({"a": 1}, [], {}, {"a": 5}, allow_split=True), Shortfall)


def test_config_rejects_unknown_channel_locations_naming_them() -> None:
    with pytest.raises(InvalidValue, match=r"channels\.web\.locations\[1\]: unknown location 'x'"):
        SqlInventoryConfig(
            locations=[Location("main")],
            channels={"web": ChannelSourcing(["main", "x", "y"])},
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"locations": [Location("a"), Location("a")]}, "unique ids"),
        ({"reservation_ttl": timedelta(0)}, "positive duration"),
        ({"backorders": {"sku": -1}}, "units >= 0"),
        ({"low_stock_threshold": -1}, ">= 0"),
    ],
)
def test_config_rejects_bad_values(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        SqlInventoryConfig(**options)  # type: ignore[arg-type]


def test_config_rejects_bad_channel_and_location_values() -> None:
    with pytest.raises(InvalidValue, match="safety_stock"):
        ChannelSourcing(["main"], safety_stock=-2)
    with pytest.raises(InvalidValue, match="latitude"):
        Location("main", latitude=123.0)
    with pytest.raises(InvalidValue, match="'id' must be a non-empty string"):
        Location("")
    with pytest.raises(InvalidValue, match="'warehouse' or 'store'"):
        Location("main", kind="shop")  # type: ignore[arg-type]


def test_defaults_give_one_main_warehouse() -> None:
    block = SqlInventory(SqlInventoryConfig())
    assert block.channel_locations(None) == ["main"]
    assert block.table_prefix == "sql_inventory"
    with pytest.raises(InvalidValue):
        SqlInventory({"locations": []})  # type: ignore[arg-type]


def test_the_manifest_reader_builds_the_config() -> None:
    from retailblocks.manifest.config import build_config

    config = build_config(
        SqlInventoryConfig,
        {
            "locations": [
                {"id": "dc", "kind": "warehouse"},
                {"id": "xuhui", "kind": "store", "latitude": 31.19, "longitude": 121.43},
            ],
            "channels": {"tmall": {"locations": ["dc"], "safety_stock": 3}},
            "reservation_ttl": "20m",
            "backorders": {"book": 10},
            "low_stock_threshold": 2,
        },
    )
    assert config.channels["tmall"].safety_stock == 3
    assert config.reservation_ttl == timedelta(minutes=20)
    assert config.warehouses == ["dc"]


class TestStackCheck:
    """Sourcing configured for a channel the manifest does not declare is reported before assembly."""

    MERCHANT = Merchant("corner-shop", "Corner Shop", "EUR")
    CHANNELS = (Channel("web", "online"), Channel("shop", "store", location="shop"))
    NAMES = {"sku": frozenset({"MILK"}), "location": frozenset({"shop"})}

    @staticmethod
    def block(channels: dict[str, ChannelSourcing]) -> SqlInventory:
        return SqlInventory(SqlInventoryConfig(locations=[Location(id="shop", kind="store")], channels=channels))

    def test_declared_channels_pass(self) -> None:
        block = self.block({"web": ChannelSourcing(locations=["shop"]), "shop": ChannelSourcing()})
        assert block.stack_check(self.MERCHANT, self.CHANNELS, self.NAMES) == []

    def test_a_misspelt_channel_is_named_with_a_suggestion(self) -> None:
        block = self.block({"wbe": ChannelSourcing(locations=["shop"])})
        problems = block.stack_check(self.MERCHANT, self.CHANNELS, self.NAMES)
        assert problems == [
            "channels.wbe: the manifest declares no channel 'wbe' (channels: web, shop); did you mean 'web'?"
        ]

    def test_every_unknown_channel_is_reported_without_a_far_fetched_suggestion(self) -> None:
        block = self.block({"web": ChannelSourcing(), "kiosk": ChannelSourcing(), "app": ChannelSourcing()})
        problems = block.stack_check(self.MERCHANT, self.CHANNELS, self.NAMES)
        assert problems == [
            "channels.kiosk: the manifest declares no channel 'kiosk' (channels: web, shop)",
            "channels.app: the manifest declares no channel 'app' (channels: web, shop)",
        ]

    def test_a_back_order_for_a_sku_the_catalog_lacks(self) -> None:
        block = SqlInventory(SqlInventoryConfig(locations=[Location(id="shop", kind="store")], backorders={"MILC": 2}))
        assert block.stack_check(self.MERCHANT, self.CHANNELS, self.NAMES) == [
            "backorders.MILC: unknown SKU 'MILC'; did you mean 'MILK'? (known: MILK)"
        ]

    def test_a_store_selling_from_a_location_the_block_does_not_hold(self) -> None:
        block = SqlInventory(SqlInventoryConfig(locations=[Location(id="shopp", kind="store")]))
        [problem] = block.stack_check(self.MERCHANT, self.CHANNELS, self.NAMES)
        assert problem.startswith("locations: store channel 'shop' sells from location 'shop', which is not among")
        assert "did you mean 'shopp'?" in problem
