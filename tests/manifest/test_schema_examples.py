"""The schema ``blocks schema`` prints accepts every example manifest and every ``${VAR}`` form the loader
interpolates, ``${VAR:-default}`` included, so an editor never flags a valid manifest (issue 11, item 18)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from retailblocks.assembly.discovery import discover
from retailblocks.manifest import manifest_json_schema
from tests.helpers import SHOP_MANIFEST
from tests.manifest.test_jsonschema import BLOCKS

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/blocks.yaml"))


@pytest.fixture(scope="module")
def installed_schema() -> jsonschema.Draft202012Validator:
    configs = {name: info.block_class.Config for name, info in discover().items() if info.block_class is not None}
    schema = manifest_json_schema(configs)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("manifest", EXAMPLES, ids=lambda path: path.parent.name)
def test_every_example_manifest_validates(installed_schema: jsonschema.Draft202012Validator, manifest: Path) -> None:
    assert errors(installed_schema, yaml.safe_load(manifest.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("manifest", EXAMPLES, ids=lambda path: path.parent.name)
def test_typed_values_written_as_a_reference_with_a_default_validate(
    installed_schema: jsonschema.Draft202012Validator, manifest: Path
) -> None:
    document = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    inventory = next(block for block in document["blocks"] if block["use"] == "sql-inventory")
    inventory.setdefault("config", {})["reservation_ttl"] = "${RESERVATION_TTL:-20m}"
    document["database"] = "${SHOP_DATABASE:-sqlite:///.blocks/shop.db}"
    assert errors(installed_schema, document) == []


VALID_WITH_DEFAULTS = """
version: 1
merchant: {id: shop, name: Shop, currency: CNY}
database: ${DATABASE:-sqlite:///.blocks/shop.db}
channels: [{id: web, type: online}]
blocks:
  - use: sql-inventory
    config: {reservation_ttl: "${TTL:-15m}"}
  - use: sandbox-payment
    config:
      secret_key: ${KEY:-sk_test_x}
      mode: ${MODE:-test}
      region: ${REGION:-cn}
      max_amount: ${MAX_AMOUNT:-500}
  - use: plain
"""


def test_every_typed_field_takes_a_reference_with_a_default() -> None:
    validator = jsonschema.Draft202012Validator(manifest_json_schema(BLOCKS))
    assert errors(validator, yaml.safe_load(VALID_WITH_DEFAULTS)) == []
    # An empty default is a default too, as in shells.
    empty_default = yaml.safe_load(VALID_WITH_DEFAULTS.replace("${MAX_AMOUNT:-500}", "${MAX_AMOUNT:-}"))
    assert errors(validator, empty_default) == []


@pytest.mark.parametrize("written", ["${}", "${1ABC}", "${MAX AMOUNT}", "500 or so"])
def test_what_is_not_a_reference_still_fails_a_typed_field(written: str) -> None:
    validator = jsonschema.Draft202012Validator(manifest_json_schema(BLOCKS))
    document = yaml.safe_load(VALID_WITH_DEFAULTS.replace("${MAX_AMOUNT:-500}", f"'{written}'"))
    assert errors(validator, document)


def test_a_manifest_with_an_api_section_validates(installed_schema: jsonschema.Draft202012Validator) -> None:
    from tests.http.conftest import API_SECTION

    document = yaml.safe_load(textwrap.dedent(SHOP_MANIFEST).replace("DATABASE", "sqlite:///shop.db") + API_SECTION)
    assert errors(installed_schema, document) == []
    document["api"]["keys"].append({"id": "both", "channel": "web", "scopes": ["orders:read"], "key": "${K}"})
    document["api"]["keys"].append({"id": "clear", "channel": "web", "key": "rb_pk_in_clear_text_0123456789"})
    document["api"]["keys"].append({"id": "odd", "scopes": ["cellar:read"], "key": "${K2}"})
    found = errors(installed_schema, document)
    assert [error.split(":")[0] for error in found] == ["api/keys/6", "api/keys/7/key", "api/keys/8/scopes/0"]
