"""Quotes and location ranking through the hooks, as the core calls them."""

from __future__ import annotations

import attrs
import pytest
from retailblocks_logistics import Logistics, ShippingOption, WeightRate
from retailblocks_logistics.config import Carrier, money_fields
from retailblocks_logistics.testing import cny, example_config

from retailblocks.errors import CurrencyMismatch, InvalidValue
from retailblocks.manifest import ManifestError
from retailblocks.model import Address, Channel, Fulfilment, FulfilmentKind, Merchant, Money, PricedLine
from retailblocks.testing import BlockHarness

SHANGHAI = Address("CN", "Shanghai", "Shanghai", latitude=31.1127, longitude=121.3817)  # Minhang
BEIJING = Address("CN", "Beijing", "Beijing", latitude=39.9219, longitude=116.4436)  # Chaoyang
HANGZHOU = Address("CN", "Zhejiang", "Hangzhou")


def lines(*weights_and_quantities: tuple[int, int]) -> list[PricedLine]:
    return [
        PricedLine(index, f"sku-{index}", quantity, cny("10.00"), weight_grams=weight)
        for index, (weight, quantity) in enumerate(weights_and_quantities)
    ]


def quote(
    harness: BlockHarness,
    fulfilment: Fulfilment,
    items: list[PricedLine],
    value: Money,
    channel: str = "web",
) -> dict[str, Money]:
    block = harness.block
    assert isinstance(block, Logistics)
    with harness.context(channel) as ctx:
        quotes = block.logistics_quote(ctx, items, fulfilment, value)
    for q in quotes:
        assert q.block == block.id
    return {q.option_id: q.amount for q in quotes}


def delivery(address: Address | None) -> Fulfilment:
    return Fulfilment(FulfilmentKind.DELIVERY, address=address)


class TestDeliveryQuotes:
    def test_one_quote_per_option_serving_the_zone(self, sqlite_harness: BlockHarness) -> None:
        # 2 x 300 g + 1 x 500 g = 1100 g: the second SF tier; same day fits under 3 kg.
        offered = quote(sqlite_harness, delivery(SHANGHAI), lines((300, 2), (500, 1)), cny("50.00"))
        assert offered == {"sf-standard": cny("18.00"), "sf-same-day": cny("25.00")}

    def test_weight_is_line_weight_times_quantity(self, sqlite_harness: BlockHarness) -> None:
        offered = quote(sqlite_harness, delivery(SHANGHAI), lines((1000, 1)), cny("50.00"))
        assert offered["sf-standard"] == cny("12.00")
        offered = quote(sqlite_harness, delivery(SHANGHAI), lines((1000, 4)), cny("50.00"))
        assert "sf-same-day" not in offered  # 4 kg is over the same-day limit

    def test_estimate_and_description(self, sqlite_harness: BlockHarness) -> None:
        block = sqlite_harness.block
        assert isinstance(block, Logistics)
        with sqlite_harness.context() as ctx:
            quotes = block.logistics_quote(ctx, lines((100, 1)), delivery(HANGZHOU), cny("50.00"))
        by_id = {q.option_id: q for q in quotes}
        assert set(by_id) == {"sf-standard", "zto-economy"}
        assert (by_id["zto-economy"].min_days, by_id["zto-economy"].max_days) == (3, 5)
        assert by_id["zto-economy"].carrier == "zto"
        assert by_id["sf-standard"].description == "SF Express Standard, 1-3 days"
        assert by_id["zto-economy"].amount == cny("10.00")

    def test_free_shipping_at_exactly_the_threshold(self, sqlite_harness: BlockHarness) -> None:
        at = quote(sqlite_harness, delivery(SHANGHAI), lines((100, 1)), cny("199.00"))
        below = quote(sqlite_harness, delivery(SHANGHAI), lines((100, 1)), cny("198.99"))
        assert at["sf-standard"] == Money.zero("CNY")
        assert below["sf-standard"] == cny("12.00")
        assert at["sf-same-day"] == cny("25.00")  # no threshold on that option

    def test_value_rates(self, sqlite_harness: BlockHarness) -> None:
        for value, price in [("99.99", "10.00"), ("100.00", "5.00"), ("300.00", "0.00")]:
            offered = quote(sqlite_harness, delivery(HANGZHOU), lines((20_000, 1)), cny(value))
            assert offered["zto-economy"] == cny(price)

    def test_no_zone_no_quotes(self, sqlite_harness: BlockHarness) -> None:
        tokyo = Address("JP", "Tokyo", "Tokyo")
        assert quote(sqlite_harness, delivery(tokyo), lines((100, 1)), cny("50.00")) == {}

    def test_delivery_without_address(self, sqlite_harness: BlockHarness) -> None:
        assert quote(sqlite_harness, delivery(None), lines((100, 1)), cny("50.00")) == {}


class TestStoreQuotes:
    def test_pickup_at_a_pickup_location_is_free(self, sqlite_harness: BlockHarness) -> None:
        block = sqlite_harness.block
        assert isinstance(block, Logistics)
        pickup = Fulfilment(FulfilmentKind.PICKUP, pickup_location="pudong")
        with sqlite_harness.context() as ctx:
            (q,) = block.logistics_quote(ctx, lines((100, 1)), pickup, cny("50.00"))
        assert (q.option_id, q.amount, q.from_locations) == (
            "click-and-collect",
            Money.zero("CNY"),
            ("pudong",),
        )
        assert "ready in 2 h" in q.description

    def test_pickup_elsewhere_is_not_offered(self, sqlite_harness: BlockHarness) -> None:
        pickup = Fulfilment(FulfilmentKind.PICKUP, pickup_location="jingan")
        assert quote(sqlite_harness, pickup, lines((100, 1)), cny("50.00")) == {}

    def test_carry_out_is_free_from_the_store(self, sqlite_harness: BlockHarness) -> None:
        block = sqlite_harness.block
        assert isinstance(block, Logistics)
        with sqlite_harness.context("store-1") as ctx:
            (q,) = block.logistics_quote(ctx, lines((100, 1)), Fulfilment(FulfilmentKind.CARRY_OUT), cny("50.00"))
        assert (q.option_id, q.carrier, q.amount, q.from_locations) == (
            "carry-out",
            "store",
            Money.zero("CNY"),
            ("store-1",),
        )


class TestCurrency:
    def test_config_in_another_currency_names_the_field(self, sqlite_url: str) -> None:
        option = ShippingOption("usps", "USPS", zones=["china"], rates=[WeightRate(Money.parse("5.00 USD"))])
        config = example_config(carriers=[*example_config().carriers, Carrier("us", "US", [option])])
        # Assembling the block refuses it, naming the field, before any quote is asked for.
        with pytest.raises(ManifestError, match=r"carriers\[2\]\.options\[0\]\.rates\[0\]\.price: 5.00 USD is in USD"):
            BlockHarness(Logistics(config), sqlite_url, names={"location": [loc.id for loc in config.locations]})

    def test_order_value_in_another_currency(self, sqlite_harness: BlockHarness) -> None:
        with pytest.raises(CurrencyMismatch):
            quote(sqlite_harness, delivery(SHANGHAI), lines((100, 1)), Money.parse("5.00 USD"))


class TestRanking:
    CANDIDATES = ("beijing-dc", "jingan", "pudong", "xuhui")

    def rank(self, block: Logistics, fulfilment: Fulfilment, candidates: tuple[str, ...]) -> object:
        return block.logistics_rank_locations(fulfilment, candidates)

    def test_shanghai_shopper_gets_the_nearest_shanghai_store(self, block: Logistics) -> None:
        # Minhang is nearer Xuhui than Pudong; Jing'an cannot ship; Beijing is a thousand km away.
        assert self.rank(block, delivery(SHANGHAI), self.CANDIDATES) == [
            "xuhui",
            "pudong",
            "beijing-dc",
        ]

    def test_beijing_shopper_gets_the_beijing_warehouse(self, block: Logistics) -> None:
        assert self.rank(block, delivery(BEIJING), self.CANDIDATES)[0] == "beijing-dc"  # type: ignore[index]

    def test_without_coordinates_the_order_is_kept(self, block: Logistics) -> None:
        assert self.rank(block, delivery(HANGZHOU), self.CANDIDATES) == [
            "beijing-dc",
            "pudong",
            "xuhui",
        ]

    def test_pickup_is_the_pickup_store(self, block: Logistics) -> None:
        pickup = Fulfilment(FulfilmentKind.PICKUP, pickup_location="pudong")
        assert self.rank(block, pickup, self.CANDIDATES) == ["pudong"]
        assert self.rank(block, pickup, ("xuhui",)) == []

    def test_carry_out_leaves_the_order_alone(self, block: Logistics) -> None:
        assert self.rank(block, Fulfilment(FulfilmentKind.CARRY_OUT), self.CANDIDATES) is None


def test_startup_checks_the_merchant_currency() -> None:
    from types import SimpleNamespace

    block = Logistics(example_config())
    block.stack_startup(SimpleNamespace(merchant=SimpleNamespace(currency="CNY")))
    with pytest.raises(InvalidValue, match=r"carriers\[0\]\.options\[0\]\.rates\[0\]\.price is in CNY"):
        block.stack_startup(SimpleNamespace(merchant=SimpleNamespace(currency="USD")))


NAMES = {"location": frozenset({"xuhui", "pudong", "jingan", "beijing-dc"})}


def test_stack_check_names_every_amount_in_another_currency() -> None:
    channels = (Channel("web", "online"),)
    block = Logistics(example_config())
    assert block.stack_check(Merchant("shop", "Shop", "CNY"), channels, NAMES) == []
    problems = block.stack_check(Merchant("shop", "Shop", "USD"), channels, NAMES)
    paths = [problem.split(":", 1)[0] for problem in problems]
    assert paths == [path for path, _money in money_fields(example_config())]
    assert problems[0].startswith("carriers[0].options[0].rates[0].price: ")
    assert "is in CNY, but the merchant's currency is USD; write amounts as e.g. '12.00 USD'" in problems[0]


def test_stack_check_finds_one_stray_amount() -> None:
    option = ShippingOption(
        id="std", name="Standard", zones=["china"], rates=[WeightRate(price=cny("8.00"))], free_over=Money(5000, "USD")
    )
    block = Logistics(attrs.evolve(example_config(), carriers=[Carrier(id="sf", name="SF", options=[option])]))
    problems = block.stack_check(Merchant("shop", "Shop", "CNY"), (Channel("web", "online"),), NAMES)
    assert len(problems) == 1
    assert problems[0].startswith("carriers[0].options[0].free_over: 50.00 USD is in USD")


def test_stack_check_names_locations_nothing_declares() -> None:
    block = Logistics(attrs.evolve(example_config(), pickup_locations=["xuhui", "pudnog"]))
    names = {"location": frozenset({"xuhui", "pudong", "jingan"})}
    problems = block.stack_check(Merchant("shop", "Shop", "CNY"), (Channel("web", "online"),), names)
    assert problems == [
        "locations[3].id: unknown location 'beijing-dc' (known: jingan, pudong, xuhui)",
        "pickup_locations[1]: unknown location 'pudnog'; did you mean 'pudong'? (known: jingan, pudong, xuhui)",
    ]
