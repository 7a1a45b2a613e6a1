"""Configuration: the test key is required, checked, and never shown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from retailblocks_sandbox_card import SandboxCard, SandboxCardConfig

from retailblocks.errors import InvalidValue


def test_defaults() -> None:
    config = SandboxCardConfig(secret_key="sk_test_abc")
    assert config.gateway == "sandbox"
    assert config.timeout_resolution == timedelta(seconds=30)
    assert config.max_attempts == 3


@pytest.mark.parametrize("key", ["sk_live_abcdef123456", "pk_test_abc", "", "sk_test_"])
def test_a_non_test_key_is_refused_without_being_echoed(key: str) -> None:
    with pytest.raises(InvalidValue, match="sandbox-card needs a test key starting with 'sk_test_'") as info:
        SandboxCardConfig(secret_key=key)
    if key not in ("", "sk_test_"):
        assert key not in str(info.value)


def test_secret_never_in_repr_or_str() -> None:
    secret = "sk_test_verysecret987"
    config = SandboxCardConfig(secret_key=secret)
    block = SandboxCard(config)
    for text in (repr(config), str(config), repr(block), str(block)):
        assert secret not in text
        assert "verysecret" not in text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout_resolution", timedelta(seconds=-1), "'timeout_resolution' must be a duration >= 0"),
        ("max_attempts", 0, "'max_attempts' must be an integer from 1 to 10"),
        ("gateway", "stripe", "'gateway' must be 'sandbox'"),
    ],
)
def test_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        SandboxCardConfig(secret_key="sk_test_abc", **{field: value})  # type: ignore[arg-type]


def test_block_declares_itself() -> None:
    assert SandboxCard.name == "sandbox-card"
    assert SandboxCard.payment_methods == ("card",)
    assert SandboxCard.Config is SandboxCardConfig
