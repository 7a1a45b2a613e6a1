"""The pure rules: zones, prices, distances, status changes, and configuration checks."""

from __future__ import annotations

import pytest
from retailblocks_logistics import ShipFrom, ShippingOption, ValueRate, WeightRate, Zone
from retailblocks_logistics.config import LogisticsConfig
from retailblocks_logistics.engine import (
    check_transition,
    distance_km,
    extra_parcel_charge,
    parse_status,
    rank_by_distance,
    shipping_price,
    zone_of,
)
from retailblocks_logistics.testing import BEIJING_DC, JINGAN, PUDONG, XUHUI, cny, example_config

from retailblocks.errors import InvalidValue
from retailblocks.model import Address, Money, ShipmentStatus

CONFIG = example_config()
STANDARD = CONFIG.carriers[0].options[0]
ECONOMY = CONFIG.carriers[1].options[0]


class TestZones:
    def test_region_zone_wins_over_a_country_wide_zone(self) -> None:
        assert zone_of(Address("CN", "Shanghai"), CONFIG.zones).id == "shanghai"  # type: ignore[union-attr]

    def test_regions_match_ignoring_case_and_spaces(self) -> None:
        zone = zone_of(Address("cn", "  zheJIANG "), CONFIG.zones)
        assert zone is not None
        assert zone.id == "jjz"

    def test_country_wide_zone_catches_other_regions(self) -> None:
        zone = zone_of(Address("CN", "Sichuan"), CONFIG.zones)
        assert zone is not None
        assert zone.id == "china"

    def test_region_zone_with_countries_needs_the_country_too(self) -> None:
        # A "Shanghai" region abroad is not the Shanghai zone (and no zone serves that country).
        assert zone_of(Address("US", "Shanghai"), CONFIG.zones) is None

    def test_no_zone(self) -> None:
        assert zone_of(Address("JP", "Tokyo"), CONFIG.zones) is None


class TestPrices:
    @pytest.mark.parametrize(
        ("grams", "price"),
        [
            (0, "12.00"),
            (1000, "12.00"),
            (1001, "18.00"),
            (5000, "18.00"),
            (5001, "30.00"),
            (90_000, "30.00"),
        ],
    )
    def test_first_weight_tier_whose_bound_holds(self, grams: int, price: str) -> None:
        assert shipping_price(STANDARD, grams, cny("50.00")) == cny(price)

    def test_heavier_than_every_tier_is_not_offered(self) -> None:
        same_day = CONFIG.carriers[0].options[1]
        assert shipping_price(same_day, 3000, cny("1.00")) == cny("25.00")
        assert shipping_price(same_day, 3001, cny("1.00")) is None

    def test_free_at_exactly_the_threshold(self) -> None:
        assert shipping_price(STANDARD, 100, cny("199.00")) == Money.zero("CNY")
        assert shipping_price(STANDARD, 100_000, cny("199.00")) == Money.zero("CNY")

    def test_charged_one_minor_unit_below_the_threshold(self) -> None:
        assert shipping_price(STANDARD, 100, cny("198.99")) == cny("12.00")

    @pytest.mark.parametrize(
        ("value", "price"),
        [
            ("0.00", "10.00"),
            ("99.99", "10.00"),
            ("100.00", "5.00"),
            ("299.99", "5.00"),
            ("300.00", "0.00"),
        ],
    )
    def test_highest_value_tier_reached(self, value: str, price: str) -> None:
        assert shipping_price(ECONOMY, 123_456, cny(value)) == cny(price)

    def test_value_rates_override_weight_rates_only_once_reached(self) -> None:
        option = ShippingOption(
            "mixed",
            "Mixed",
            zones=["z"],
            rates=[WeightRate(cny("15.00"))],
            value_rates=[ValueRate(cny("88.00"), cny("3.00"))],
        )
        assert shipping_price(option, 10, cny("87.99")) == cny("15.00")
        assert shipping_price(option, 10, cny("88.00")) == cny("3.00")

    def test_extra_parcels(self) -> None:
        assert extra_parcel_charge(STANDARD, 1, "CNY") == Money.zero("CNY")
        assert extra_parcel_charge(STANDARD, 3, "CNY") == cny("12.00")
        assert extra_parcel_charge(ECONOMY, 3, "CNY") == Money.zero("CNY")


class TestDistances:
    def test_shanghai_to_beijing_is_about_1070_km(self) -> None:
        km = distance_km(XUHUI.latitude, XUHUI.longitude, BEIJING_DC.latitude, BEIJING_DC.longitude)
        assert 1050 < km < 1090

    def test_same_point_is_zero(self) -> None:
        assert distance_km(31.2, 121.4, 31.2, 121.4) == 0

    def test_antipodes_are_half_the_circumference(self) -> None:
        assert distance_km(0, 0, 0, 180) == pytest.approx(20015.1, abs=1)

    def test_rank_leaves_out_non_shipping_and_puts_unknown_last(self) -> None:
        locations = [XUHUI, PUDONG, JINGAN, BEIJING_DC]
        ranked = rank_by_distance(["mystery", "beijing-dc", "jingan", "pudong", "xuhui"], locations, 39.92, 116.44)
        assert ranked == ["beijing-dc", "xuhui", "pudong", "mystery"]

    def test_without_coordinates_order_is_kept(self) -> None:
        ranked = rank_by_distance(["beijing-dc", "jingan", "xuhui"], [XUHUI, JINGAN, BEIJING_DC], None, None)
        assert ranked == ["beijing-dc", "xuhui"]


class TestTransitions:
    @pytest.mark.parametrize(
        ("current", "new"),
        [
            ("pending", "shipped"),
            ("shipped", "in_transit"),
            ("in_transit", "delivered"),
            ("ready_for_pickup", "collected"),
            ("pending", "cancelled"),
            ("shipped", "cancelled"),
            ("in_transit", "cancelled"),
            ("ready_for_pickup", "cancelled"),
        ],
    )
    def test_allowed(self, current: str, new: str) -> None:
        check_transition("shp_1", ShipmentStatus(current), ShipmentStatus(new))

    @pytest.mark.parametrize(
        ("current", "new"),
        [
            ("pending", "delivered"),
            ("shipped", "pending"),
            ("delivered", "cancelled"),
            ("collected", "cancelled"),
            ("cancelled", "shipped"),
            ("ready_for_pickup", "shipped"),
            ("pending", "collected"),
        ],
    )
    def test_refused_naming_both_states(self, current: str, new: str) -> None:
        with pytest.raises(InvalidValue, match=f"from '{current}' to '{new}'"):
            check_transition("shp_1", ShipmentStatus(current), ShipmentStatus(new))

    def test_unknown_status(self) -> None:
        with pytest.raises(InvalidValue, match="unknown shipment status 'lost'; expected one of"):
            parse_status("lost")


class TestConfiguration:
    def test_option_naming_an_unknown_zone(self) -> None:
        option = ShippingOption("x", "X", zones=["mars"], rates=[WeightRate(cny("1.00"))])
        from retailblocks_logistics import Carrier

        with pytest.raises(InvalidValue, match="names zone 'mars', which is not configured"):
            LogisticsConfig(zones=[Zone("cn", countries=["CN"])], carriers=[Carrier("c", "C", [option])])

    def test_duplicate_option_ids(self) -> None:
        with pytest.raises(InvalidValue, match="shipping option id 'sf-standard' is used twice"):
            example_config(
                carriers=[
                    CONFIG.carriers[0],
                    CONFIG.carriers[0].__class__("other", "Other", [STANDARD]),
                ]
            )

    def test_tiers_out_of_order(self) -> None:
        with pytest.raises(InvalidValue, match="lightest first"):
            ShippingOption(
                "x",
                "X",
                zones=["z"],
                rates=[WeightRate(cny("2.00"), 500), WeightRate(cny("1.00"), 100)],
            )

    def test_unbounded_tier_must_be_last(self) -> None:
        with pytest.raises(InvalidValue, match="must be the last tier"):
            ShippingOption("x", "X", zones=["z"], rates=[WeightRate(cny("2.00")), WeightRate(cny("1.00"), 100)])

    def test_option_without_prices(self) -> None:
        with pytest.raises(InvalidValue, match="give 'rates' or 'value_rates'"):
            ShippingOption("x", "X", zones=["z"])

    def test_reserved_option_id(self) -> None:
        with pytest.raises(InvalidValue, match="reserved"):
            ShippingOption("click-and-collect", "X", zones=["z"], rates=[WeightRate(cny("1.00"))])

    def test_days_out_of_order(self) -> None:
        with pytest.raises(InvalidValue, match="'min_days' \\(4\\) must not exceed 'max_days' \\(2\\)"):
            ShippingOption("x", "X", zones=["z"], min_days=4, max_days=2, rates=[WeightRate(cny("1.00"))])

    def test_zone_needs_regions_or_countries(self) -> None:
        with pytest.raises(InvalidValue, match="needs 'regions' or 'countries'"):
            Zone("empty")

    def test_coordinates_in_range(self) -> None:
        with pytest.raises(InvalidValue, match="latitude must be in"):
            ShipFrom("x", 91.0, 0.0)

    def test_negative_price(self) -> None:
        with pytest.raises(InvalidValue, match="'price' cannot be negative"):
            WeightRate(cny("-1.00"))
