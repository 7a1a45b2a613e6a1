"""Turning value types into JSON-ready data and back, for the saga log, order details and ``--json``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import cattrs

from retailblocks.model.money import Money

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_unstructure_hook(Money, lambda money: {"amount": money.amount, "currency": money.currency})
converter.register_structure_hook(Money, lambda data, _type: Money(int(data["amount"]), str(data["currency"])))
converter.register_unstructure_hook(datetime, lambda moment: moment.isoformat())
converter.register_structure_hook(datetime, lambda text, _type: datetime.fromisoformat(text))


def to_data(value: Any) -> Any:
    """JSON-ready data (dicts, lists, strings, integers) for any model value."""
    return converter.unstructure(value)


def from_data(data: Any, kind: type[T]) -> T:
    """The model value of type ``kind`` that ``data`` (from :func:`to_data`) describes."""
    return converter.structure(data, kind)
