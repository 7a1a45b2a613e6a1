"""Block configuration: raw config nodes into attrs classes, public rendering and fingerprints."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

import attrs
import pytest

from retailblocks.errors import InvalidValue
from retailblocks.hookspecs.blocks import secret_field
from retailblocks.manifest import (
    ConfigTypeError,
    ManifestError,
    SourcePosition,
    build_config,
    config_fingerprint,
    config_to_public_dict,
)
from retailblocks.model import Money


class Mode(enum.Enum):
    LIVE = "live"
    TEST = "test"


@attrs.frozen
class Retry:
    attempts: int = 3
    backoff: timedelta = timedelta(seconds=1)


def _at_most_ten(_instance: Any, attribute: Any, value: int) -> None:
    if value > 10:
        raise InvalidValue(f"{attribute.name!r} must be <= 10 (got {value})")


def _long_enough(_instance: Any, _attribute: Any, value: str) -> None:
    if len(value) < 8:
        raise ValueError(f"the key {value!r} is too short")


@attrs.frozen
class GatewayConfig:
    """Settings of an example payment gateway."""

    secret_key: str = secret_field(validator=_long_enough)
    reservation_ttl: timedelta = attrs.field(
        default=timedelta(minutes=15), metadata={"help": "how long stock stays reserved"}
    )
    fee: Money = attrs.field(default=Money(0, "CNY"))
    mode: Mode = Mode.TEST
    region: Literal["cn", "hk"] = "cn"
    rate: float = 0.5
    enabled: bool = True
    max_items: int = attrs.field(default=5, validator=_at_most_ten)
    methods: list[str] = attrs.field(factory=list)
    limits: dict[str, Money] = attrs.field(factory=dict)
    tags: tuple[str, ...] = ()
    retry: Retry = Retry()
    note: str | None = None
    extra: Any = None


def _node(load: Any, config_yaml: str, environ: Mapping[str, str] | None = None) -> Any:
    text = (
        "version: 1\nmerchant: {id: m, name: M, currency: CNY}\n"
        "channels: [{id: web, type: online}]\nblocks:\n  - use: gateway\n    config:\n"
    )
    text += "".join(f"      {line}\n" for line in config_yaml.strip("\n").split("\n"))
    return load(text, environ=environ or {}).blocks[0].config


# The first config line is line 7 of the manifest above, indented 7 columns.
def test_converts_every_supported_type(load):
    node = _node(
        load,
        """\
secret_key: ${GATEWAY_KEY}
reservation_ttl: 1h30m
fee: "0.30 CNY"
mode: live
region: hk
rate: 2
enabled: false
max_items: 7
methods: [card, wallet]
limits: {card: "500 CNY"}
tags: [a, b]
retry: {attempts: 5, backoff: 500ms}
note: null
extra: {anything: [1, 2]}
""",
        environ={"GATEWAY_KEY": "sk_live_0123456789"},
    )
    config = build_config(GatewayConfig, node)
    assert config == GatewayConfig(
        secret_key="sk_live_0123456789",
        reservation_ttl=timedelta(hours=1, minutes=30),
        fee=Money(30, "CNY"),
        mode=Mode.LIVE,
        region="hk",
        rate=2.0,
        enabled=False,
        max_items=7,
        methods=["card", "wallet"],
        limits={"card": Money(50000, "CNY")},
        tags=("a", "b"),
        retry=Retry(attempts=5, backoff=timedelta(milliseconds=500)),
        note=None,
        extra={"anything": [1, 2]},
    )


def _config_error(load, config_yaml, environ=None) -> ManifestError:
    node = _node(load, config_yaml, environ)
    with pytest.raises(ManifestError) as caught:
        build_config(GatewayConfig, node)
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("config_yaml", "path", "says"),
    [
        (
            "secret_key: abcdefghij\nreservation_ttl: soon",
            "reservation_ttl",
            "expected a duration like '15m', '2h' or '30s' (got 'soon')",
        ),
        ("secret_key: abcdefghij\nreservation_ttl: 15", "reservation_ttl", "a number needs a unit"),
        ("secret_key: abcdefghij\nfee: 12", "fee", "e.g. '12.50 CNY' (got 12)"),
        ("secret_key: abcdefghij\nmode: liv", "mode", "did you mean 'live'?"),
        ("secret_key: abcdefghij\nregion: us", "region", "expected one of 'cn', 'hk' (got 'us')"),
        ("secret_key: abcdefghij\nenabled: 1", "enabled", "expected a boolean"),
        ("secret_key: abcdefghij\nmax_items: true", "max_items", "expected an integer"),
        (
            "secret_key: abcdefghij\nmax_items: 11",
            "max_items",
            "'max_items' must be <= 10 (got 11)",
        ),
        ("secret_key: abcdefghij\nmethods: card", "methods", "expected a list"),
        ("secret_key: abcdefghij\nlimits: {card: 5 dollars}", "limits.card", "got '5 dollars'"),
        (
            "secret_key: abcdefghij\nretry: {attempts: 1, bakcoff: 1s}",
            "retry.bakcoff",
            "unknown key 'bakcoff'; did you mean 'backoff'?",
        ),
        ("secret_key: abcdefghij\nnote: 5", "note", "expected a string (got the integer 5)"),
        (
            "secret_key: abcdefghij\nreservaton_ttl: 15m",
            "reservaton_ttl",
            "did you mean 'reservation_ttl'?",
        ),
    ],
)
def test_bad_values_are_located(load, config_yaml, path, says):
    error = _config_error(load, config_yaml)
    assert error.doc_path == f"blocks[0].config.{path}"
    assert error.line == 8
    assert says in error.problem


def test_missing_required_key(load):
    error = _config_error(load, "mode: live")
    assert error.doc_path == "blocks[0].config"
    assert "missing required key 'secret_key'" in error.problem


def test_secret_values_never_appear_in_messages(load):
    # In flow collections ``${…}`` must be quoted: braces are YAML syntax there.
    for config_yaml in (
        "secret_key: ${KEY}",
        'secret_key: ["${KEY}"]',
        'secret_key: {a: "${KEY}"}',
    ):
        error = _config_error(load, config_yaml, environ={"KEY": "tiny"})
        assert "tiny" not in str(error)
        assert error.doc_path.startswith("blocks[0].config.secret_key")
    error = _config_error(load, "secret_key: 12345")
    assert "12345" not in str(error)
    assert "secret value hidden" in str(error)


def test_secret_validator_message_is_hidden_when_it_quotes_the_secret(load):
    error = _config_error(load, "secret_key: ${KEY}", environ={"KEY": "abc"})
    assert error.doc_path == "blocks[0].config.secret_key"
    assert "abc" not in str(error)
    assert "secret value hidden" in str(error)


def test_environment_strings_fill_typed_fields(load):
    node = _node(
        load,
        "secret_key: abcdefghij\nmax_items: ${N}\nrate: ${R}\nenabled: ${E}",
        environ={"N": "9", "R": "0.25", "E": "false"},
    )
    config = build_config(GatewayConfig, node)
    assert (config.max_items, config.rate, config.enabled) == (9, 0.25, False)


def test_a_literal_string_is_not_an_integer(load):
    error = _config_error(load, "secret_key: abcdefghij\nmax_items: '9'")
    assert "expected an integer (got '9')" in error.problem


def test_plain_mapping_and_none(tmp_path):
    config = build_config(Retry, {"attempts": 2, "backoff": "2s"})
    assert config == Retry(attempts=2, backoff=timedelta(seconds=2))
    assert build_config(Retry, None) == Retry()
    with pytest.raises(ManifestError) as caught:
        build_config(Retry, {"attempts": "${N}"}, file="cli", doc_path="blocks[0].config", environ={})
    assert str(caught.value) == ("cli: blocks[0].config.attempts: environment variable 'N' is not set")
    with pytest.raises(ManifestError, match=r"^x.yaml:3:4: c.attempts: expected an integer"):
        build_config(Retry, {"attempts": "two"}, position=SourcePosition("x.yaml", 3, 4, "c"))


def test_post_init_errors_blame_the_mapping():
    @attrs.frozen
    class Window:
        start: int
        end: int

        def __attrs_post_init__(self) -> None:
            if self.end < self.start:
                raise ValueError("end must not be before start")

    with pytest.raises(ManifestError, match="config: end must not be before start"):
        build_config(Window, {"start": 5, "end": 1})


def test_unsupported_annotations_are_a_block_bug():
    @attrs.frozen
    class Odd:
        value: complex = 1j

    with pytest.raises(ConfigTypeError, match="unsupported configuration type complex"):
        build_config(Odd, {"value": 1})
    with pytest.raises(ConfigTypeError, match="not an attrs class"):
        build_config(dict, {})


def test_public_dict_masks_secrets():
    config = GatewayConfig(secret_key="sk_live_0123456789", limits={"card": Money(500, "CNY")})
    public = config_to_public_dict(config)
    assert public["secret_key"] == "***"
    assert public["reservation_ttl"] == "15m"
    assert public["fee"] == "0.00 CNY"
    assert public["mode"] == "test"
    assert public["limits"] == {"card": "5.00 CNY"}
    assert public["retry"] == {"attempts": 3, "backoff": "1s"}
    assert "sk_live" not in repr(public)


def test_fingerprint_follows_secrets_without_revealing_them():
    first = GatewayConfig(secret_key="sk_live_0123456789")
    same = GatewayConfig(secret_key="sk_live_0123456789")
    other_secret = GatewayConfig(secret_key="sk_live_9876543210")
    other_value = GatewayConfig(secret_key="sk_live_0123456789", max_items=6)
    fingerprint = config_fingerprint(first)
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0
    assert fingerprint == config_fingerprint(same)
    assert fingerprint != config_fingerprint(other_secret)
    assert fingerprint != config_fingerprint(other_value)
