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
from retailblocks.hookspecs.reach import MEDIUMS
from retailblocks.manifest.api import ADMIN_AREAS
from retailblocks.manifest.conditions import MAX_WINDOW_DAYS
from retailblocks.manifest.config import public_value
from retailblocks.manifest.model import SUPPORTED_VERSION, PartnerType, RefundPolicy
from retailblocks.manifest.units import DURATION_PATTERN, WEIGHT_PATTERN
from retailblocks.model import ChannelType, Money
from retailblocks.model._validators import SLUG
from retailblocks.model.member import IdentityKind

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


_CONDITION = "segment_condition"
_CONDITION_REF: dict[str, Any] = {"$ref": f"#/$defs/{_CONDITION}"}


def _condition_bodies() -> dict[str, dict[str, Any]]:
    """Each condition kind of the segment language (see retailblocks.manifest.conditions) and its body."""
    count = {"type": "integer", "minimum": 0}
    amount = {
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?(\s+[A-Z]{3})?\s*$"},
        ],
        "description": "an amount of the merchant's currency: 200, '200.00' or '200.00 CNY'",
    }
    day = {"type": "string", "format": "date"}
    names = {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        ]
    }
    window = {
        "within_days": {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_DAYS, "description": "the last N days"},
        "from": {**day, "description": "first day (UTC) of the window, included"},
        "to": {**day, "description": "last day (UTC) of the window, included"},
    }
    bounded = {"anyOf": [{"required": ["at_least"]}, {"required": ["at_most"]}]}

    def metric(threshold: dict[str, Any], description: str) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "description": description,
            "properties": {
                "at_least": threshold,
                "at_most": threshold,
                **window,
                "channel": names,
                "category": names,
                "sku": names,
            },
            **bounded,
        }

    score = {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 5},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "at_least": {"type": "integer", "minimum": 0, "maximum": 5},
                    "at_most": {"type": "integer", "minimum": 0, "maximum": 5},
                },
                **bounded,
            },
        ]
    }
    four = {"type": "array", "minItems": 4, "maxItems": 4}
    conditions = {"type": "array", "minItems": 1, "items": _CONDITION_REF}
    return {
        "all": {**conditions, "description": "every condition holds"},
        "any": {**conditions, "description": "at least one condition holds"},
        "not": {**_CONDITION_REF, "description": "the condition does not hold"},
        "orders": metric(count, "sales (orders not pending, failed or cancelled)"),
        "spend": metric(amount, "spend net of refunds"),
        "units": metric(count, "units bought, less units refunded"),
        "points": metric(count, "loyalty points earned by the orders"),
        "recency": {
            "type": "object",
            "additionalProperties": False,
            "description": "whole days since the last purchase",
            "properties": {"at_least": count, "at_most": count},
            **bounded,
        },
        "last_purchase": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "description": "the day (UTC) of the last purchase",
            "properties": {"from": day, "to": day},
        },
        "rfm": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "description": "recency, frequency and monetary scores from 0 to 5 on fixed thresholds",
            "properties": {
                "recency": score,
                "frequency": score,
                "monetary": score,
                "scale": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "recency_days": {**four, "items": count},
                        "frequency_orders": {**four, "items": count},
                        "monetary": {**four, "items": amount},
                        "period_days": {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_DAYS},
                    },
                },
            },
        },
        "tier": {**names, "description": "the membership tier is one of these"},
        "has_identity": {"enum": [kind.value for kind in IdentityKind], "description": "an identity kind"},
        "signal": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "description": "ingested signals of a type ('social.like', or a prefix like 'social.')",
            "properties": {"type": names, "at_least": count, "at_most": count, **window, "channel": names},
            **bounded,
        },
    }


def _condition_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "description": "one condition of the segment language; combine several with all, any and not",
        "properties": _condition_bodies(),
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
        "description": "members picked by rules and conditions over the fused history; every one given must hold",
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
            # The segment language's conditions, ANDed with the flat rules above.
            **_condition_bodies(),
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
            "message": {
                "type": "object",
                "required": ["medium", "text"],
                "additionalProperties": False,
                "description": "sent to each treated member through a reach block; {coupon} is their code",
                "properties": {
                    "medium": {"enum": list(MEDIUMS)},
                    "text": {"type": "string", "minLength": 1, "maxLength": 1000},
                },
            },
            "starts": day,
            "ends": day,
            "send_window": {
                "type": "object",
                "required": ["from", "to"],
                "additionalProperties": False,
                "description": "the hours (UTC) in which messages go out",
                "properties": {
                    "from": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                    "to": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                },
            },
            "holdout": {
                "type": "string",
                "pattern": "^[0-9]{1,2}(\\.[0-9]{1,2})?%$",
                "description": "the share of the segment kept from the campaign to measure uplift",
            },
            "seed": {"type": "string", "minLength": 1},
            "frequency_cap": {
                "type": "object",
                "required": ["messages", "days"],
                "additionalProperties": False,
                "description": "at most this many messages to a member in any so many days, across campaigns",
                "properties": {
                    "messages": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "days": {"type": "integer", "minimum": 1, "maximum": 366},
                },
            },
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
            _CONDITION: _condition_schema(),
            **{_config_def(name): config_json_schema(cls) for name, cls in sorted(block_configs.items())},
        },
    }
