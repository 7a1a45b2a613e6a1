"""JSON Schema (draft 2020-12) of the manifest and of block configurations, for editors and ``blocks
schema``.

The schemas are derived from the same annotations :func:`~retailblocks.manifest.build_config` reads,
so what an editor accepts is what assembly accepts. Values that may come from ``${VAR}``
interpolation (numbers, booleans, durations, enums) also accept a string holding a reference.
"""

from __future__ import annotations

import collections.abc
import enum
import types
import typing
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

from retailblocks.hookspecs.blocks import is_secret
from retailblocks.manifest.api import ADMIN_AREAS
from retailblocks.manifest.config import public_value
from retailblocks.manifest.model import SUPPORTED_VERSION, PartnerType, RefundPolicy
from retailblocks.manifest.units import DURATION_PATTERN, WEIGHT_PATTERN
from retailblocks.model import ChannelType, Money
from retailblocks.model._validators import SLUG

DIALECT = "https://json-schema.org/draft/2020-12/schema"
MONEY_PATTERN = r"^\s*-?\d+(\.\d+)?\s+[A-Z]{3}\s*$"
_ENV_REFERENCE: dict[str, Any] = {
    "type": "string",
    # The forms interpolate.expand reads: ``${NAME}`` and ``${NAME:-default}`` (the default runs to the
    # first ``}``, as there).
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "a ${VAR} or ${VAR:-default} reference, interpolated from the environment",
}
_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_MAPPINGS = (dict, collections.abc.Mapping)
# attrs' stubs present Factory as a function; at run time it is the class of default factories.
_FACTORY: type[Any] = type(attrs.Factory(list))
_SLUG: dict[str, Any] = {"type": "string", "pattern": SLUG.pattern}

_FROM_ENVIRONMENT: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{",
    "description": "from the environment: ${VARIABLE}",
}
_WEBHOOK: dict[str, Any] = {
    "type": "object",
    "required": ["id", "url", "events", "secret"],
    "additionalProperties": False,
    "properties": {
        "id": {**_SLUG, "maxLength": 48},
        "url": {"type": "string", "pattern": r"^(https?://|.*\$\{)"},
        "events": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string"},
            "description": "event types; 'order.' for every type it begins, '*' for all",
        },
        "secret": _FROM_ENVIRONMENT,
        "timeout_seconds": {"type": "number", "minimum": 0.1, "maximum": 60},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 50},
        "history": {"type": "boolean", "description": "true: also send the events from before it was added"},
    },
}

_SCOPE = "^(\\*|(" + "|".join(ADMIN_AREAS) + "):(read|write))$"
_API_KEY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "key"],
    "additionalProperties": False,
    "properties": {
        "id": _SLUG,
        "key": {
            "type": "string",
            "pattern": r"(\$\{|^sha256:[0-9a-f]{64}$)",
            "description": "${VARIABLE}, or sha256: and the key's SHA-256 in hex; never the key itself",
        },
        "channel": {**_SLUG, "description": "a publishable store key, bound to this channel"},
        "scopes": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": _SCOPE},
            "description": "a secret admin key's areas: 'orders:read', 'stock:write'… or '*'",
        },
        "cors": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|\*)$"},
        },
        "rate_per_minute": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "revoked": {"type": "boolean"},
        "signs_in_shoppers": {"type": "boolean"},
    },
    "oneOf": [{"required": ["channel"]}, {"required": ["scopes"]}],
}
_API: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "who may call the stack over HTTP (blocks serve)",
    "properties": {
        "session_secret": {**_FROM_ENVIRONMENT, "description": "signs shoppers' sessions; ${VARIABLE}"},
        "max_body_bytes": {"type": "integer", "minimum": 1024, "maximum": 64 * 1024 * 1024},
        "keys": {"type": "array", "items": _API_KEY},
    },
}


def _or_environment(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, _ENV_REFERENCE]}


def config_json_schema(config_cls: type[Any]) -> dict[str, Any]:
    """The schema of an attrs config class: an object with ``additionalProperties: false``."""
    return _schema(config_cls, ())


def _schema(tp: Any, active: tuple[type[Any], ...]) -> dict[str, Any]:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if tp is Any or tp is object or tp is None:
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return _or_environment({"enum": list(args)})
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema(arg, active) for arg in args]}
    if origin in _SEQUENCES:
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return {
                "type": "array",
                "prefixItems": [_schema(arg, active) for arg in args],
                "items": False,
                "minItems": len(args),
            }
        return {"type": "array", "items": _schema(args[0], active) if args else {}}
    if origin in _MAPPINGS:
        values = _schema(args[1], active) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": values}
    simple: dict[Any, dict[str, Any]] = {
        str: {"type": "string"},
        int: _or_environment({"type": "integer"}),
        float: _or_environment({"type": "number"}),
        bool: _or_environment({"type": "boolean"}),
        type(None): {"type": "null"},
        timedelta: _or_environment({"type": "string", "pattern": DURATION_PATTERN}),
        Money: _or_environment({"type": "string", "pattern": MONEY_PATTERN}),
    }
    if tp in simple:
        return simple[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _or_environment({"enum": [member.value for member in tp]})
    if isinstance(tp, type) and attrs.has(tp):
        return _object_schema(tp, active)
    # An annotation build_config would refuse: accept anything rather than fail to print a schema.
    return {}


def _object_schema(cls: type[Any], active: tuple[type[Any], ...]) -> dict[str, Any]:
    if cls in active:  # a recursive config class: stop rather than recurse forever
        return {"type": "object"}
    attrs.resolve_types(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        key = field.alias or field.name
        schema = dict(_schema(field.type, (*active, cls)))
        help_text = field.metadata.get("help")
        if help_text:
            schema["description"] = str(help_text)
        if is_secret(field):
            schema["writeOnly"] = True
        if field.default is attrs.NOTHING:
            required.append(key)
        elif not is_secret(field):
            default = _default(field)
            if default is not attrs.NOTHING:
                schema["default"] = default
        properties[key] = schema
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        result["required"] = required
    doc = (cls.__doc__ or "").strip()
    if doc and not doc.startswith(f"{cls.__name__}("):  # attrs' generated signature is no doc
        result["description"] = doc.split("\n\n", 1)[0]
    return result


def _default(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    if isinstance(default, _FACTORY):
        if default.takes_self:
            return attrs.NOTHING
        default = default.factory()
    try:
        return public_value(default)
    except Exception:  # a default we cannot show is simply not shown
        return attrs.NOTHING


def _config_def(block_name: str) -> str:
    return "config-" + block_name


def _pointer(key: str) -> str:
    # JSON Pointer escaping, for the (unusual) entry-point name holding '~' or '/'.
    return key.replace("~", "~0").replace("/", "~1")


def _block_schema(block_configs: Mapping[str, type[Any]]) -> dict[str, Any]:
    names = sorted(block_configs)
    selectors: list[dict[str, Any]] = []
    for name in names:
        config_ref: dict[str, Any] = {"$ref": f"#/$defs/{_pointer(_config_def(name))}"}
        takes_null = "required" not in config_json_schema(block_configs[name])
        selectors.append(
            {
                "if": {"properties": {"use": {"const": name}}, "required": ["use"]},
                "then": {
                    "properties": {"config": {"anyOf": [config_ref, {"type": "null"}]} if takes_null else config_ref},
                    **({} if takes_null else {"required": ["config"]}),
                },
            }
        )
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["use"],
        "additionalProperties": False,
        "properties": {
            "use": {"enum": names, "description": "the block's entry-point name"},
            "id": {**_SLUG, "description": "the instance id; defaults to the block's name"},
            "version": {
                "type": "string",
                "description": "a PEP 440 specifier the installed block must satisfy",
            },
            "config": {"type": ["object", "null"]},
        },
    }
    if selectors:
        schema["allOf"] = selectors
    return schema


_BLOCK_IDS: dict[str, Any] = {"type": "array", "items": _SLUG, "uniqueItems": True}
_MARKETING_STACKING: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "how the marketing blocks' adjustments combine (docs/marketing-stacking.md); left out: the order of "
        "`blocks`, only blocks that declare themselves exclusive are, no groups"
    ),
    "properties": {
        "order": {
            **_BLOCK_IDS,
            "description": "every marketing block's id once, in the order they apply (each sees what came before)",
        },
        "exclusive": {
            **_BLOCK_IDS,
            "description": "blocks whose adjustments never combine: they or the others, whichever gives more",
        },
        "best_of": {
            "type": "array",
            "items": {**_BLOCK_IDS, "minItems": 2},
            "description": "groups of blocks within which only the one giving the largest discount applies",
        },
    },
}


def manifest_json_schema(block_configs: Mapping[str, type[Any]]) -> dict[str, Any]:
    """The whole ``blocks.yaml`` schema; ``block_configs`` maps each installed block's name to its
    config class, which the entries that ``use`` it are checked against."""
    money = _or_environment({"type": "string", "pattern": MONEY_PATTERN})
    channel = {
        "type": "object",
        "required": ["id", "type"],
        "additionalProperties": False,
        "properties": {
            "id": _SLUG,
            "type": {"enum": [kind.value for kind in ChannelType]},
            "location": {"type": "string", "minLength": 1},
            "name": {"type": "string"},
            "settles_with": {**_SLUG, "description": "the partner that collects this marketplace's payments"},
        },
        "if": {"properties": {"type": {"const": ChannelType.STORE.value}}},
        "then": {"required": ["location"]},
    }
    product = {
        "type": "object",
        "required": ["sku", "title", "price"],
        "additionalProperties": False,
        "properties": {
            "sku": {"type": "string", "minLength": 1},
            "title": {"type": "string", "minLength": 1},
            "price": money,
            "category": {"type": "string", "minLength": 1},
            "weight": {
                "anyOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "string", "pattern": WEIGHT_PATTERN},
                ]
            },
            "channels": {"type": "array", "items": {"type": "string"}},
            "channel_prices": {"type": "object", "additionalProperties": money},
        },
    }
    partner = {
        "type": "object",
        "required": ["id", "name", "type"],
        "additionalProperties": False,
        "properties": {
            "id": _SLUG,
            "name": {"type": "string", "minLength": 1},
            "type": {"enum": [kind.value for kind in PartnerType]},
            "on_refund": {
                "enum": [policy.value for policy in RefundPolicy],
                "description": "a refunded order's partner-funded discount: keep billing it, or claw it back",
            },
        },
    }
    count = {"type": "integer", "minimum": 0}
    day = {"type": "string", "format": "date"}
    names = {"type": "array", "items": {"type": "string", "minLength": 1}}
    segment = {
        "type": "object",
        "required": ["id"],
        "additionalProperties": False,
        "description": "members picked by rules over the fused profile; every rule given must hold",
        "properties": {
            "id": _SLUG,
            "description": {"type": "string"},
            "min_orders": count,
            "max_orders": count,
            "min_spend": money,
            "max_spend": money,
            "purchased_within_days": count,
            "not_purchased_for_days": count,
            "tiers": names,
            "channels": names,
            "skus": names,
            "categories": names,
            "last_purchase_before": day,
            "last_purchase_after": day,
        },
    }
    campaign = {
        "type": "object",
        "required": ["id", "segment", "promotion", "channel"],
        "additionalProperties": False,
        "description": "coupons of one promotion issued to a segment through a channel",
        "properties": {
            "id": _SLUG,
            "segment": _SLUG,
            "promotion": {"type": "string", "minLength": 1},
            "channel": _SLUG,
            "description": {"type": "string"},
        },
    }
    return {
        "$schema": DIALECT,
        "title": "retailblocks manifest (blocks.yaml)",
        "type": "object",
        "required": ["version", "merchant", "channels", "blocks"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": SUPPORTED_VERSION},
            "merchant": {
                "type": "object",
                "required": ["id", "name", "currency"],
                "additionalProperties": False,
                "properties": {
                    "id": _SLUG,
                    "name": {"type": "string", "minLength": 1},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                },
            },
            "database": {
                "type": "string",
                "pattern": r"^(sqlite:///|postgresql(\+psycopg)?://|.*\$\{)",
                "description": "sqlite:///path/to/file.db or postgresql+psycopg://user@host/db",
            },
            "channels": {"type": "array", "minItems": 1, "items": channel},
            "catalog": {"type": "array", "items": product},
            "blocks": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/block"}},
            "routing": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "payment": {
                        "type": "object",
                        "additionalProperties": _SLUG,
                        "description": "payment method → id of the block that answers it",
                    },
                    "marketing": _MARKETING_STACKING,
                },
            },
            "partners": {"type": "array", "items": partner},
            "segments": {"type": "array", "items": segment},
            "campaigns": {"type": "array", "items": campaign},
            "webhooks": {"type": "array", "items": _WEBHOOK},
            "api": _API,
        },
        "$defs": {
            "block": _block_schema(block_configs),
            **{_config_def(name): config_json_schema(cls) for name, cls in sorted(block_configs.items())},
        },
    }
