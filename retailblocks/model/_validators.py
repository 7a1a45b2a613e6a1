"""Validators shared by the value types; their messages say what was expected and what came."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from retailblocks.errors import InvalidValue
from retailblocks.model.limits import check_text

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def positive(_instance: Any, attribute: Any, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidValue(f"{attribute.name!r} must be an integer > 0 (got {value!r})")


def non_negative(_instance: Any, attribute: Any, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidValue(f"{attribute.name!r} must be an integer >= 0 (got {value!r})")


def non_empty(_instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{attribute.name!r} must be a non-empty string (got {value!r})")


def slug(_instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not SLUG.match(value):
        raise InvalidValue(
            f"{attribute.name!r} must be a slug of lowercase letters, digits, '-' or '_' (got {value!r})"
        )


def text(
    what: str, max_length: int, *, optional: bool = False, allow_empty: bool = False
) -> Callable[[Any, Any, Any], None]:
    """A validator of text of at most ``max_length`` characters without NUL, non-empty unless
    ``allow_empty``, or None if ``optional``: PostgreSQL would refuse what SQLite keeps."""

    def validate(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is None and optional:
            return
        check_text(value, what, max_length=max_length, allow_empty=allow_empty)

    return validate
