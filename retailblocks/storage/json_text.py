"""JSON documents handed to the database as text the caller encoded, and encoded in parts."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa


def json_encoder(
    default: Callable[[Any], Any] | None = None,
    *,
    sort_keys: bool = False,
    separators: tuple[str, str] = (", ", ": "),
) -> Callable[[Any], str]:
    """``json.dumps`` with these options, as one function made once: the same text, for less.

    ``json.dumps`` builds a new encoder for every call that passes an option, which costs more than
    encoding a small document (an event's payload, one entry of a saga's state); a flow encodes dozens per
    checkout. The :class:`json.JSONEncoder` made here is kept; it does not track containers for circular
    references (``check_circular=False``), so a document that contains itself fails with RecursionError
    rather than ValueError. Documents here are trees of plain data.
    """
    return json.JSONEncoder(default=default, sort_keys=sort_keys, separators=separators, check_circular=False).encode


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


class SettledJson:
    """Encodes one document again and again, its settled part only once.

    A flow rewrites the same documents at every step (a saga's state, an order's details) and most of
    each was set by the first step and never changes. The settled keys' part is encoded once and kept
    with the values it was made from; it is made again when any of them is not the same object as
    before. The other keys are encoded every time, in one call of the kept encoder (see json_encoder).

    The contract that makes keeping safe: settled values are replaced when they change, never changed
    in place.
    """

    def __init__(self, settled: Sequence[str]):
        self.settled = tuple(settled)
        self._keys = frozenset(settled)
        self._absent = (_ABSENT,) * len(self.settled)
        self._values: tuple[Any, ...] | None = None
        self._text = ""

    def encode(self, document: Mapping[str, Any]) -> str:
        values = tuple(map(document.get, self.settled, self._absent))
        kept = self._values
        if kept is None or not all(map(operator.is_, values, kept)):
            present = {key: value for key, value in zip(self.settled, values, strict=True) if value is not _ABSENT}
            self._text = dumps(present)[1:-1]
            self._values = values
        keys = self._keys
        rest_text = dumps({key: value for key, value in document.items() if key not in keys})[1:-1]
        if not rest_text:
            return "{" + self._text + "}"
        if not self._text:
            return "{" + rest_text + "}"
        return "{" + self._text + ", " + rest_text + "}"
