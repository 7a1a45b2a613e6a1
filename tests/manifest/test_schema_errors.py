"""Manifests that are valid YAML but a wrong manifest: each error names file, line:column and
path."""

from __future__ import annotations

import pytest

# Line numbers below refer to the VALID manifest in conftest.py:
#   1 version   2 merchant   3 id   4 name   5 currency   6 channels   7 - id: miniprogram
# 8 type   9 - id: store-xuhui   10 type: store   11 location   12 blocks   13 - use: sql-
# inventory
#   14 id: inventory   15 version   16 config   17 reservation_ttl   18 - use: sandbox-payment
#   19 config   20 secret_key


def test_unknown_top_level_key_suggests_the_close_one(valid, fails):
    fails(
        valid.replace("channels:", "chanels:"),
        at=(6, 1),
        path="chanels",
        says="unknown key 'chanels'; did you mean 'channels'?",
    )


def test_unknown_key_without_a_close_match_lists_the_allowed_ones(valid, fails):
    fails(
        valid.replace("    type: online", "    type: online\n    colour: blue"),
        at=(9, 5),
        path="channels[0].colour",
        says=("unknown key 'colour'", "'id', 'type', 'location', 'name'"),
    )


def test_unknown_key_in_a_block_entry(valid, fails):
    fails(
        valid.replace("    id: inventory", "    ide: inventory"),
        at=(14, 5),
        path="blocks[0].ide",
        says="did you mean 'id'?",
    )


def test_missing_required_key(valid, fails):
    fails(
        valid.replace("  name: Lucky Coffee\n", ""),
        at=(3, 3),
        path="merchant",
        says="missing required key 'name'",
    )


def test_missing_version(valid, fails):
    fails(valid.replace("version: 1\n", ""), at=(1, 1), says="missing required key 'version'")


def test_unsupported_version(valid, fails):
    fails(
        valid.replace("version: 1", "version: 2"),
        at=(1, 10),
        path="version",
        says="unsupported manifest version 2; this retailblocks reads version 1",
    )


@pytest.mark.parametrize(
    ("written", "described"),
    [("'1'", "'1'"), ("true", "the boolean true"), ("one", "'one'"), ("1.0", "the number 1.0")],
)
def test_version_must_be_an_integer(valid, fails, written, described):
    fails(
        valid.replace("version: 1", f"version: {written}"),
        at=(1, 10),
        path="version",
        says=f"expected an integer (got {described})",
    )


def test_list_where_a_mapping_is_expected(fails):
    fails(
        """\
        version: 1
        merchant: [lucky-coffee, Lucky Coffee, CNY]
        channels: [{id: web, type: online}]
        blocks: [{use: x}]
        """,
        at=(2, 11),
        path="merchant",
        says="expected a mapping (got a list)",
    )


def test_mapping_where_a_list_is_expected(fails):
    fails(
        """\
        version: 1
        merchant: {id: m, name: M, currency: CNY}
        channels: {id: web, type: online}
        blocks: [{use: x}]
        """,
        at=(3, 11),
        path="channels",
        says="expected a list (got a mapping)",
    )


def test_number_where_a_string_is_expected_says_quote_it(valid, fails):
    fails(
        valid.replace("name: Lucky Coffee", "name: 5"),
        at=(4, 9),
        path="merchant.name",
        says="expected a string (got the integer 5); quote it",
    )


def test_yes_where_a_string_is_expected(valid, fails):
    fails(
        valid.replace("location: xuhui", "location: yes"),
        at=(11, 15),
        path="channels[1].location",
        says="expected a string (got the boolean true); quote it",
    )


def test_bad_slug(valid, fails):
    fails(
        valid.replace("id: lucky-coffee", "id: Lucky Coffee"),
        at=(3, 7),
        path="merchant.id",
        says="expected a slug",
    )


def test_bad_currency(valid, fails):
    fails(
        valid.replace("currency: CNY", "currency: cny"),
        at=(5, 13),
        path="merchant.currency",
        says="ISO 4217",
    )


def test_unknown_channel_type_suggests(valid, fails):
    fails(
        valid.replace("type: online", "type: onlne"),
        at=(8, 11),
        path="channels[0].type",
        says=(
            "expected one of 'online', 'store', 'marketplace', 'social'",
            "did you mean 'online'?",
        ),
    )


def test_store_channel_without_location(valid, fails):
    fails(
        valid.replace("    location: xuhui\n", ""),
        at=(9, 5),
        path="channels[1]",
        says="a store channel needs 'location'",
    )


def test_duplicate_channel_ids(valid, fails):
    fails(
        valid.replace("id: store-xuhui", "id: miniprogram"),
        at=(9, 9),
        path="channels[1].id",
        says="duplicate channel id 'miniprogram' (first declared at line 7:9)",
    )


def test_empty_channels(valid, fails):
    text = valid.replace(valid[valid.index("channels:") : valid.index("blocks:")], "channels: []\n")
    fails(text, at=(6, 11), path="channels", says="expected a non-empty list")


def test_duplicate_block_ids(valid, fails):
    fails(
        valid.replace("  - use: sandbox-payment\n", "  - use: sandbox-payment\n    id: inventory\n"),
        at=(19, 9),
        path="blocks[1].id",
        says="duplicate block id 'inventory' (first declared at line 14:9)",
    )


def test_duplicate_block_ids_by_default_name(valid, fails):
    fails(
        valid.replace("    id: inventory\n", "").replace("use: sandbox-payment", "use: sql-inventory"),
        at=(17, 10),
        path="blocks[1].use",
        says="duplicate block id 'sql-inventory'",
    )


@pytest.mark.parametrize(
    ("specifier", "says"),
    [
        ("'>=banana'", "invalid version specifier '>=banana'"),
        ("'0.1'", "to pin a version write '==0.1'"),
        ("'>=2,<1'", "matches no version at all"),
        ("'==1.0,!=1.0'", "matches no version at all"),
        ("'>1,<=1'", "matches no version at all"),
        ("0.1", "expected a string (got the number 0.1); quote it"),
    ],
)
def test_bad_version_specifiers(valid, fails, specifier, says):
    fails(
        valid.replace('version: ">=0.1,<1"', f"version: {specifier}"),
        at=(15, 14),
        path="blocks[0].version",
        says=says,
    )


def test_config_must_be_a_mapping(valid, fails):
    fails(
        valid.replace("    config:\n      reservation_ttl: 15m", "    config: [15m]"),
        at=(16, 13),
        path="blocks[0].config",
        says="expected a mapping (got a list)",
    )


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/shop",
        "http://example.com/db",
        "garbage",
        "postgresql+psycopg2://u@h/db",
        "sqlite://relative.db",
    ],
)
def test_unsupported_database_urls(valid, fails, url):
    error = fails(
        valid.replace("channels:", f"database: '{url}'\nchannels:"),
        at=(6, 11),
        path="database",
    )
    assert "sqlite:///" in error.problem


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///", "sqlite:///x.db?mode=memory"])
def test_in_memory_sqlite_is_refused(valid, fails, url):
    fails(
        valid.replace("channels:", f"database: '{url}'\nchannels:"),
        at=(6, 11),
        path="database",
        says="in-memory SQLite database cannot be used",
    )


def test_database_password_is_masked_in_errors(valid, fails):
    error = fails(
        valid.replace("channels:", "database: 'mysql://root:hunter2@db/shop'\nchannels:"),
        at=(6, 11),
        path="database",
    )
    assert "hunter2" not in str(error)
    assert "root:***@db" in str(error)


CATALOG = """\
version: 1
merchant: {id: m, name: M, currency: CNY}
channels:
  - {id: web, type: online}
catalog:
  - sku: latte
    title: Latte
    price: "18.00 CNY"
blocks: [{use: x}]
"""


def test_catalog_price_currency_mismatch(fails):
    fails(
        CATALOG.replace("18.00 CNY", "18.00 USD"),
        at=(8, 12),
        path="catalog[0].price",
        says="price is in USD but the merchant's currency is CNY",
    )


def test_catalog_bad_money(fails):
    fails(
        CATALOG.replace('"18.00 CNY"', "eighteen"),
        at=(8, 12),
        path="catalog[0].price",
        says="expected money as '<amount> <CURRENCY>'",
    )


def test_catalog_unknown_channel(fails):
    fails(
        CATALOG.replace('    price: "18.00 CNY"', '    price: "18.00 CNY"\n    channels: [wbe]'),
        at=(9, 16),
        path="catalog[0].channels[0]",
        says="unknown channel 'wbe'; did you mean 'web'?",
    )


def test_catalog_unknown_channel_price(fails):
    fails(
        CATALOG.replace('    price: "18.00 CNY"', '    price: "18.00 CNY"\n    channel_prices: {shop: "1 CNY"}'),
        at=(9, 22),
        path="catalog[0].channel_prices.shop",
        says="unknown channel 'shop'",
    )


def test_catalog_duplicate_sku(fails):
    fails(
        CATALOG.replace("blocks:", "  - {sku: latte, title: Again, price: 1 CNY}\nblocks:"),
        at=(9, 11),
        path="catalog[1].sku",
        says="duplicate sku 'latte' (first declared at line 6:10)",
    )


def test_catalog_bad_weight(fails):
    fails(
        CATALOG.replace('    price: "18.00 CNY"', '    price: "18.00 CNY"\n    weight: heavy'),
        at=(9, 13),
        path="catalog[0].weight",
        says="expected a weight like '350g'",
    )


def test_routing_to_an_undeclared_block(valid, fails):
    fails(
        valid + "routing:\n  payment: {card: sandbox-paymnt}\n",
        at=(22, 19),
        path="routing.payment.card",
        says="no block with id 'sandbox-paymnt'; did you mean 'sandbox-payment'?",
    )


def test_partner_with_the_merchant_id(valid, fails):
    fails(
        valid + "partners:\n  - {id: lucky-coffee, name: Us, type: brand}\n",
        at=(22, 10),
        path="partners[0].id",
        says="a partner cannot have the merchant's own id",
    )


def test_partner_bad_type(valid, fails):
    fails(
        valid + "partners:\n  - {id: tmall, name: Tmall, type: platfrom}\n",
        at=(22, 36),
        path="partners[0].type",
        says="did you mean 'platform'?",
    )


def test_not_a_mapping_document(fails):
    fails("- version: 1\n", at=(1, 1), says="a manifest is a mapping")


def test_scalar_document(fails):
    fails("hello\n", at=(1, 1), says="a manifest is a mapping")


@pytest.mark.parametrize("content", ["", "   \n\n\t\n", "# only a comment\n", b""])
def test_empty_manifest(fails, content):
    fails(content, at=None, says="the manifest is empty")
