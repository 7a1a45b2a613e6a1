"""``blocks assemble`` on broken manifests of every kind.

The rule, for ``blocks assemble`` and ``blocks assemble --check`` alike: a broken manifest exits with
status 2 and exactly one line on stderr, ``error: FILE:LINE:COLUMN: DOCUMENT.PATH: what is wrong``
(the place where one exists), no traceback, nothing on stdout, and nothing written: no ``.blocks/``
directory, no database file, no ``blocks.lock``. A database that cannot be reached is a failure of the
environment: status 1, one line, nothing written.

Each broken manifest is the small valid one below with one defect; the place an error must name is
given as a marker, the text the error must point at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.cli.harness import Outcome, blocks, blocks_process, copy_example, tree

SECRET = "sk_test_PLEASE_NEVER_PRINT_ME"
ENV = {"SHOP_CARD_KEY": SECRET, "NOT_SET_ANYWHERE": None}

VALID = """\
version: 1
merchant:
  id: corner-shop
  name: Corner Shop
  currency: EUR
channels:
  - {id: shop, type: store, location: shop}
  - {id: web, type: online}
catalog:
  - {sku: MILK-1L, title: "Milk 1 l", price: "1.29 EUR"}
blocks:
  - use: sql-inventory
    version: ">=0.1,<1"
    config:
      reservation_ttl: 15m
      low_stock_threshold: 3
      locations: [{id: shop, kind: store}]
  - use: sandbox-card
    config:
      secret_key: ${SHOP_CARD_KEY}
"""

BILLION_LAUGHS = "\n".join(
    [
        'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"lol{level}: &{name} [{','.join([f'*{previous}'] * 9)}]"
            for level, (previous, name) in enumerate(zip("abcdefgh", "bcdefghi", strict=True))
        ),
    ]
)


@attrs.frozen
class Broken:
    """One defect: the manifest text (or bytes), where the error must point and what it must say.

    ``at`` is a marker: the error names the line and column where the marker first occurs in the text.
    ``at=None`` with ``positioned=True`` only requires some line:column (YAML parser errors, whose exact
    column is the parser's business).
    """

    content: str | bytes
    says: str
    path: str | None = None
    at: str | None = None
    positioned: bool = True
    #: Text that must not appear anywhere in the output (a secret the manifest holds).
    never_shown: str | None = None


def broken(old: str, new: str, says: str, **details: Any) -> Broken:
    """The valid manifest with ``old`` replaced by ``new``."""
    assert old in VALID, old
    return Broken(VALID.replace(old, new, 1), says, **details)


def appended(text: str, says: str, **details: Any) -> Broken:
    return Broken(VALID + text, says, **details)


CONFIG = "      reservation_ttl: 15m\n"
CARD = "  - use: sandbox-card\n"
# A third block, for the references its configuration makes to the rest of the manifest.
LOGISTICS = "  - use: logistics\n    config:\n"
LOYALTY = "  - use: loyalty\n    config:\n      points_value: '1.00 EUR'\n"
PROMOTION = (
    "  - use: promotions\n    config:\n      promotions:\n        - {id: milk-10, value_type: percentage, value: 10, "
)

CASES: dict[str, Broken] = {
    # --- YAML that does not parse ------------------------------------------------------------------
    "yaml: unclosed flow mapping": broken("{id: web, type: online}", "{id: web, type: online", "invalid YAML"),
    "yaml: mapping value where none may be": broken("version: 1", "version: 1: 2", "invalid YAML", at=": 2"),
    "yaml: tab indentation": broken(CONFIG, "\treservation_ttl: 15m\n", "invalid YAML"),
    "yaml: bad indentation": broken("    config:\n", "   config:\n", "invalid YAML"),
    "yaml: unclosed quote": broken('title: "Milk 1 l"', 'title: "Milk 1 l', "invalid YAML"),
    "yaml: two documents": appended("---\nversion: 1\n", "single YAML document", at="---"),
    "yaml: undefined alias": broken("name: Corner Shop", "name: *nowhere", "invalid YAML", at="*nowhere"),
    # --- values of the wrong type -------------------------------------------------------------------
    "type: version is text": broken("version: 1", "version: one", "expected an integer", path="version", at="one"),
    "type: version is a float": broken(
        "version: 1", "version: 1.0", "expected an integer (got the number 1.0)", path="version", at="1.0"
    ),
    "type: unsupported format version": broken(
        "version: 1", "version: 2", "unsupported manifest version 2", path="version", at="2"
    ),
    "type: merchant is text": broken(
        "merchant:\n  id: corner-shop\n  name: Corner Shop\n  currency: EUR\n",
        "merchant: Corner Shop\n",
        "expected a mapping",
        path="merchant",
        at="Corner Shop",
    ),
    "type: channels is a mapping": broken(
        "channels:\n  - {id: shop, type: store, location: shop}\n  - {id: web, type: online}\n",
        "channels: {shop: store}\n",
        "expected a list",
        path="channels",
        at="{shop: store}",
    ),
    "type: block config is a number": broken(
        "  - use: sandbox-card\n    config:\n      secret_key: ${SHOP_CARD_KEY}\n",
        "  - use: sandbox-card\n    config: 5\n",
        "expected a mapping",
        path="blocks[1].config",
        at="5\n",
    ),
    "type: integer written as text": broken(
        "low_stock_threshold: 3",
        'low_stock_threshold: "3"',
        "expected an integer",
        path="blocks[0].config.low_stock_threshold",
        at='"3"',
    ),
    "type: integer written as a boolean": broken(
        "low_stock_threshold: 3",
        "low_stock_threshold: yes",
        "expected an integer (got the boolean",
        path="blocks[0].config.low_stock_threshold",
        at="yes",
    ),
    "type: mapping key is a number": broken(
        "version: 1\n", "version: 1\n42: answer\n", "mapping keys must be strings", at="42"
    ),
    "type: channel type not one of the four": broken(
        "type: online", "type: onlin", "did you mean 'online'", path="channels[1].type", at="onlin"
    ),
    "type: merchant id is not a slug": broken(
        "id: corner-shop", "id: Corner Shop!", "expected a slug", path="merchant.id", at="Corner Shop!"
    ),
    "type: lower-case currency": broken(
        "currency: EUR", "currency: eur", "ISO 4217", path="merchant.currency", at="eur"
    ),
    "type: currency of a price is not the merchant's": broken(
        '"1.29 EUR"', '"1.29 CNY"', "merchant's currency is EUR", path="catalog[0].price", at='"1.29 CNY"'
    ),
    "bounds: a price of 2**63 minor units": broken(
        '"1.29 EUR"',
        '"92233720368547758.08 EUR"',
        "within ±1000000000000000 minor units",
        path="catalog[0].price",
        at='"92233720368547758.08 EUR"',
    ),
    "bounds: a negative price": broken(
        '"1.29 EUR"', '"-1.29 EUR"', "cannot be negative", path="catalog[0].price", at='"-1.29 EUR"'
    ),
    "bounds: a negative channel price": broken(
        'price: "1.29 EUR"}',
        'price: "1.29 EUR", channel_prices: {web: "-0.01 EUR"}}',
        "cannot be negative",
        path="catalog[0].channel_prices.web",
        at='"-0.01 EUR"',
    ),
    "bounds: a spend threshold over the largest amount": appended(
        'segments: [{id: whales, min_spend: "10000000000000.01 EUR"}]\n',
        "within ±1000000000000000 minor units",
        path="segments[0].min_spend",
        at='"10000000000000.01 EUR"',
    ),
    "bounds: an order count over the largest quantity": appended(
        "segments: [{id: loyal, min_orders: 1000000001}]\n",
        "from 0 to 1000000000",
        path="segments[0].min_orders",
        at="1000000001",
    ),
    "bounds: a weight over the largest quantity": broken(
        'price: "1.29 EUR"}',
        'price: "1.29 EUR", weight: 1000001kg}',
        "between 0 and 1000000000",
        path="catalog[0].weight",
        at="1000001kg",
    ),
    "bounds: money in a block's config over the largest amount": appended(
        '  - use: stored-value\n    config: {max_gift_card_value: "10000000000000.01 EUR"}\n',
        "within ±1000000000000000 minor units",
        path="blocks[2].config.max_gift_card_value",
        at='"10000000000000.01 EUR"',
    ),
    "bounds: a quantity in a block's config over the largest quantity": broken(
        "low_stock_threshold: 3",
        "low_stock_threshold: 1000000001",
        "<= 1000000000",
        path="blocks[0].config.low_stock_threshold",
        at="1000000001",
    ),
    "type: huge integer": broken(
        "low_stock_threshold: 3",
        f"low_stock_threshold: {10**40}",
        "integer out of range",
        path="blocks[0].config.low_stock_threshold",
        at=str(10**40),
    ),
    "type: store channel without its location": broken(
        "{id: shop, type: store, location: shop}",
        "{id: shop, type: store}",
        "a store channel needs 'location'",
        path="channels[0]",
        at="{id: shop, type: store}",
    ),
    # --- missing and unknown keys --------------------------------------------------------------------
    "keys: misspelled top-level key": broken(
        "channels:\n", "chanels:\n", "unknown key 'chanels'; did you mean 'channels'?", path="chanels", at="chanels"
    ),
    "keys: misspelled block key": broken(
        "    config:\n      reservation_ttl",
        "    cofig:\n      reservation_ttl",
        "did you mean 'config'?",
        path="blocks[0].cofig",
        at="cofig",
    ),
    "keys: misspelled config key": broken(
        CONFIG,
        "      reservaton_ttl: 15m\n",
        "unknown key 'reservaton_ttl'; did you mean 'reservation_ttl'?",
        path="blocks[0].config.reservaton_ttl",
        at="reservaton_ttl",
    ),
    "keys: unknown key names what is allowed": broken(
        "  name: Corner Shop\n", "  name: Corner Shop\n  colour: red\n", "allowed here", path="merchant.colour"
    ),
    "keys: a key that looks like terminal markup": broken(
        "version: 1\n", 'version: 1\n"[/x] [bold]": 1\n', "unknown key '[/x] [bold]'", at='"[/x]'
    ),
    "keys: missing required key": broken("version: 1\n", "", "missing required key 'version'", at="merchant"),
    "keys: no blocks at all": Broken(VALID.split("blocks:")[0], "missing required key 'blocks'", at="version"),
    "keys: an empty list of blocks": Broken(
        VALID.split("blocks:")[0] + "blocks: []\n", "non-empty list", path="blocks", at="[]"
    ),
    # --- blocks that cannot be used ------------------------------------------------------------------
    "blocks: misspelled block": broken(
        "use: sql-inventory",
        "use: sql-inventroy",
        "unknown block 'sql-inventroy'; did you mean 'sql-inventory'?",
        path="blocks[0].use",
        at="sql-inventroy",
    ),
    "blocks: block not installed": broken(
        "use: sql-inventory",
        "use: warehouse-9000",
        "installed blocks: ",
        path="blocks[0].use",
        at="warehouse-9000",
    ),
    "blocks: no payment block": Broken(VALID.split(CARD)[0], "no block provides payment", path="blocks"),
    "blocks: an id taken by the core's own block": broken(
        CARD, "  - use: sandbox-card\n    id: core\n", "reserved", path="blocks[1].id", at="core\n"
    ),
    "blocks: a block's config naming a channel the manifest does not declare": broken(
        "      locations: [{id: shop, kind: store}]\n",
        "      locations: [{id: shop, kind: store}]\n      channels: {wbe: {locations: [shop]}}\n",
        "no channel 'wbe'",
        path="blocks[0].config.channels.wbe",
        at="wbe",
    ),
    "database: a PostgreSQL URL with an impossible port": broken(
        "channels:\n", "database: postgresql://u@localhost:99999/db\nchannels:\n", "port", path="database"
    ),
    # --- version specifiers ---------------------------------------------------------------------------
    "version: invalid specifier": broken(
        '">=0.1,<1"', '"=>0.1"', "invalid version specifier '=>0.1'", path="blocks[0].version", at='"=>0.1"'
    ),
    "version: bare version suggests ==": broken(
        '">=0.1,<1"', '"0.1.0"', "write '==0.1.0'", path="blocks[0].version", at='"0.1.0"'
    ),
    "version: unsatisfiable by the installed block": broken(
        '">=0.1,<1"',
        '">=9"',
        "installed at version 0.1.0",
        path="blocks[0].version",
        at='">=9"',
    ),
    "version: contradictory specifier": broken(
        '">=0.1,<1"', '">=2,<1"', "matches no version", path="blocks[0].version", at='">=2,<1"'
    ),
    "version: a float, not a specifier": broken(
        '">=0.1,<1"', "1.0", "expected a string", path="blocks[0].version", at="1.0"
    ),
    # --- duplicates -------------------------------------------------------------------------------------
    "duplicate: block listed twice without ids": appended(
        "  - use: sandbox-card\n    config: {secret_key: sk_test_again}\n",
        "duplicate block id 'sandbox-card'",
        path="blocks[2].use",
    ),
    "duplicate: two blocks with one id": broken(
        CARD,
        "  - use: sandbox-card\n    id: sql-inventory\n",
        "duplicate block id 'sql-inventory'",
        path="blocks[1].id",
    ),
    "duplicate: channel id": broken(
        "{id: web, type: online}", "{id: shop, type: online}", "duplicate channel id 'shop'", path="channels[1].id"
    ),
    "duplicate: sku": broken(
        '  - {sku: MILK-1L, title: "Milk 1 l", price: "1.29 EUR"}\n',
        '  - {sku: MILK-1L, title: "Milk 1 l", price: "1.29 EUR"}\n  - {sku: MILK-1L, title: Milk, price: "1 EUR"}\n',
        "duplicate sku 'MILK-1L'",
        path="catalog[1].sku",
    ),
    "duplicate: top-level key": broken(
        "version: 1\n",
        "version: 1\nversion: 1\n",
        "duplicate key 'version' (first written at line 1:1)",
        path="version",
    ),
    "duplicate: key inside a block's config": broken(
        CONFIG,
        CONFIG + "      reservation_ttl: 5m\n",
        "duplicate key 'reservation_ttl'",
        path="blocks[0].config.reservation_ttl",
    ),
    "duplicate: key in a flow mapping": broken(
        "{id: web, type: online}", "{id: web, type: online, id: www}", "duplicate key 'id'", path="channels[1].id"
    ),
    # --- the environment ---------------------------------------------------------------------------------
    "env: unset variable": broken(
        "${SHOP_CARD_KEY}",
        "${NOT_SET_ANYWHERE}",
        "environment variable 'NOT_SET_ANYWHERE' is not set",
        path="blocks[1].config.secret_key",
        at="${NOT_SET_ANYWHERE}",
    ),
    "env: unterminated reference": broken(
        "${SHOP_CARD_KEY}", "${SHOP_CARD_KEY", "unterminated", path="blocks[1].config.secret_key", at="${SHOP"
    ),
    # --- databases ------------------------------------------------------------------------------------------
    "database: mysql": broken(
        "channels:\n",
        "database: mysql://shop@localhost/shop\nchannels:\n",
        "unsupported database URL 'mysql://shop@localhost/shop'",
        path="database",
        at="mysql://",
    ),
    "database: garbage": broken(
        "channels:\n",
        "database: garbage\nchannels:\n",
        "unsupported database URL 'garbage'",
        path="database",
        at="garbage",
    ),
    "database: postgres:// scheme": broken(
        "channels:\n", "database: postgres://u@h/db\nchannels:\n", "write 'postgresql://'", path="database"
    ),
    "database: SQLite with two slashes": broken(
        "channels:\n", "database: sqlite://shop.db\nchannels:\n", "three slashes", path="database"
    ),
    "database: in-memory SQLite": broken(
        "channels:\n", "database: 'sqlite:///:memory:'\nchannels:\n", "in-memory", path="database"
    ),
    "database: not a string": broken(
        "channels:\n", "database: 5432\nchannels:\n", "expected a string", path="database", at="5432"
    ),
    "database: password in a bad URL is hidden": broken(
        "channels:\n",
        "database: mysql://shop:hunter2secret@db/shop\nchannels:\n",
        "unsupported database URL",
        path="database",
        never_shown="hunter2secret",
    ),
    # --- hostile YAML ------------------------------------------------------------------------------------------
    "unsafe: python object apply": broken(
        "name: Corner Shop",
        'name: !!python/object/apply:os.system ["echo hi"]',
        "unsafe or unknown YAML tag '!!python/object/apply:os.system'",
        path="merchant.name",
        at="!!python",
    ),
    "unsafe: python name": broken(
        "name: Corner Shop", "name: !!python/name:os.system ''", "unsafe or unknown YAML tag", path="merchant.name"
    ),
    "unsafe: local tag": broken(
        "name: Corner Shop", "name: !shell rm -rf /", "unsafe or unknown YAML tag '!shell'", path="merchant.name"
    ),
    "unsafe: binary": broken(
        "name: Corner Shop", "name: !!binary aGVsbG8=", "unsafe or unknown YAML tag '!!binary'", path="merchant.name"
    ),
    "unsafe: billion laughs": appended(BILLION_LAUGHS + "\n", "alias expansion too large"),
    "unsafe: recursive alias": appended("loop: &loop [*loop]\n", "recursive alias", at="&loop"),
    "unsafe: deep flow nesting": appended("deep: " + "[" * 500 + "]" * 500 + "\n", "nested deeper than"),
    "unsafe: deep block nesting": appended(
        "deep:\n" + "".join("  " * level + f"k{level}:\n" for level in range(1, 100)) + "  " * 100 + "v: 1\n",
        "nested deeper than",
    ),
    "unsafe: NUL character": broken("Corner Shop", "Corner\x00Shop", "not allowed in YAML", at="\x00"),
    "unsafe: control character": broken("Corner Shop", "Corner\x1bShop", "not allowed in YAML", at="\x1b"),
    # --- bytes that are not UTF-8 --------------------------------------------------------------------------------
    "bytes: Latin-1": Broken(
        VALID.replace("Corner Shop", "Caf\xe9 Corner").encode("latin-1"), "not valid UTF-8 (byte 0xe9)", at="\xe9"
    ),
    "bytes: UTF-16": Broken(VALID.encode("utf-16"), "not valid UTF-8", positioned=True),
    "bytes: truncated multi-byte character": Broken(
        VALID.encode() + b"# \xe2\x82\n", "not valid UTF-8", positioned=True
    ),
    # --- empty and shapeless documents -----------------------------------------------------------------------------
    "empty: no bytes": Broken("", "the manifest is empty", positioned=False),
    "empty: only blanks": Broken("\n   \n\n", "the manifest is empty", positioned=False),
    "empty: only comments": Broken("# blocks.yaml\n# to be written\n", "the manifest is empty", positioned=False),
    "empty: null document": Broken("~\n", "a manifest is a mapping", at="~"),
    "empty: a list": Broken("- version: 1\n", "a manifest is a mapping", at="-"),
    "empty: a scalar": Broken("hello\n", "a manifest is a mapping", at="hello"),
    # --- block configuration ---------------------------------------------------------------------------------------
    "config: duration that is not one": broken(
        CONFIG,
        "      reservation_ttl: soon\n",
        "expected a duration",
        path="blocks[0].config.reservation_ttl",
        at="soon",
    ),
    "config: negative count": broken(
        "low_stock_threshold: 3",
        "low_stock_threshold: -1",
        ">= 0",
        path="blocks[0].config.low_stock_threshold",
        at="-1\n",
    ),
    "config: unknown location in a block's config": broken(
        "[{id: shop, kind: store}]",
        "[{id: shop, kind: shop}]",
        "kind",
        path="blocks[0].config.locations[0].kind",
        at="shop}]",
    ),
    "config: live key where a sandbox key is required": broken(
        "${SHOP_CARD_KEY}",
        "live_123",
        "sk_test_",
        path="blocks[1].config.secret_key",
        at="live_123",
        never_shown="live_123",
    ),
    "config: secret of the wrong type is not quoted": broken(
        "${SHOP_CARD_KEY}",
        "98765432123",
        "expected a string",
        path="blocks[1].config.secret_key",
        never_shown="98765432123",
    ),
    # --- references from one part of the manifest to another ----------------------------------------------
    "references: a pickup location nothing declares": appended(
        LOGISTICS + "      pickup_locations: [shpo]\n",
        "block 'logistics': unknown location 'shpo'; did you mean 'shop'?",
        path="blocks[2].config.pickup_locations[0]",
        at="shpo",
    ),
    "references: a ship-from location nothing declares": appended(
        LOGISTICS + "      locations: [{id: warehouse, latitude: 1, longitude: 1}]\n",
        "unknown location 'warehouse' (known: shop)",
        path="blocks[2].config.locations[0].id",
        at="warehouse, latitude",
    ),
    "references: a sourcing location the inventory does not hold": broken(
        "      locations: [{id: shop, kind: store}]\n",
        "      locations: [{id: shop, kind: store}]\n      channels: {web: {locations: [shpo]}}\n",
        "unknown location 'shpo'; did you mean 'shop'?",
        path="blocks[0].config.channels.web.locations[0]",
        at="shpo",
    ),
    "references: a store channel selling from a location the inventory does not hold": broken(
        "{id: shop, type: store, location: shop}",
        "{id: shop, type: store, location: backroom}",
        "store channel 'shop' sells from location 'backroom'",
        path="blocks[0].config.locations",
        at="locations: [{id: shop",
    ),
    "references: a back-order of a SKU the catalog lacks": broken(
        "      locations: [{id: shop, kind: store}]\n",
        "      locations: [{id: shop, kind: store}]\n      backorders: {MILK-1: 2}\n",
        "unknown SKU 'MILK-1'; did you mean 'MILK-1L'?",
        path="blocks[0].config.backorders.MILK-1",
        at="MILK-1: 2",
    ),
    "references: a promotion's SKU the catalog lacks": appended(
        PROMOTION + "skus: [MILK-2L]}\n",
        "unknown SKU 'MILK-2L'; did you mean 'MILK-1L'?",
        path="blocks[2].config.promotions[0].skus[0]",
        at="MILK-2L",
    ),
    "references: a promotion's category the catalog lacks": appended(
        PROMOTION + "get_categories: [generel]}\n",
        "unknown category 'generel'; did you mean 'general'?",
        path="blocks[2].config.promotions[0].get_categories[0]",
        at="generel",
    ),
    "references: a promotion's channel the manifest lacks": appended(
        PROMOTION + "channels: [wbe]}\n",
        "unknown channel 'wbe'; did you mean 'web'?",
        path="blocks[2].config.promotions[0].channels[0]",
        at="wbe",
    ),
    "references: a promotion's segment the manifest lacks": appended(
        PROMOTION + "segments: [vip]}\n",
        "unknown segment 'vip' (known: none; declare it under 'segments:')",
        path="blocks[2].config.promotions[0].segments[0]",
        at="vip",
    ),
    "references: a promotion's tier no block declares": appended(
        PROMOTION + "tiers: [gold]}\n",
        "unknown membership tier 'gold'",
        path="blocks[2].config.promotions[0].tiers[0]",
        at="gold",
    ),
    "references: a promotion's funder the manifest lacks": appended(
        PROMOTION + "funder: metro-mal}\npartners: [{id: metro-mall, name: Metro, type: platform}]\n",
        "unknown partner 'metro-mal'; did you mean 'metro-mall'?",
        path="blocks[2].config.promotions[0].funder",
        at="metro-mal}",
    ),
    "references: a co-funded promotion's partner the manifest lacks": appended(
        PROMOTION + "funders: [{partner: metro-mal, share: 60%}, {merchant: 40%}]}\n"
        "partners: [{id: metro-mall, name: Metro, type: platform}]\n",
        "unknown partner 'metro-mal'; did you mean 'metro-mall'?",
        path="blocks[2].config.promotions[0].funders[0].partner",
        at="metro-mal,",
    ),
    "promotions: funders' shares that do not add up to 100%": appended(
        PROMOTION + "funders: [{partner: metro, share: 60%}, {merchant: 30%}]}\n"
        "partners: [{id: metro, name: Metro, type: platform}]\n",
        "the funders' shares must add up to exactly 100% (they add up to 90%)",
        at="[{partner: metro",
    ),
    "promotions: a funder's share that is not a share": appended(
        PROMOTION + "funders: [{partner: metro, share: sixty}, {merchant: 40%}]}\n"
        "partners: [{id: metro, name: Metro, type: platform}]\n",
        "'share' must be a share above 0 and at most 100%",
        at="sixty",
    ),
    "promotions: both funder and funders": appended(
        PROMOTION + "funder: metro, funders: [{partner: metro, share: 6000bp}, {merchant: 40%}]}\n"
        "partners: [{id: metro, name: Metro, type: platform}]\n",
        "names 'funder' and 'funders'; give one of them",
        at="funders: [",
    ),
    "partners: an unknown refund policy": appended(
        "partners: [{id: metro, name: Metro, type: platform, on_refund: clawbak}]\n",
        "clawback",
        at="clawbak",
    ),
    "references: a loyalty channel multiplier for a channel the manifest lacks": appended(
        LOYALTY + "      earning: {channel_multipliers_percent: {wbe: 200}}\n",
        "unknown channel 'wbe'; did you mean 'web'?",
        path="blocks[2].config.earning.channel_multipliers_percent.wbe",
        at="wbe",
    ),
    "references: a loyalty SKU multiplier for a SKU the catalog lacks": appended(
        LOYALTY + "      earning: {sku_multipliers_percent: {MILK-1: 200}}\n",
        "unknown SKU 'MILK-1'; did you mean 'MILK-1L'?",
        path="blocks[2].config.earning.sku_multipliers_percent.MILK-1",
        at="MILK-1: 200",
    ),
    "references: a loyalty partner the manifest lacks": appended(
        LOYALTY + "      partners: {metro: {rate_percent: 50}}\n",
        "unknown partner 'metro' (known: none; declare it under 'partners:')",
        path="blocks[2].config.partners.metro",
        at="metro",
    ),
    "references: a segment's tier no block declares": appended(
        LOYALTY + "      tiers: [{name: gold, threshold: '100.00 EUR'}]\nsegments: [{id: vip, tiers: [glod]}]\n",
        "unknown membership tier 'glod'; did you mean 'gold'?",
        path="segments[0].tiers[0]",
        at="glod",
    ),
    "references: a campaign's promotion no block declares": appended(
        PROMOTION
        + "skus: [MILK-1L]}\nsegments: [{id: all}]\n"
        + "campaigns: [{id: back, segment: all, promotion: milk-11, channel: web}]\n",
        "unknown promotion 'milk-11'; did you mean 'milk-10'?",
        path="campaigns[0].promotion",
        at="milk-11",
    ),
    # --- routing ----------------------------------------------------------------------------------------------
    "routing: to an unknown block": appended(
        "routing:\n  payment:\n    card: stripe\n",
        "no block with id 'stripe'",
        path="routing.payment.card",
        at="stripe",
    ),
    "routing: to a block that takes no payments": appended(
        "routing: {payment: {card: sql-inventory}}\n",
        "not a payment block",
        path="routing.payment.card",
        at="sql-inventory}",
    ),
    "routing: a method the block does not accept": appended(
        "routing: {payment: {cash: sandbox-card}}\n",
        "does not accept payment method 'cash'",
        path="routing.payment.cash",
        at="sandbox-card}",
    ),
    "routing: misspelled key": appended(
        "routing:\n  payments:\n    card: sandbox-card\n", "did you mean 'payment'?", path="routing.payments"
    ),
}


def place_of(content: str | bytes, marker: str) -> tuple[int, int]:
    """1-based line and column of the first ``marker`` in ``content``."""
    text = content.decode("latin-1") if isinstance(content, bytes) else content
    index = text.index(marker)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory that is also the current one, so a stray relative write would show up in it."""
    directory = tmp_path / "shop"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def write_manifest(directory: Path, content: str | bytes) -> Path:
    path = directory / "blocks.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def assert_refused(outcome: Outcome, *, status: int = 2) -> str:
    """Status ``status``, one ``error:`` line on stderr, nothing on stdout; returns the line."""
    assert outcome.status == status, outcome
    line = outcome.one_error_line()
    assert outcome.stdout == "", outcome.stdout
    return line


def test_the_base_manifest_is_valid(workdir: Path) -> None:
    """Every case below is this manifest with one defect."""
    manifest = write_manifest(workdir, VALID)
    outcome = blocks("assemble", "-m", manifest, "--check", env=ENV)
    assert outcome.status == 0, outcome.stderr


@pytest.mark.parametrize("check", [True, False], ids=["--check", "assemble"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_broken_manifest_is_refused_with_one_line_and_nothing_written(workdir: Path, name: str, check: bool) -> None:
    case = CASES[name]
    manifest = write_manifest(workdir, case.content)
    before = tree(workdir)

    outcome = blocks("assemble", "-m", manifest, *(["--check"] if check else []), env=ENV)

    line = assert_refused(outcome)
    assert tree(workdir) == before, "a refused manifest must leave nothing behind"
    assert str(manifest) in line, line
    if case.at is not None:
        row, column = place_of(case.content, case.at)
        assert line.startswith(f"error: {manifest}:{row}:{column}: "), line
    elif case.positioned:
        assert re.match(rf"error: {re.escape(str(manifest))}:\d+:\d+: ", line), line
    if case.path is not None:
        assert f": {case.path}: " in line, line
    assert case.says in line, line
    for secret in (SECRET, case.never_shown):
        if secret:
            assert secret not in outcome.stdout + outcome.stderr


# --- the file itself ----------------------------------------------------------------------------------------


MissingPath = Callable[[Path], Path]

MISSING: dict[str, tuple[MissingPath, str]] = {
    "no such file": (lambda d: d / "nope.yaml", "no such file"),
    "no such parent directory": (lambda d: d / "no" / "such" / "blocks.yaml", "no such file"),
    "a parent is a file": (lambda d: _file(d / "plain") / "blocks.yaml", "not a directory"),
    "a directory given as the manifest": (lambda d: _directory(d / "config"), "is a directory"),
    "a directory named blocks.yaml": (lambda d: _directory(d / "blocks.yaml"), "is a directory"),
    "a dangling symlink": (lambda d: _symlink(d / "blocks.yaml", d / "gone.yaml"), "no such file"),
    "a symlink loop": (lambda d: _loop(d), "symbolic links"),
}


def _file(path: Path) -> Path:
    path.write_text("not a directory\n", encoding="utf-8")
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _symlink(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _loop(directory: Path) -> Path:
    (directory / "a.yaml").symlink_to(directory / "b.yaml")
    (directory / "b.yaml").symlink_to(directory / "a.yaml")
    return directory / "a.yaml"


@pytest.mark.parametrize("check", [True, False], ids=["--check", "assemble"])
@pytest.mark.parametrize("name", list(MISSING))
def test_a_manifest_that_cannot_be_read_is_named_and_nothing_is_written(workdir: Path, name: str, check: bool) -> None:
    make, says = MISSING[name]
    manifest = make(workdir)
    before = tree(workdir)

    outcome = blocks("assemble", "-m", manifest, *(["--check"] if check else []))

    line = assert_refused(outcome)
    assert line.startswith(f"error: {manifest}: "), line
    assert says in line, line
    assert tree(workdir) == before


def test_the_default_manifest_is_blocks_yaml_in_the_current_directory(workdir: Path) -> None:
    line = assert_refused(blocks("assemble"))
    assert line == "error: blocks.yaml: no such file"
    assert tree(workdir) == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_manifest(workdir: Path) -> None:
    manifest = write_manifest(workdir, VALID)
    manifest.chmod(0)
    line = assert_refused(blocks("assemble", "-m", manifest, env=ENV))
    assert "permission denied" in line


def test_a_manifest_over_the_size_limit(workdir: Path) -> None:
    manifest = write_manifest(workdir, VALID + "# " + "x" * (2 * 1024 * 1024) + "\n")
    line = assert_refused(blocks("assemble", "-m", manifest, env=ENV))
    assert "larger than" in line
    assert not (workdir / ".blocks").exists()


# --- what must be accepted -----------------------------------------------------------------------------------


ACCEPTED: dict[str, str | bytes] = {
    "CRLF line endings": VALID.replace("\n", "\r\n"),
    "a UTF-8 byte order mark": "\ufeff" + VALID,
    "a BOM and CRLF together": ("\ufeff" + VALID.replace("\n", "\r\n")),
    "no final line break": VALID.rstrip("\n"),
    "trailing blanks and comments": VALID.replace("version: 1\n", "version: 1   # the format\n") + "\n# end\n",
    "non-ASCII text": VALID.replace("Corner Shop", "街角小店 Café"),
    "YAML anchors and merge keys": VALID.replace(
        "  - {id: shop, type: store, location: shop}\n",
        "  - &store {id: shop, type: store, location: shop}\n",
    ).replace("  - {id: web, type: online}\n", "  - {<<: *store, id: web, type: online, location: web}\n"),
    "an explicit string tag": VALID.replace("name: Corner Shop", "name: !!str 2024"),
    "an empty config": VALID.replace(
        "    config:\n      secret_key: ${SHOP_CARD_KEY}\n", "    config: {secret_key: '${SHOP_CARD_KEY}'}\n"
    ),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_harmless_variations_are_accepted(workdir: Path, name: str) -> None:
    content = ACCEPTED[name]
    manifest = write_manifest(workdir, content)
    outcome = blocks("assemble", "-m", manifest, "--check", env=ENV)
    assert outcome.status == 0, outcome.stderr
    assert outcome.stderr == ""
    assert "is valid (checked only: nothing written)" in outcome.stdout


def test_a_broken_copy_of_the_example_points_at_the_broken_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = copy_example("lucky-coffee", tmp_path)
    monkeypatch.chdir(manifest.parent)
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("reservation_ttl: 15m", "reservation_ttl: soon"), encoding="utf-8")
    before = tree(manifest.parent)

    line = assert_refused(blocks("assemble", "-m", manifest))

    row, column = place_of(manifest.read_text(encoding="utf-8"), "soon")
    assert line == (
        f"error: {manifest}:{row}:{column}: blocks[0].config.reservation_ttl: "
        "expected a duration like '15m', '2h' or '30s' (got 'soon')"
    )
    assert tree(manifest.parent) == before


# --- the environment -------------------------------------------------------------------------------------------


UNREACHABLE = "postgresql+psycopg://postgres:hunter2secret@127.0.0.1:1/nowhere"


def test_an_unreachable_database_is_a_failure_of_the_environment(workdir: Path) -> None:
    manifest = write_manifest(workdir, VALID.replace("channels:\n", f"database: {UNREACHABLE}\nchannels:\n", 1))
    before = tree(workdir)

    line = assert_refused(blocks("assemble", "-m", manifest, env=ENV), status=1)

    assert "cannot reach the database" in line
    assert "127.0.0.1:1/nowhere" in line
    assert "hunter2secret" not in line
    assert tree(workdir) == before


def test_check_does_not_connect_to_the_database(workdir: Path) -> None:
    manifest = write_manifest(workdir, VALID.replace("channels:\n", f"database: {UNREACHABLE}\nchannels:\n", 1))
    outcome = blocks("assemble", "-m", manifest, "--check", env=ENV)
    assert outcome.status == 0, outcome.stderr
    assert "hunter2secret" not in outcome.stdout
    assert sorted(tree(workdir)) == ["blocks.yaml"]


@pytest.mark.parametrize(
    ("database", "says"),
    [
        ("sqlite:///blocks.yaml", "not a database"),
        ("sqlite:///blocks.yaml/shop.db", "cannot prepare the stack's storage"),
    ],
    ids=["the manifest itself as the database", "a file where the database's directory should be"],
)
def test_storage_that_cannot_be_prepared_is_one_line(workdir: Path, database: str, says: str) -> None:
    manifest = write_manifest(workdir, VALID.replace("channels:\n", f"database: '{database}'\nchannels:\n", 1))
    before = tree(workdir)
    line = assert_refused(blocks("assemble", "-m", manifest, env=ENV), status=1)
    assert says in line
    assert tree(workdir) == before


# --- other commands' arguments ----------------------------------------------------------------------------------


@pytest.fixture
def corner_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = copy_example("corner-shop", tmp_path)
    monkeypatch.chdir(manifest.parent)
    assert blocks("assemble", "-m", manifest).status == 0  # operator commands open only an assembled stack
    return manifest


BAD_ARGUMENTS: dict[str, tuple[list[str], str]] = {
    "checkout: zero quantity": (
        ["checkout", "-m", "{m}", "--channel", "web", "--item", "MILK-1L:0", "--key", "k"],
        "quantity of MILK-1L must be a positive integer (got '0')",
    ),
    "checkout: negative quantity": (
        ["checkout", "-m", "{m}", "--channel", "web", "--item", "MILK-1L:-2", "--key", "k"],
        "must be a positive integer",
    ),
    "checkout: item without a quantity": (
        ["checkout", "-m", "{m}", "--channel", "web", "--item", "nonsense", "--key", "k"],
        "expected SKU:QTY (got 'nonsense')",
    ),
    "checkout: no item": (["checkout", "-m", "{m}", "--channel", "web", "--key", "k"], "Missing option '--item'"),
    "checkout: unknown channel": (
        ["checkout", "-m", "{m}", "--channel", "moon", "--item", "MILK-1L:1", "--key", "k"],
        "unknown channel 'moon'",
    ),
    "checkout: unknown sku": (
        ["checkout", "-m", "{m}", "--channel", "web", "--item", "CAVIAR:1", "--key", "k"],
        "unknown SKU 'CAVIAR'",
    ),
    "checkout: amount that is not money": (
        ["checkout", "-m", "{m}", "--channel", "web", "--item", "MILK-1L:1", "--key", "k", "--pay", "card:lots"],
        "expected money",
    ),
    "checkout: identity without a kind": (
        ["checkout", "-m", "{m}", "--channel", "web", "--item", "MILK-1L:1", "--key", "k", "--identity", "bob"],
        "expected KIND:VALUE",
    ),
    "refund: line that is not INDEX:QTY": (
        ["refund", "-m", "{m}", "ord_x", "--line", "a:b", "--key", "k"],
        "expected INDEX:QTY with whole numbers",
    ),
    "refund: unknown order": (["refund", "-m", "{m}", "ord_nope", "--key", "k"], "no order 'ord_nope'"),
    "cancel: unknown order": (["cancel", "-m", "{m}", "ord_nope"], "no order 'ord_nope'"),
    "simulate: no orders": (["simulate", "-m", "{m}", "--orders", "0"], "'--orders': 0 is not in the range"),
    "simulate: orders not a number": (["simulate", "-m", "{m}", "--orders", "many"], "'many' is not a valid integer"),
    "events: negative limit": (["events", "-m", "{m}", "--limit", "-1"], "'--limit': -1 is not in the range"),
    "orders: zero limit": (["orders", "-m", "{m}", "--limit", "0"], "'--limit': 0 is not in the range"),
    "unknown command": (["asemble", "{m}"], "No such command 'asemble'"),
    "unknown option": (["assemble", "-m", "{m}", "--chek"], "No such option '--chek'"),
}


@pytest.mark.parametrize("name", list(BAD_ARGUMENTS))
def test_bad_arguments_are_one_line_and_status_2(corner_shop: Path, name: str) -> None:
    arguments, says = BAD_ARGUMENTS[name]
    before = tree(corner_shop.parent)
    outcome = blocks(*(a.replace("{m}", str(corner_shop)) for a in arguments))
    line = assert_refused(outcome)
    assert says in line, line
    if name.startswith(("simulate", "events", "orders", "unknown", "checkout: zero", "checkout: neg", "refund: line")):
        # Refused while reading the arguments, before the stack is opened.
        assert tree(corner_shop.parent) == before


# --- the real process -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("yaml: unclosed flow mapping", 2),
        ("unsafe: python object apply", 2),
        ("config: live key where a sandbox key is required", 2),
        ("version: unsatisfiable by the installed block", 2),
    ],
)
def test_the_real_command_reports_a_broken_manifest_in_one_line(workdir: Path, name: str, status: int) -> None:
    case = CASES[name]
    manifest = write_manifest(workdir, case.content)
    outcome = blocks_process("assemble", "-m", "blocks.yaml", cwd=workdir, env={"SHOP_CARD_KEY": SECRET})
    line = assert_refused(outcome, status=status)
    assert line.startswith("error: blocks.yaml:")
    assert case.says in line
    assert sorted(tree(workdir)) == [manifest.name]
    assert "hi\n" not in outcome.stdout  # the os.system payload never ran


def test_the_real_command_reports_an_unreachable_database_with_status_1(workdir: Path) -> None:
    write_manifest(workdir, VALID.replace("channels:\n", f"database: {UNREACHABLE}\nchannels:\n", 1))
    outcome = blocks_process("assemble", cwd=workdir, env={"SHOP_CARD_KEY": SECRET})
    line = assert_refused(outcome, status=1)
    assert "cannot reach the database" in line
    assert sorted(tree(workdir)) == ["blocks.yaml"]


def test_the_real_command_reports_a_missing_manifest(workdir: Path) -> None:
    outcome = blocks_process("assemble", "--check", cwd=workdir)
    assert assert_refused(outcome) == "error: blocks.yaml: no such file"


def test_the_real_command_reports_bad_arguments_in_one_line(corner_shop: Path) -> None:
    outcome = blocks_process(
        "checkout", "-m", corner_shop, "--channel", "web", "--item", "MILK-1L:0", "--key", "k", cwd=corner_shop.parent
    )
    line = assert_refused(outcome)
    assert "quantity of MILK-1L must be a positive integer" in line
    assert "--help" in line
