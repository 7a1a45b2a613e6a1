"""The JSON Schema of the manifest accepts what the loader accepts and refuses unknown keys."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Literal

import attrs
import jsonschema
import pytest
import yaml

from retailblocks.hookspecs.blocks import NoConfig, secret_field
from retailblocks.manifest import config_json_schema, manifest_json_schema


class Mode(enum.Enum):
    LIVE = "live"
    TEST = "test"


@attrs.frozen
class InventoryConfig:
    """How stock is reserved."""

    reservation_ttl: timedelta = attrs.field(
        default=timedelta(minutes=15), metadata={"help": "how long stock stays reserved"}
    )
    locations: list[str] = attrs.field(factory=list)


@attrs.frozen
class PaymentConfig:
    secret_key: str = secret_field()
    mode: Mode = Mode.TEST
    region: Literal["cn", "hk"] = "cn"
    max_amount: int | None = None


BLOCKS = {"sql-inventory": InventoryConfig, "sandbox-payment": PaymentConfig, "plain": NoConfig}


@pytest.fixture
def validator() -> jsonschema.Draft202012Validator:
    schema = manifest_json_schema(BLOCKS)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _document(valid: str) -> dict:
    document = yaml.safe_load(valid)
    assert isinstance(document, dict)
    return document


def test_the_sample_manifest_validates(validator, valid):
    document = _document(valid)
    assert list(validator.iter_errors(document)) == []


def test_an_unknown_top_level_key_is_rejected(validator, valid):
    document = _document(valid)
    document["chanels"] = document.pop("channels")
    assert not validator.is_valid(document)


def test_an_unknown_config_key_is_rejected(validator, valid):
    document = _document(valid)
    document["blocks"][0]["config"]["reservaton_ttl"] = "15m"
    assert not validator.is_valid(document)


def test_config_is_checked_against_the_block_used(validator, valid):
    document = _document(valid)
    document["blocks"][0]["config"]["reservation_ttl"] = "soon"
    assert not validator.is_valid(document)
    document["blocks"][0]["config"]["reservation_ttl"] = "${TTL}"
    assert validator.is_valid(document)
    del document["blocks"][1]["config"]  # secret_key is required by the payment block
    assert not validator.is_valid(document)


def test_use_must_be_an_installed_block(validator, valid):
    document = _document(valid)
    document["blocks"][0]["use"] = "sql-inventroy"
    assert not validator.is_valid(document)


def test_store_channels_need_a_location(validator, valid):
    document = _document(valid)
    del document["channels"][1]["location"]
    assert not validator.is_valid(document)


def test_config_schema_details():
    schema = config_json_schema(PaymentConfig)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["secret_key"]
    properties = schema["properties"]
    assert properties["secret_key"] == {"type": "string", "writeOnly": True}
    assert properties["mode"]["default"] == "test"
    assert {"enum": ["live", "test"]} in properties["mode"]["anyOf"]
    assert {"enum": ["cn", "hk"]} in properties["region"]["anyOf"]
    inventory = config_json_schema(InventoryConfig)
    ttl = inventory["properties"]["reservation_ttl"]
    assert ttl["description"] == "how long stock stays reserved"
    assert ttl["default"] == "15m"
    assert inventory["description"] == "How stock is reserved."
    assert config_json_schema(NoConfig) == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
        "description": "The configuration of a block that takes none.",
    }
