"""JSON documents handed to the database as text the caller encoded, and encoded in parts."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from json import encoder as _stdlib_encoder
from typing import Any

import sqlalchemy as sa


def json_encoder(
    default: Callable[[Any], Any] | None = None,
    *,
    sort_keys: bool = False,
    separators: tuple[str, str] = (", ", ": "),
) -> Callable[[Any], str]:
    """``json.dumps`` with these options, as one function made once: the same text, in half the time.

    ``json.dumps`` builds a new encoder for every call, which costs more than encoding a small document
    (an event's payload, one entry of a saga's state); a flow encodes dozens per checkout. The encoder
    made here is kept, and it keeps no state between calls because it does not track containers for
    circular references (as ``check_circular=False``): a document that contains itself fails with
    RecursionError rather than ValueError. Documents here are trees of plain data.
    """
    make = getattr(_stdlib_encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator: the stdlib's own path, with the same options
        stdlib = json.JSONEncoder(default=default, sort_keys=sort_keys, separators=separators)
        return stdlib.encode
    item_separator, key_separator = separators
    encode_string = _stdlib_encoder.encode_basestring_ascii
    iterencode = make(
        None, default or _not_serializable, encode_string, None, key_separator, item_separator, sort_keys, False, True
    )

    def encode(value: Any) -> str:
        if type(value) is str:
            return encode_string(value)
        return "".join(iterencode(value, 0))

    return encode


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


#: ``json.dumps(value)``: the same text (see json_encoder).
dumps = json_encoder()


class JsonText(sa.types.TypeDecorator[Any]):
    """A JSON document the caller has already encoded as text: an outbox payload (see
    ``FlowContext.record``), a saga's state, an order's details.

    The column stays JSON (PostgreSQL still reads the text as ``::JSON``); only the second encoding that
    the JSON type would apply is skipped.
    """

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> None:
        return None


_ABSENT = object()
_encode_string = _stdlib_encoder.encode_basestring_ascii


class SettledJson:
    """Encodes one document again and again, its settled part only once.

    A flow rewrites the same documents at every step (a saga's state, an order's details) and most of
    each was set by the first step and never changes. The settled keys' part is encoded once and kept
    with the values it was made from; it is made again when any of them is not the same object as
    before. The other keys are encoded every time — except, with ``keep_entries``, the entries of their
    lists and dicts (one authorization, one shipment), each encoded once and kept with the entry.

    The contract that makes keeping safe: settled values, and with ``keep_entries`` the entries, are
    replaced when they change, never changed in place.
    """

    def __init__(self, settled: Sequence[str], *, keep_entries: bool = False):
        self.settled = tuple(settled)
        self.keep_entries = keep_entries
        self._keys = frozenset(settled)
        self._values: tuple[Any, ...] | None = None
        self._text = ""
        self._entries: dict[int, tuple[Any, str]] = {}

    def encode(self, document: Mapping[str, Any]) -> str:
        values = tuple(document.get(key, _ABSENT) for key in self.settled)
        if self._values is None or any(now is not then for now, then in zip(values, self._values, strict=True)):
            present = {key: value for key, value in zip(self.settled, values, strict=True) if value is not _ABSENT}
            self._text = dumps(present)[1:-1]
            self._values = values
        rest = {key: value for key, value in document.items() if key not in self._keys}
        if self.keep_entries and all(type(key) is str for key in rest):
            rest_text = ", ".join(f"{_encode_string(key)}: {self._value(value)}" for key, value in rest.items())
        else:
            rest_text = dumps(rest)[1:-1]
        return "{" + ", ".join(part for part in (self._text, rest_text) if part) + "}"

    def _value(self, value: Any) -> str:
        if type(value) is dict and all(type(key) is str for key in value):
            return "{" + ", ".join(f"{_encode_string(key)}: {self._entry(item)}" for key, item in value.items()) + "}"
        if type(value) is list:
            return "[" + ", ".join(self._entry(item) for item in value) + "]"
        return dumps(value)

    def _entry(self, entry: Any) -> str:
        if type(entry) is not dict and type(entry) is not list:
            return dumps(entry)
        kept = self._entries.get(id(entry))
        if kept is not None and kept[0] is entry:
            return kept[1]
        text = dumps(entry)
        self._entries[id(entry)] = (entry, text)
        return text
