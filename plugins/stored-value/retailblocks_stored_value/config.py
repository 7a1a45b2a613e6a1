"""The stored-value block's configuration."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import attrs

from retailblocks.errors import InvalidValue
from retailblocks.model import Money

_PREFIX = re.compile(r"^[A-Z]{1,6}$")


def _check_prefix(_instance: Any, _attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise InvalidValue(f"code_prefix must be 1 to 6 capital letters, e.g. 'GC' (got {value!r})")


def _check_validity(_instance: Any, _attribute: Any, value: timedelta | None) -> None:
    if value is not None and value <= timedelta(0):
        raise InvalidValue(f"gift_card_validity must be a positive duration such as '365d' (got {value})")


def _check_limit(_instance: Any, attribute: Any, value: Money | None) -> None:
    if value is not None and value.amount <= 0:
        raise InvalidValue(f"{attribute.name} must be a positive amount such as '1000.00 CNY' (got {value})")


@attrs.frozen
class StoredValueConfig:
    code_prefix: str = attrs.field(
        default="GC",
        validator=_check_prefix,
        metadata={"help": "Letters that start every gift card number, before its three groups of four characters."},
    )
    gift_card_validity: timedelta | None = attrs.field(
        default=None,
        validator=_check_validity,
        metadata={"help": "How long a new gift card can be spent, e.g. '365d'; none for no expiry."},
    )
    max_gift_card_value: Money | None = attrs.field(
        default=None,
        validator=_check_limit,
        metadata={"help": "The largest value one gift card may be issued with; none for no limit."},
    )
    max_wallet_balance: Money | None = attrs.field(
        default=None,
        validator=_check_limit,
        metadata={"help": "The most a member's wallet may hold after a top-up; none for no limit."},
    )
