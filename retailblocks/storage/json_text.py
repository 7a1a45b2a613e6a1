"""JSON documents handed to the database as text the caller encoded, and encoded in parts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa


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
            self._text = json.dumps(present)[1:-1]
            self._values = values
        rest = {key: value for key, value in document.items() if key not in self._keys}
        if self.keep_entries and all(type(key) is str for key in rest):
            rest_text = ", ".join(f"{json.dumps(key)}: {self._value(value)}" for key, value in rest.items())
        else:
            rest_text = json.dumps(rest)[1:-1]
        return "{" + ", ".join(part for part in (self._text, rest_text) if part) + "}"

    def _value(self, value: Any) -> str:
        if type(value) is dict and all(type(key) is str for key in value):
            return "{" + ", ".join(f"{json.dumps(key)}: {self._entry(item)}" for key, item in value.items()) + "}"
        if type(value) is list:
            return "[" + ", ".join(self._entry(item) for item in value) + "]"
        return json.dumps(value)

    def _entry(self, entry: Any) -> str:
        if type(entry) is not dict and type(entry) is not list:
            return json.dumps(entry)
        kept = self._entries.get(id(entry))
        if kept is not None and kept[0] is entry:
            return kept[1]
        text = json.dumps(entry)
        self._entries[id(entry)] = (entry, text)
        return text
