"""A valid manifest loads into typed values, with defaults, normalized URLs and kept positions."""

from __future__ import annotations

import pickle

import pytest
from packaging.specifiers import SpecifierSet

from retailblocks.manifest import ManifestError, Node, PartnerType, SourcePosition
from retailblocks.model import ChannelType, Money


def test_the_design_example_loads(load, valid, tmp_path):
    manifest = load(valid)
    assert manifest.path == tmp_path / "blocks.yaml"
    assert manifest.version == 1
    assert manifest.merchant.id == "lucky-coffee"
    assert manifest.merchant.currency == "CNY"
    assert manifest.database_url == f"sqlite:///{tmp_path}/.blocks/lucky-coffee.db"
    assert [(c.id, c.type, c.location) for c in manifest.channels] == [
        ("miniprogram", ChannelType.ONLINE, None),
        ("store-xuhui", ChannelType.STORE, "xuhui"),
    ]
    inventory, payment = manifest.blocks
    assert (inventory.use, inventory.id, inventory.version) == (
        "sql-inventory",
        "inventory",
        SpecifierSet(">=0.1,<1"),
    )
    assert (payment.use, payment.id, payment.version) == (
        "sandbox-payment",
        "sandbox-payment",
        None,
    )
    assert manifest.catalog == ()
    assert manifest.partners == ()
    assert dict(manifest.routing.payment) == {}


def test_block_entries_keep_positions_for_assembly_errors(load, valid):
    inventory, payment = load(valid).blocks
    assert inventory.doc_path == "blocks[0]"
    assert (inventory.position.line, inventory.position.column) == (13, 5)
    version = inventory.position_of("version")
    assert (version.line, version.column, version.doc_path) == (15, 14, "blocks[0].version")
    use = payment.position_of("use")
    assert (use.line, use.column, use.doc_path) == (18, 10, "blocks[1].use")
    error = ManifestError.at(use, "unknown block 'sandbox-paymnt'; did you mean 'sandbox-payment'?")
    assert str(error).endswith(
        "blocks.yaml:18:10: blocks[1].use: unknown block 'sandbox-paymnt'; did you mean 'sandbox-payment'?"
    )
    # A key that was not written falls back to the entry, with the key's path.
    assert payment.position_of("version").doc_path == "blocks[1].version"
    assert payment.position_of("version").line == 18


def test_config_stays_a_raw_node(load, valid):
    inventory, payment = load(valid).blocks
    assert isinstance(inventory.config, Node)
    assert inventory.config.to_python() == {"reservation_ttl": "15m"}
    ttl = inventory.config.value["reservation_ttl"]  # type: ignore[index]
    assert (ttl.position.line, ttl.position.column, ttl.doc_path) == (
        17,
        24,
        "blocks[0].config.reservation_ttl",
    )
    secret = payment.config.value["secret_key"]  # type: ignore[index]
    assert secret.value == "sk_test_hunter2"
    assert secret.from_environment
    assert "hunter2" not in repr(payment)


def test_omitted_config_is_an_empty_mapping(load):
    manifest = load(
        """\
        version: 1
        merchant: {id: m, name: M, currency: CNY}
        channels: [{id: web, type: online}]
        blocks:
          - use: x
          - use: y
            config:
        """
    )
    assert [b.config.to_python() for b in manifest.blocks] == [{}, {}]
    assert manifest.blocks[0].config.doc_path == "blocks[0].config"


FULL = """\
version: 1
merchant: {id: lucky-coffee, name: Lucky Coffee, currency: CNY}
database: postgresql://shop:${DB_PASSWORD}@db.internal:5432/shop
channels:
  - {id: web, type: online, name: Web shop}
  - {id: store-xuhui, type: store, location: xuhui}
  - {id: tmall, type: marketplace}
catalog:
  - sku: latte
    title: Latte
    price: "18.00 CNY"
    category: coffee
    weight: 0.35kg
    channels: [web, store-xuhui]
    channel_prices: {store-xuhui: "16.50 CNY"}
  - {sku: beans, title: Beans, price: 88 CNY, weight: 500}
blocks:
  - use: sandbox-card
  - use: stored-value
    id: wallet
routing:
  payment:
    card: sandbox-card
    wallet: wallet
partners:
  - {id: tmall-brand, name: Tmall, type: platform}
"""


def test_every_section(load):
    manifest = load(FULL, environ={"DB_PASSWORD": "s3cret"})
    assert manifest.database_url == "postgresql+psycopg://shop:s3cret@db.internal:5432/shop"
    latte, beans = manifest.catalog
    assert latte.price == Money(1800, "CNY")
    assert latte.category == "coffee"
    assert latte.weight_grams == 350
    assert latte.channels == frozenset({"web", "store-xuhui"})
    assert latte.price_in("store-xuhui") == Money(1650, "CNY")
    assert (beans.category, beans.weight_grams, beans.channels) == ("general", 500, frozenset())
    assert dict(manifest.routing.payment) == {"card": "sandbox-card", "wallet": "wallet"}
    position = manifest.routing.position_of("card")
    assert position is not None
    assert (position.line, position.column) == (23, 11)
    assert manifest.routing.position_of("cash") is None
    assert manifest.partners[0].type is PartnerType.PLATFORM
    assert manifest.block("wallet").use == "stored-value"
    with pytest.raises(KeyError):
        manifest.block("nope")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/shop.db", "sqlite:///{dir}/data/shop.db"),
        ("sqlite:///../shop.db", "sqlite:///{parent}/shop.db"),
        ("sqlite:////var/lib/shop.db", "sqlite:////var/lib/shop.db"),
        ("sqlite:///shop.db?timeout=10", "sqlite:///{dir}/shop.db?timeout=10"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_database_urls(load, valid, tmp_path, url, expected):
    manifest = load(valid.replace("channels:", f"database: '{url}'\nchannels:"))
    assert manifest.database_url == expected.format(dir=tmp_path, parent=tmp_path.parent)


def test_interpolation_whole_part_and_escape(load, valid):
    manifest = load(
        valid.replace("name: Lucky Coffee", "name: ${BRAND} Coffee $${NOT_A_VAR} costs $5"),
        environ={"BRAND": "Lucky", "SANDBOX_PAYMENT_KEY": "k"},
    )
    assert manifest.merchant.name == "Lucky Coffee ${NOT_A_VAR} costs $5"


def test_unset_variable_is_named_with_its_place(valid, fails):
    fails(
        valid,
        environ={},
        at=(20, 19),
        path="blocks[1].config.secret_key",
        says="environment variable 'SANDBOX_PAYMENT_KEY' is not set",
    )


def test_unterminated_reference(valid, fails):
    fails(
        valid.replace("name: Lucky Coffee", "name: ${BRAND"),
        at=(4, 9),
        path="merchant.name",
        says="unterminated '${'",
    )


def test_interpolated_version_number(load, valid):
    manifest = load(valid.replace("version: 1", "version: ${V}"), environ={"V": "1", **_KEY})
    assert manifest.version == 1


_KEY = {"SANDBOX_PAYMENT_KEY": "k"}


def test_manifest_error_pickles_and_renders_without_place():
    error = ManifestError("no such file", file="shop/blocks.yaml")
    assert str(error) == "shop/blocks.yaml: no such file"
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert copy.file == "shop/blocks.yaml"


def test_manifest_error_at_a_position():
    position = SourcePosition("b.yaml", 12, 5, "blocks[2].config.reservation_ttl")
    error = ManifestError.at(position, "expected a duration\nlike '15m'")
    assert str(error) == ("b.yaml:12:5: blocks[2].config.reservation_ttl: expected a duration like '15m'")
    assert error.position == position
    assert error.exit_status == 2
