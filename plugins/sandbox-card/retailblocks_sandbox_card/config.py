"""The block's configuration: the sandbox test key, which gateway to talk to, and time-outs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import attrs

from retailblocks import secret_field
from retailblocks.errors import InvalidValue

TEST_KEY_PREFIX = "sk_test_"


def _test_key(_instance: Any, _attribute: Any, value: Any) -> None:
    # Never echo the value: a live key pasted here by mistake must not end up in a log.
    if not isinstance(value, str) or not value.startswith(TEST_KEY_PREFIX) or value == TEST_KEY_PREFIX:
        raise InvalidValue(
            f"sandbox-card needs a test key starting with {TEST_KEY_PREFIX!r} "
            "(the value given is not one; it is not shown because it is a secret)"
        )


def _non_negative_duration(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidValue(f"{attribute.name!r} must be a duration >= 0, e.g. '30s' (got {value!r})")


def _gateway(_instance: Any, attribute: Any, value: Any) -> None:
    if value != "sandbox":
        raise InvalidValue(f"{attribute.name!r} must be 'sandbox' (got {value!r})")


MIN_CALLBACK_SECRET_LENGTH = 24


def _callback_secret(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or len(value) < MIN_CALLBACK_SECRET_LENGTH:
        raise InvalidValue(
            f"{attribute.name!r} must be a string of at least {MIN_CALLBACK_SECRET_LENGTH} characters "
            "(the value given is not shown because it is a secret)"
        )


def _attempts(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10:
        raise InvalidValue(f"{attribute.name!r} must be an integer from 1 to 10 (got {value!r})")


@attrs.frozen
class SandboxCardConfig:
    """Configuration of ``sandbox-card``; only ``secret_key`` is required."""

    secret_key: str = secret_field(
        validator=_test_key,
        metadata={"help": "the sandbox account's secret key; must start with 'sk_test_'"},
    )
    gateway: Literal["sandbox"] = attrs.field(
        default="sandbox",
        validator=_gateway,
        metadata={"help": "the gateway to talk to; 'sandbox' keeps it in the stack's database"},
    )
    timeout_resolution: timedelta = attrs.field(
        default=timedelta(seconds=30),
        validator=_non_negative_duration,
        metadata={"help": "how long after a time-out the gateway can say whether it charged"},
    )
    callback_secret: str | None = secret_field(
        default=None,
        validator=attrs.validators.optional(_callback_secret),
        metadata={
            "help": "the secret the gateway signs its notifications with (write ${VARIABLE}); without it the "
            "block mounts no notification route and time-outs resolve only by asking the gateway"
        },
    )
    max_attempts: int = attrs.field(
        default=3,
        validator=_attempts,
        metadata={"help": "tries per gateway call when the gateway cannot be reached"},
    )
