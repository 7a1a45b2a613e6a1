"""The units people write in a manifest: durations (``15m``, ``1h30m``) and weights (``350g``,
``1.2kg``).

Money is written ``"12.50 CNY"`` and parsed by :meth:`retailblocks.model.Money.parse`. A bare number
is never a duration: ``ttl: 15`` could mean seconds or minutes, so the unit is required.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from retailblocks.errors import InvalidValue

DURATION_HELP = "expected a duration like '15m', '2h' or '30s'"
WEIGHT_HELP = "expected a weight like '350g' or '1.2kg', or a whole number of grams"

# Units from the largest to the smallest; a duration names each at most once, in this order.
_DURATION_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)")
#: A pattern for JSON Schema: one or more number-and-unit parts, as :func:`parse_duration` accepts.
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|w|d|h|m|s))+$"
WEIGHT_PATTERN = r"^\d+(\.\d+)?\s?(g|kg)$"
_WEIGHT = re.compile(r"(\d+(?:\.\d+)?)\s?(g|kg)")
_MAX_DAYS = 3650  # ten years: anything longer is a typo, and timedelta overflows not far beyond


def parse_duration(value: object) -> timedelta:
    """``"15m"`` → 15 minutes. Parts combine largest first: ``"1h30m"``, ``"2m30s"``,
    ``"500ms"``."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float):
            raise InvalidValue(f"{DURATION_HELP}: a number needs a unit (got {value!r}; write '{value}s'?)")
        raise InvalidValue(f"{DURATION_HELP} (got {value!r})")
    text = value.strip()
    milliseconds = Decimal(0)
    position = 0
    order = list(_DURATION_UNITS)
    last_unit = -1
    for match in _DURATION_PART.finditer(text):
        unit_index = order.index(match[2])
        if match.start() != position or unit_index <= last_unit:
            break
        # Decimal, not timedelta arithmetic: '99999999999d' must be an error, not an OverflowError.
        milliseconds += Decimal(match[1]) * (_DURATION_UNITS[match[2]] // timedelta(milliseconds=1))
        position = match.end()
        last_unit = unit_index
    if not text or position != len(text):
        raise InvalidValue(f"{DURATION_HELP} (got {value!r})")
    if milliseconds > _MAX_DAYS * 86_400_000:
        raise InvalidValue(f"duration {value!r} is longer than {_MAX_DAYS} days")
    return timedelta(milliseconds=float(milliseconds))


def format_duration(duration: timedelta) -> str:
    """Text :func:`parse_duration` reads back as ``duration`` (to the millisecond): ``"1h30m"``,
    ``"0s"``."""
    if duration < timedelta():
        raise InvalidValue(f"a duration cannot be negative (got {duration})")
    remaining = duration // timedelta(milliseconds=1)
    parts: list[str] = []
    for unit, size in _DURATION_UNITS.items():
        if unit == "w":  # '365d' reads better than '52w1d'
            continue
        count, remaining = divmod(remaining, size // timedelta(milliseconds=1))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_weight(value: object) -> int:
    """``"350g"`` → 350, ``"1.2kg"`` → 1200, ``350`` → 350 grams; fractions of a gram are
    refused."""
    if isinstance(value, bool):
        raise InvalidValue(f"{WEIGHT_HELP} (got {value!r})")
    if isinstance(value, int):
        if value < 0:
            raise InvalidValue(f"a weight cannot be negative (got {value})")
        return value
    match = _WEIGHT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidValue(f"{WEIGHT_HELP} (got {value!r})")
    try:
        grams = Decimal(match[1]) * (1000 if match[2] == "kg" else 1)
    except InvalidOperation:  # pragma: no cover - the pattern only lets decimal numbers through
        raise InvalidValue(f"{WEIGHT_HELP} (got {value!r})") from None
    if grams != grams.to_integral_value():
        raise InvalidValue(f"weights are whole grams (got {value!r}, which is {grams.normalize()} g)")
    return int(grams)
