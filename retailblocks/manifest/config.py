"""Block configuration: a manifest's raw ``config:`` node converted into the block's attrs
``Config`` class.

The field annotations are the schema. Supported types: ``str``, ``int``, ``float``, ``bool``,
``datetime.timedelta`` (written ``15m``), :class:`~retailblocks.model.Money` (``"12.50 CNY"``),
``Literal``, ``enum.Enum`` subclasses (by value),
``list``/``tuple``/``Sequence``/``set``/``frozenset`` of a supported type, ``dict[str,
T]``/``Mapping[str, T]``, unions such as ``T | None``, nested attrs classes, and ``Any``.

Secrets (fields made with :func:`~retailblocks.hookspecs.blocks.secret_field`) are never quoted in an
error, are rendered as ``"***"`` by :func:`config_to_public_dict`, and enter
:func:`config_fingerprint` only through a slow one-way hash.
"""

from __future__ import annotations

import collections.abc
import enum
import functools
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.hookspecs.blocks import is_secret
from retailblocks.manifest import readers
from retailblocks.manifest.errors import ManifestError, SourcePosition
from retailblocks.manifest.nodes import Node, position_in
from retailblocks.manifest.units import DURATION_HELP, format_duration, parse_duration
from retailblocks.model import Money
from retailblocks.model.limits import check_amount

T = TypeVar("T")

SECRET_MASK = "***"
_MONEY_HELP = "money like '12.50 CNY'"
_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_MAPPINGS = (dict, collections.abc.Mapping)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class ConfigTypeError(TypeError):
    """A config class uses a type this module cannot read from YAML: a bug of the block, not the
    manifest."""


def build_config(
    config_cls: type[T],
    node: Node | Mapping[str, Any] | None,
    *,
    position: SourcePosition | None = None,
    file: str | None = None,
    doc_path: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """An instance of the attrs class ``config_cls`` from a ``config:`` node.

    ``node`` is normally :attr:`BlockEntry.config <retailblocks.manifest.BlockEntry.config>`,
    already interpolated when the manifest was loaded. A plain mapping (or ``None`` for "no
    configuration") is accepted too: it is placed at ``position`` (or at ``file`` and ``doc_path``)
    for messages, and its strings are interpolated from ``environ`` when one is given. Raises
    :class:`ManifestError` for a bad value and :class:`ConfigTypeError` for an annotation of
    ``config_cls`` this module cannot read.
    """
    where = position or SourcePosition(file or "<config>", doc_path="config" if doc_path is None else doc_path)
    if node is None:
        node = Node({}, where)
    elif not isinstance(node, Node):
        node = Node.from_python(dict(node), where, environ=environ)
    if not attrs.has(config_cls):
        raise ConfigTypeError(f"{config_cls.__qualname__} is not an attrs class")
    result: T = _convert(config_cls, node, secret=False)
    return result


def _fields(cls: type[Any]) -> tuple[attrs.Attribute[Any], ...]:
    try:
        attrs.resolve_types(cls)
    except NameError as error:
        raise ConfigTypeError(f"cannot resolve the annotations of {cls.__qualname__}: {error}") from None
    return tuple(field for field in attrs.fields(cls) if field.init)


def _key(field: attrs.Attribute[Any]) -> str:
    # attrs strips the underscore of private attributes for __init__; the manifest uses that
    # name too.
    return field.alias or field.name


def _describe_type(tp: Any) -> str:
    tp = _strip_annotated(tp)
    origin = typing.get_origin(tp)
    names: dict[Any, str] = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean (true or false)",
        timedelta: DURATION_HELP.removeprefix("expected "),
        Money: _MONEY_HELP,
        type(None): "nothing (null)",
    }
    if tp in names:
        return names[tp]
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(value) for value in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(member.value) for member in tp)
    if origin in _SEQUENCES:
        return "a list"
    if origin in _MAPPINGS or (isinstance(tp, type) and attrs.has(tp)):
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(arg) for arg in typing.get_args(tp))
    return "a value"


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _convert(tp: Any, node: Node, *, secret: bool) -> Any:
    tp = _strip_annotated(tp)
    if tp is Any or tp is object or tp is None:
        return node.to_python()
    origin = typing.get_origin(tp)
    if origin is not None:
        return _convert_generic(tp, origin, node, secret=secret)
    if not isinstance(tp, type):
        raise ConfigTypeError(f"unsupported configuration type {tp!r}")
    if tp is bool:
        return _boolean(node, secret=secret)
    if tp is int:
        return readers.integer(node, secret=secret)
    if tp is float:
        return _number(node, secret=secret)
    if tp is str:
        return readers.string(node, secret=secret, allow_empty=True)
    if tp is timedelta:
        return _parsed(node, parse_duration, DURATION_HELP.removeprefix("expected "), secret)
    if tp is Money:
        return _parsed(node, _bounded_money, _MONEY_HELP, secret)
    if issubclass(tp, enum.Enum):
        return _choice(node, {member.value: member for member in tp}, secret=secret)
    if attrs.has(tp):
        return _build_attrs(tp, node, secret=secret)
    if tp is type(None):
        if node.value is not None:
            raise readers.mismatch(node, "nothing (null)", secret=secret)
        return None
    raise ConfigTypeError(f"unsupported configuration type {tp.__qualname__}")


def _convert_generic(tp: Any, origin: Any, node: Node, *, secret: bool) -> Any:
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return _choice(node, {value: value for value in args}, secret=secret)
    if origin in (typing.Union, types.UnionType):
        return _union(args, node, secret=secret)
    if origin in _SEQUENCES:
        items = readers.sequence(node)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(items) != len(args):
                raise ManifestError.at(node, f"expected a list of {len(args)} items (got {len(items)})")
            return tuple(_convert(arg, item, secret=secret) for arg, item in zip(args, items, strict=True))
        item_type = args[0] if args else Any
        values = [_convert(item_type, item, secret=secret) for item in items]
        if origin in (set, frozenset, collections.abc.Set):
            return frozenset(values) if origin is not set else set(values)
        return values if origin is list else tuple(values)
    if origin in _MAPPINGS:
        key_type, value_type = args if args else (str, Any)
        if _strip_annotated(key_type) not in (str, Any):
            raise ConfigTypeError(f"mapping keys must be str in a configuration type (got {tp!r})")
        return {key: _convert(value_type, child, secret=secret) for key, child in readers.mapping(node).items()}
    raise ConfigTypeError(f"unsupported configuration type {tp!r}")


def _bounded_money(value: Any) -> Money:
    # Every block's money is bounded here once, so that no block can be configured with an amount
    # whose sums would overflow a column; whether a negative amount means anything is the block's call.
    money = Money.parse(value)
    check_amount(money.amount, "an amount")
    return money


def _boolean(node: Node, *, secret: bool) -> bool:
    value = node.value
    if isinstance(value, str) and node.from_environment:
        # ``enabled: ${FEATURE}``: the environment only holds text.
        lowered = value.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
    if not isinstance(value, bool):
        raise readers.mismatch(node, "a boolean (true or false)", secret=secret)
    return value


def _number(node: Node, *, secret: bool) -> float:
    value = node.value
    if isinstance(value, str) and node.from_environment:
        try:
            return float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise readers.mismatch(node, "a number", secret=secret)
    return float(value)


def _parsed(node: Node, parse: typing.Callable[[Any], T], expected: str, secret: bool) -> T:
    if not node.is_scalar or node.value is None:
        raise readers.mismatch(node, expected, secret=secret)
    try:
        # The parser sees numbers too, so that ``ttl: 15`` is told it lacks a unit.
        return parse(node.value)
    except InvalidValue as error:
        if secret:
            raise readers.mismatch(node, expected, secret=True) from None
        raise ManifestError.at(node, str(error)) from None


def _choice(node: Node, choices: Mapping[Any, Any], *, secret: bool) -> Any:
    value = node.value
    for candidate, result in choices.items():
        # ``type(...) is`` so that true never matches 1, nor 1 matches 1.0.
        if type(candidate) is type(value) and candidate == value:
            return result
    listed = ", ".join(repr(candidate) for candidate in choices)
    hint = ""
    if isinstance(value, str) and not secret:
        hint = readers.suggestion(value, [c for c in choices if isinstance(c, str)])
    raise ManifestError.at(node, f"expected one of {listed} (got {node.describe(secret=secret)}){hint}")


def _union(args: tuple[Any, ...], node: Node, *, secret: bool) -> Any:
    options = [arg for arg in args if arg is not type(None)]
    if node.value is None and len(options) < len(args):
        return None
    if len(options) == 1:
        return _convert(options[0], node, secret=secret)
    for option in options:
        try:
            return _convert(option, node, secret=secret)
        except ManifestError:
            continue
    expected = " or ".join(_describe_type(arg) for arg in args)
    raise readers.mismatch(node, expected, secret=secret)


def _build_attrs(cls: type[T], node: Node, *, secret: bool) -> T:
    fields = _fields(cls)
    by_key = {_key(field): field for field in fields}
    required = [key for key, field in by_key.items() if field.default is attrs.NOTHING]
    entries = readers.check_keys(node, by_key, required)
    kwargs: dict[str, Any] = {}
    for key, child in entries.items():
        field = by_key[key]
        kwargs[key] = _convert(field.type, child, secret=secret or is_secret(field))
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as error:
        raise _locate(fields, kwargs, entries, node, error, secret=secret) from None


def _locate(
    fields: tuple[attrs.Attribute[Any], ...],
    kwargs: dict[str, Any],
    entries: dict[str, Node],
    node: Node,
    error: Exception,
    *,
    secret: bool,
) -> ManifestError:
    """Which field made the attrs class refuse its arguments, found by re-running its converter and
    validator alone; the whole mapping is blamed when no single field is
    (``__attrs_post_init__``)."""
    values = {field.name: kwargs.get(_key(field), field.default) for field in fields}
    instance = types.SimpleNamespace(**values)
    # A validator may quote any field it compares against, so every secret is checked for in
    # messages.
    secrets = [kwargs[_key(f)] for f in fields if _key(f) in kwargs and (secret or is_secret(f))]
    for field in fields:
        key = _key(field)
        if key not in kwargs:
            continue
        value = kwargs[key]
        # attrs types ``converter`` as a Converter object, but classic converters are
        # plain callables.
        converter: Any = field.converter
        try:
            if callable(converter):
                value = converter(value)
            if field.validator is not None:
                field.validator(instance, field, value)
        except (ValueError, TypeError) as field_error:
            return ManifestError.at(entries[key], _message(field_error, secrets))
    # A cross-field rule that leads its message with the field at fault (``channels.web.locations[1]:
    # …``) is pointed at that field.
    message = _message(error, secrets)
    at_fault, _, sentence = message.partition(": ")
    where = position_in(node, at_fault, quoting=sentence) if sentence else None
    return ManifestError.at(where, sentence) if where is not None else ManifestError.at(node, message)


def _message(error: Exception, secrets: list[Any]) -> str:
    text = str(error).rstrip(".") or type(error).__name__
    for value in secrets:
        shown = [str(value), repr(value)] if value not in (None, "") else []
        if any(form in text for form in shown):
            return "invalid value (secret value hidden)"
    return text


def config_to_public_dict(instance: Any) -> dict[str, Any]:
    """A JSON-friendly rendering of a config instance for printing and lock files; secrets are
    ``***``."""
    if not attrs.has(type(instance)):
        raise TypeError(f"expected an attrs config instance, got {type(instance).__name__}")
    rendered = _render(instance, _mask)
    assert isinstance(rendered, dict)
    return rendered


def config_fingerprint(instance: Any) -> str:
    """A SHA-256 hex digest that changes whenever any field, secret or not, changes.

    Secrets enter it through PBKDF2 rather than a plain hash: the digest is written to the lock
    file, and a plain hash of a short secret could be reversed by trying candidates.
    """
    if not attrs.has(type(instance)):
        raise TypeError(f"expected an attrs config instance, got {type(instance).__name__}")
    canonical = json.dumps(_render(instance, _hash_secret), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def public_value(value: Any) -> Any:
    """Any configuration value (attrs instance, duration, money, list…) as plain JSON-friendly data,
    secrets masked: what :func:`config_to_public_dict` does for a whole configuration."""
    return _render(value, _mask)


def _mask(value: Any) -> Any:
    return None if value is None else SECRET_MASK


def _hash_secret(value: Any) -> Any:
    plain = json.dumps(_render(value, _hash_secret), sort_keys=True, ensure_ascii=False)
    return {"secret-pbkdf2": _derive(plain)}


@functools.lru_cache(maxsize=256)
def _derive(plain: str) -> str:
    # PBKDF2 is slow on purpose (tens of milliseconds), and one assembly fingerprints a configuration several
    # times (the check, the plan, the lock): a platform assembling fifty merchants spent most of its CPU here.
    # The cache holds only what the configuration objects in this process hold already.
    return hashlib.pbkdf2_hmac("sha256", plain.encode("utf-8"), b"retailblocks-config", 100_000).hex()


def _render(value: Any, on_secret: typing.Callable[[Any], Any]) -> Any:
    # Money is an attrs class too; value types with a text form are rendered as that text.
    if isinstance(value, Money):
        return value.format()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, enum.Enum):
        return _render(value.value, on_secret)
    if attrs.has(type(value)):
        rendered: dict[str, Any] = {}
        for field in attrs.fields(type(value)):
            if not field.init:
                continue
            item = getattr(value, field.name)
            rendered[_key(field)] = on_secret(item) if is_secret(field) else _render(item, on_secret)
        return rendered
    if isinstance(value, Mapping):
        return {str(key): _render(item, on_secret) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        items = [_render(item, on_secret) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))
    if isinstance(value, list | tuple):
        return [_render(item, on_secret) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
