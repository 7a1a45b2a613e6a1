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
    before (settled values are replaced, never changed in place). The rest is encoded every time.
    """

    def __init__(self, settled: Sequence[str]):
        self.settled = tuple(settled)
        self._keys = frozenset(settled)
        self._values: tuple[Any, ...] | None = None
        self._text = ""

    def encode(self, document: Mapping[str, Any]) -> str:
        values = tuple(document.get(key, _ABSENT) for key in self.settled)
        if self._values is None or any(now is not then for now, then in zip(values, self._values, strict=True)):
            present = {key: value for key, value in zip(self.settled, values, strict=True) if value is not _ABSENT}
            self._text = json.dumps(present)[1:-1]
            self._values = values
        rest = json.dumps({key: value for key, value in document.items() if key not in self._keys})[1:-1]
        return "{" + ", ".join(part for part in (self._text, rest) if part) + "}"
